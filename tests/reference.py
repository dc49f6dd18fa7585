"""A row-at-a-time interpreter of condition trees: the oracle for the compiler.

Never used by the engine. Tests check that the compiled Polars expressions agree with it on
random facts, and the benchmark measures how much faster the vectorized path is.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta

from cswf.specs.conditions import AllOf, AnyOf, Condition, Leaf, Not, Op


def holds(node: Condition, row: Mapping[str, object], prev: Mapping[str, object] | None) -> bool:
    if isinstance(node, AllOf):
        return all(holds(c, row, prev) for c in node.all)
    if isinstance(node, AnyOf):
        return any(holds(c, row, prev) for c in node.any)
    if isinstance(node, Not):
        return not holds(node.not_, row, prev)
    return _leaf(node, row, prev)


def _operand(value: object, like: object) -> object:
    if isinstance(like, datetime) and isinstance(value, str):
        return datetime.fromisoformat(value)
    if isinstance(like, date) and isinstance(value, str):
        return date.fromisoformat(value)
    return value


def _leaf(leaf: Leaf, row: Mapping[str, object], prev: Mapping[str, object] | None) -> bool:
    value = row.get(leaf.field)
    op = leaf.op
    if op is Op.is_null:
        return value is None
    if op is Op.not_null:
        return value is not None
    before = prev.get(leaf.field) if prev is not None else None
    if op is Op.became:
        target = _operand(leaf.value, value)
        return value is not None and value == target and (before is None or before != target)
    if value is None:
        return False
    if op in (Op.in_, Op.not_in):
        members = [_operand(v, value) for v in leaf.value]  # type: ignore[union-attr]
        return (value in members) == (op is Op.in_)
    if op is Op.between:
        low, high = (_operand(v, value) for v in leaf.value)  # type: ignore[union-attr]
        return low <= value <= high  # type: ignore[operator]
    if op is Op.contains:
        return str(leaf.value).lower() in str(value).lower()
    if op is Op.starts_with:
        return str(value).lower().startswith(str(leaf.value).lower())
    if op in (Op.within_next_days, Op.within_last_days, Op.older_than_days):
        as_of = row["as_of"]
        assert isinstance(as_of, datetime)
        today: date | datetime = as_of if isinstance(value, datetime) else as_of.date()
        span = timedelta(days=int(leaf.value))  # type: ignore[arg-type]
        if op is Op.within_next_days:
            return today <= value <= today + span  # type: ignore[operator]
        if op is Op.within_last_days:
            return today - span <= value <= today  # type: ignore[operator]
        return value < today - span  # type: ignore[operator]
    if op is Op.changed:
        return before is not None and before != value
    if op is Op.dropped_below:
        return before is not None and value < leaf.value <= before  # type: ignore[operator]
    if op is Op.rose_above:
        return before is not None and before <= leaf.value < value  # type: ignore[operator]
    if op in (Op.fell_by_pct, Op.rose_by_pct):
        base = row.get(leaf.compare_to) if leaf.compare_to else before
        if base is None or base <= 0:  # type: ignore[operator]
            return False
        change = (value - base) / base * 100.0  # type: ignore[operator]
        threshold = float(leaf.value)  # type: ignore[arg-type]
        return change <= -threshold if op is Op.fell_by_pct else change >= threshold
    target = _operand(leaf.value, value)
    return {
        Op.eq: lambda: value == target,
        Op.ne: lambda: value != target,
        Op.lt: lambda: value < target,  # type: ignore[operator]
        Op.le: lambda: value <= target,  # type: ignore[operator]
        Op.gt: lambda: value > target,  # type: ignore[operator]
        Op.ge: lambda: value >= target,  # type: ignore[operator]
    }[op]()
