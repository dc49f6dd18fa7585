"""The condition language: filter trees (all / any / not) over fact fields.

A condition is a YAML mapping. Groups are `{all: [...]}`, `{any: [...]}` and `{not: {...}}`; a leaf
is `{field: <fact field>, op: <operator>, value: <operand>}`, or an event leaf,
`{event: <event type>, happened: since_previous_tick}` / `{event: ..., within_days: N}` with
optional `where: [<leaf over the event's properties>, ...]`. The engine compiles a tree into one
Polars expression (`cswf.engine.compile`); this module only describes and checks it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from cswf.specs.common import (
    MAX_DAYS,
    MAX_NUMBER,
    MaybeInt,
    did_you_mean,
    drop_the_quotes,
    quoted_number,
)

MAX_NESTING = 50  # levels of all / any / not: deeper is no longer a rule a person can read


class Op(StrEnum):
    """Operators of a leaf. Transition operators compare with the previous tick's facts."""

    eq = "eq"
    ne = "ne"
    lt = "lt"
    le = "le"
    gt = "gt"
    ge = "ge"
    in_ = "in"
    not_in = "not_in"
    between = "between"
    is_null = "is_null"
    not_null = "not_null"
    contains = "contains"
    starts_with = "starts_with"
    within_next_days = "within_next_days"
    within_last_days = "within_last_days"
    older_than_days = "older_than_days"
    became = "became"
    changed = "changed"
    dropped_below = "dropped_below"
    rose_above = "rose_above"
    fell_by_pct = "fell_by_pct"
    rose_by_pct = "rose_by_pct"


COMPARISON_OPS = {Op.eq, Op.ne, Op.lt, Op.le, Op.gt, Op.ge}
LIST_OPS = {Op.in_, Op.not_in}
NULL_OPS = {Op.is_null, Op.not_null}
TEXT_OPS = {Op.contains, Op.starts_with}
RELATIVE_DATE_OPS = {Op.within_next_days, Op.within_last_days, Op.older_than_days}
TRANSITION_OPS = {Op.became, Op.changed, Op.dropped_below, Op.rose_above}
CHANGE_OPS = {Op.fell_by_pct, Op.rose_by_pct}
ORDERED_OPS = {Op.lt, Op.le, Op.gt, Op.ge, Op.between, Op.dropped_below, Op.rose_above}
NUMERIC_ONLY_OPS = {Op.dropped_below, Op.rose_above} | CHANGE_OPS

Scalar = str | int | float | bool


# Names people write for an operator, from SQL, code and other tools: a "did you mean" must
# offer the operator with the same meaning (`gte` is `ge`, not its neighbour in spelling `gt`).
OP_ALIASES: dict[str, Op] = {
    **dict.fromkeys(("=", "==", "equal", "equals", "is", "eq_to"), Op.eq),
    **dict.fromkeys(("!=", "≠", "<>", "neq", "not_eq", "not_equal", "not_equals", "is_not"), Op.ne),
    **dict.fromkeys(("<", "less", "less_than", "lower_than", "below"), Op.lt),
    **dict.fromkeys(("<=", "≤", "lte", "less_or_equal", "less_than_or_equal", "at_most"), Op.le),
    **dict.fromkeys((">", "greater", "greater_than", "more_than", "above"), Op.gt),
    **dict.fromkeys((">=", "≥", "gte", "greater_or_equal", "greater_than_or_equal", "at_least"),
                    Op.ge),
    **dict.fromkeys(("one_of", "is_in", "any_of"), Op.in_),
    **dict.fromkeys(("nin", "not_one_of", "is_not_in", "none_of"), Op.not_in),
    **dict.fromkeys(("null", "is_none", "isnull", "missing"), Op.is_null),
    **dict.fromkeys(("notnull", "is_not_null", "not_none", "present", "exists"), Op.not_null),
    **dict.fromkeys(("has", "includes"), Op.contains),
    **dict.fromkeys(("startswith", "begins_with", "prefix"), Op.starts_with),
}


def op_meant(word: str) -> Op | None:
    """The operator `word` means: an operator in other case, or one of its other names, or a
    typo of either (`gtee` means `ge`); None when it is no near spelling of any."""
    names = {op.value: op for op in Op} | OP_ALIASES
    word = word.strip().lower()
    if word in names:
        return names[word]
    hint = did_you_mean(word, names)
    return names[hint.split("'")[1]] if hint else None


