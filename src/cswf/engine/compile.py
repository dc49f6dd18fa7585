"""Compile condition trees into Polars expressions.

The null rule: every leaf is false when a value it reads is missing (`ne` and `not_in` included),
then `all` / `any` / `not` combine plain booleans. So `not: {health_score lt 60}` holds for an
account with no health score; add `not_null` to exclude those. Text matches ignore case.

Relative dates read the `as_of` column of the facts, so one compiled expression serves every tick.
Transitions read `<field>__prev`, the field's value at the previous tick. Event leaves read the
participant's `recent_events` (a list, one element per event) and hold when one event of the type,
in the window, passes every property test; a property is read from the event's JSON properties
as a number, true/false or text, as the test's value is.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

import polars as pl

from cswf.specs.conditions import EVENTS_FIELD, AllOf, AnyOf, Condition, EventLeaf, Leaf, Not, Op

PREV_SUFFIX = "__prev"
AS_OF = "as_of"


def prev(field: str) -> str:
    return f"{field}{PREV_SUFFIX}"


def compile_condition(
    node: Condition,
    schema: Mapping[str, pl.DataType],
    derived: Mapping[str, pl.Expr] | None = None,
) -> pl.Expr:
    """One boolean expression, never null. `derived` fields are expressions over the facts
    (a workflow's journey-stage fields), read like fact fields; `schema` must name their types."""
    derived = derived or {}
    if isinstance(node, AllOf):
        return pl.all_horizontal([compile_condition(c, schema, derived) for c in node.all])
    if isinstance(node, AnyOf):
        return pl.any_horizontal([compile_condition(c, schema, derived) for c in node.any])
    if isinstance(node, Not):
        return ~compile_condition(node.not_, schema, derived)
    if isinstance(node, EventLeaf):
        return _event(node).fill_null(False)
    return _leaf(node, schema, derived).fill_null(False)


def _event(node: EventLeaf) -> pl.Expr:
    """Whether one of the participant's recent events is of the type, in the window, and
    passes every property test (all on the same event)."""
    return event_matches(node).list.any()


def event_matches(node: EventLeaf, where: bool = True) -> pl.Expr:
    """Per participant, one boolean per recent event: of the type, in the window and, with
    `where`, passing every property test (`cswf explain` counts them)."""
    event = pl.element()
    window = event.struct.field("since_previous_tick") if node.happened is not None \
        else event.struct.field("days_ago") < node.within_days
    tests = [(event.struct.field("event_type") == node.event) & window]
    for test in node.where if where else []:
        kind, read = _property(test)
        tests.append(_leaf(test, {test.field: kind}, {test.field: read}).fill_null(False))
    return pl.col(EVENTS_FIELD).list.eval(pl.all_horizontal(tests))


def _property(test: Leaf) -> tuple[pl.DataType, pl.Expr]:
    """The property a test reads, typed as its value is (text when it has none)."""
    path = "$['" + test.field.replace("\\", "\\\\").replace("'", "\\'") + "']"
    text = pl.element().struct.field("properties").str.json_path_match(path)
    operands = test.value if isinstance(test.value, list) else [test.value]
    if operands and all(isinstance(v, bool) for v in operands):
        words = {"true": True, "1": True, "false": False, "0": False}
        return pl.Boolean(), text.str.to_lowercase().replace_strict(words, default=None,
                                                                    return_dtype=pl.Boolean)
    if operands and all(isinstance(v, int | float) and not isinstance(v, bool)
                        for v in operands):
        return pl.Float64(), text.cast(pl.Float64, strict=False)
    return pl.String(), text


def _literal(value: object, dtype: pl.DataType | None) -> object:
    """Spec operands are YAML scalars; dates arrive as text and become dates."""
    if dtype is not None and dtype.is_temporal() and isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed.date() if dtype == pl.Date else parsed
    if isinstance(value, date) and dtype == pl.Datetime:
        return datetime.combine(value, datetime.min.time())
    return value


def _today(dtype: pl.DataType | None) -> pl.Expr:
    as_of = pl.col(AS_OF)
    return as_of.dt.date() if dtype == pl.Date else as_of


def _leaf(leaf: Leaf, schema: Mapping[str, pl.DataType],
          derived: Mapping[str, pl.Expr]) -> pl.Expr:
    dtype = schema.get(leaf.field)
    col = derived.get(leaf.field, pl.col(leaf.field))
    op, value = leaf.op, leaf.value
    if op is Op.is_null:
        return col.is_null()
    if op is Op.not_null:
        return col.is_not_null()
    if op in (Op.in_, Op.not_in):
        assert isinstance(value, list)
        members = pl.Series([_literal(v, dtype) for v in value])
        if dtype is not None:
            members = members.cast(dtype, strict=False)
        inside = col.is_in(members.implode())
        return (inside if op is Op.in_ else ~inside) & col.is_not_null()
    if op is Op.between:
        assert isinstance(value, list)
        low, high = (_literal(v, dtype) for v in value)
        return col.is_between(pl.lit(low), pl.lit(high), closed="both")
    if op is Op.contains:
        return col.str.to_lowercase().str.contains(str(value).lower(), literal=True)
    if op is Op.starts_with:
        return col.str.to_lowercase().str.starts_with(str(value).lower())
    if op in (Op.within_next_days, Op.within_last_days, Op.older_than_days):
        return _relative_date(col, op, int(value), dtype)  # type: ignore[arg-type]
    before = pl.col(prev(leaf.field))
    if op is Op.became:
        target = _literal(value, dtype)
        return (col == target) & (before.is_null() | (before != target))
    if op is Op.changed:
        return col.is_not_null() & before.is_not_null() & (col != before)
    if op is Op.dropped_below:
        return (col < value) & (before >= value)
    if op is Op.rose_above:
        return (col > value) & (before <= value)
    if op in (Op.fell_by_pct, Op.rose_by_pct):
        base = pl.col(leaf.compare_to) if leaf.compare_to else before
        change = (col - base) / base * 100.0
        moved = change <= -float(value) if op is Op.fell_by_pct else change >= float(value)  # type: ignore[arg-type]
        return (base > 0) & moved
    target = _literal(value, dtype)
    comparisons = {
        Op.eq: col == target,
        Op.ne: col != target,
        Op.lt: col < target,
        Op.le: col <= target,
        Op.gt: col > target,
        Op.ge: col >= target,
    }
    return comparisons[op]


def _relative_date(col: pl.Expr, op: Op, days: int, dtype: pl.DataType | None) -> pl.Expr:
    today = _today(dtype)
    span = pl.duration(days=days)
    if op is Op.within_next_days:
        return (col >= today) & (col <= today + span)
    if op is Op.within_last_days:
        return (col <= today) & (col >= today - span)
    return col < today - span