class Leaf(BaseModel):
    """One test on one fact field."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="A fact field (a column of the SQL model account_facts).")
    op: Op = Field(description="The operator.")
    value: Scalar | list[Scalar] | None = Field(
        default=None, description="The operand; a list for in / not_in / between."
    )
    compare_to: str | None = Field(
        default=None,
        description=(
            "fell_by_pct / rose_by_pct only: a fact field holding the baseline (for example "
            "usage_events_prev_7d for usage_events_7d). Default: the field at the previous tick."
        ),
    )

    @model_validator(mode="after")
    def _operand_fits_operator(self) -> Leaf:
        op, value = self.op, self.value
        if op in RELATIVE_DATE_OPS | CHANGE_OPS and quoted_number(value):
            raise ValueError(f"operator '{op}' needs a number; {drop_the_quotes(str(value))}")
        if op in NULL_OPS or op is Op.changed:
            if value is not None:
                raise ValueError(f"operator '{op}' takes no value")
        elif op in LIST_OPS:
            if not isinstance(value, list) or not value:
                raise ValueError(f"operator '{op}' needs a non-empty list as value")
        elif op is Op.between:
            if not isinstance(value, list) or len(value) != 2:
                raise ValueError("operator 'between' needs a list of two values [low, high]")
        elif op in RELATIVE_DATE_OPS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"operator '{op}' needs a whole number of days >= 0 as value")
            if value > MAX_DAYS:
                raise ValueError(f"operator '{op}' takes at most {MAX_DAYS} days (10 years); "
                                 f"got {value}")
        elif op in CHANGE_OPS:
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"operator '{op}' needs a percentage > 0 as value, e.g. 25")
        elif value is None or isinstance(value, list):
            raise ValueError(f"operator '{op}' needs a single value")
        if op in TEXT_OPS and not isinstance(value, str):
            raise ValueError(f"operator '{op}' needs a text value")
        if self.compare_to is not None and op not in CHANGE_OPS:
            raise ValueError("compare_to is only used with fell_by_pct and rose_by_pct")
        for number in value if isinstance(value, list) else [value]:
            problem = number_problem(number)
            if problem:
                raise ValueError(problem)
        return self

    def describe(self) -> str:
        if self.op in NULL_OPS or self.op is Op.changed:
            return f"{self.field} {self.op}"
        suffix = f" vs {self.compare_to}" if self.compare_to else ""
        return f"{self.field} {self.op} {self.value!r}{suffix}"


EVENTS_FIELD = "recent_events"  # the fact field event leaves read (sql/facts/recent_events.sql)
EVENT_LOOKBACK_DAYS = 90  # how far back recent_events reaches: the longest within_days
PROPERTY_OPS = COMPARISON_OPS | LIST_OPS | NULL_OPS | TEXT_OPS | {Op.between}


class Happened(StrEnum):
    since_previous_tick = "since_previous_tick"


class EventLeaf(BaseModel):
    """Something happened to the participant: an event of one type (a survey answer, a ticket,
    a product event) counted since the previous tick, or within the last days, whose
    properties pass every `where` test."""

    model_config = ConfigDict(extra="forbid")

    event: str = Field(pattern=r"^[a-z][a-z0-9_]*$",
                       description="The event type, as the event files name it.")
    happened: Happened | None = Field(
        default=None, description="since_previous_tick: counted in (previous tick, this tick].")
    within_days: MaybeInt = Field(
        default=None, ge=1, le=EVENT_LOOKBACK_DAYS,
        description=f"Counted in the last N days (1 to {EVENT_LOOKBACK_DAYS}), up to the tick.")
    where: list[Leaf] = Field(
        default_factory=list,
        description="Tests on the event's properties (`field` names a property); all must "
                    "hold for the same event.")

    @model_validator(mode="after")
    def _one_window(self) -> EventLeaf:
        if (self.happened is None) == (self.within_days is None):
            raise ValueError("an event condition needs either `happened: since_previous_tick` "
                             "or `within_days: N`")
        for test in self.where:
            if test.op not in PROPERTY_OPS:
                raise ValueError(f"operator '{test.op}' does not apply to an event property "
                                 f"(use one of {', '.join(sorted(PROPERTY_OPS))})")
        return self

    def describe(self) -> str:
        when = "since the previous tick" if self.happened else f"within {self.within_days} days"
        where = " and ".join(t.describe() for t in self.where)
        return f"{self.event} happened {when}" + (f" where {where}" if where else "")


class AllOf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    all: list[Condition] = Field(min_length=1, description="Every condition holds.")

    def describe(self) -> str:
        return "(" + " and ".join(c.describe() for c in self.all) + ")"


class AnyOf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    any: list[Condition] = Field(min_length=1, description="At least one condition holds.")

    def describe(self) -> str:
        return "(" + " or ".join(c.describe() for c in self.any) + ")"


class Not(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    not_: Condition = Field(alias="not", description="The condition does not hold.")

    def describe(self) -> str:
        return f"not {self.not_.describe()}"


class SegmentRef(BaseModel):
    """A named condition kept in `segments/<name>.yaml`, used as a leaf. The loader puts the
    segment's condition in its place (`specs/segments.py`), so nothing downstream sees one."""

    model_config = ConfigDict(extra="forbid")
    segment: str = Field(description="The name of a segment (segments/<name>.yaml).")

    def describe(self) -> str:
        return f"segment '{self.segment}'"


def number_problem(value: object) -> str | None:
    """Why a number written in a spec is out of range (NaN, infinite, beyond ±MAX_NUMBER)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and math.isnan(value):
        return "a value must be a number, not .nan"
    if abs(value) > MAX_NUMBER:
        return f"{value} is out of range: numbers in conditions lie within ±{MAX_NUMBER:.0e}"
    return None


# Tags name the branch of the union in pydantic's error locations; loader strips them.
GROUP_TAGS = ("all-of", "any-of", "not-of", "leaf", "segment", "event-leaf")


def _kind(raw: Any) -> str:
    if isinstance(raw, dict):
        for key, tag in (("all", "all-of"), ("any", "any-of"), ("not", "not-of"),
                         ("segment", "segment"), ("event", "event-leaf")):
            if key in raw:
                return tag
        return "leaf"
    if isinstance(raw, SegmentRef):
        return "segment"
    if isinstance(raw, EventLeaf):
        return "event-leaf"
    if isinstance(raw, AllOf):
        return "all-of"
    if isinstance(raw, AnyOf):
        return "any-of"
    if isinstance(raw, Not):
        return "not-of"
    return "leaf"


Condition = Annotated[
    Annotated[AllOf, Tag("all-of")]
    | Annotated[AnyOf, Tag("any-of")]
    | Annotated[Not, Tag("not-of")]
    | Annotated[Leaf, Tag("leaf")]
    | Annotated[SegmentRef, Tag("segment")]
    | Annotated[EventLeaf, Tag("event-leaf")],
    Discriminator(_kind),
]

AllOf.model_rebuild()
AnyOf.model_rebuild()
Not.model_rebuild()


def tips(node: Condition, path: str = "") -> Iterator[tuple[str, Condition]]:
    """Every node of a tree that is not all/any/not (a field leaf, an event leaf, a segment),
    with its dotted path."""
    if isinstance(node, AllOf | AnyOf):
        key, children = ("all", node.all) if isinstance(node, AllOf) else ("any", node.any)
        for i, child in enumerate(children):
            yield from tips(child, f"{path}.{key}.{i}")
    elif isinstance(node, Not):
        yield from tips(node.not_, f"{path}.not")
    else:
        yield path, node


def leaves(node: Condition, path: str = "") -> Iterator[tuple[str, Leaf]]:
    """Every fact-field leaf with its dotted path. Segments are expanded by the loader before
    anything reads leaves; an event leaf's `where` tests read the event's properties."""
    return ((at, tip) for at, tip in tips(node, path) if isinstance(tip, Leaf))


def segment_refs(node: Condition, path: str = "") -> Iterator[tuple[str, SegmentRef]]:
    """Every `{segment: name}` leaf of a tree with its dotted path."""
    return ((at, tip) for at, tip in tips(node, path) if isinstance(tip, SegmentRef))


def event_leaves(node: Condition, path: str = "") -> Iterator[tuple[str, EventLeaf]]:
    """Every event leaf of a tree with its dotted path."""
    return ((at, tip) for at, tip in tips(node, path) if isinstance(tip, EventLeaf))


def fields_used(node: Condition) -> set[str]:
    out: set[str] = {EVENTS_FIELD} if next(event_leaves(node), None) is not None else set()
    for _, leaf in leaves(node):
        out.add(leaf.field)
        if leaf.compare_to:
            out.add(leaf.compare_to)
    return out


def previous_tick_fields(node: Condition) -> set[str]:
    """Fields whose value at the previous tick the condition reads."""
    out: set[str] = set()
    for _, leaf in leaves(node):
        if leaf.op in TRANSITION_OPS or (leaf.op in CHANGE_OPS and leaf.compare_to is None):
            out.add(leaf.field)
    return out


def nesting(node: Condition) -> int:
    """How many levels of all / any / not a tree has (a lone leaf: 0)."""
    deepest, stack = 0, [(node, 0)]
    while stack:
        here, level = stack.pop()
        deepest = max(deepest, level)
        children = here.all if isinstance(here, AllOf) else here.any if isinstance(
            here, AnyOf) else [here.not_] if isinstance(here, Not) else []
        stack.extend((child, level + 1) for child in children)
    return deepest


def nesting_problem(node: Condition) -> str | None:
    """Why a tree nests too deep to be read (or evaluated), else None."""
    levels = nesting(node)
    if levels > MAX_NESTING:
        return (f"conditions nest at most {MAX_NESTING} levels of all / any / not; this one "
                f"nests {levels}")
    return None
