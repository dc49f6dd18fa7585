"""Render Jinja2 templates for a frame of participants.

Templates run in Jinja2's sandbox with StrictUndefined: a name that is missing is an error, never
an empty string. A template that fails for one participant fails that action only.

Every Jinja2 render is bounded (engine/bounds.py): a time limit per render, a budget of rendering
time per tick and a cap on the text produced, checked while the template runs, in any thread.

Most subjects and titles are plain substitutions ("Welcome, {{ account_name }}"); those become
one Polars string expression, with the exact text Jinja2 would give. Anything else (filters,
blocks, arithmetic) is rendered by Jinja2 once per distinct combination of the names it uses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import polars as pl
from jinja2 import StrictUndefined, Template, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from cswf.engine.bounds import (
    LOOP_FILTER,
    BoundedCodeGenerator,
    RenderBudget,
    bounded,
    check_deadline,
    checked_loop,
    produced,
)
from cswf.specs.loader import RELATED, template_variables

_ROW = "__row"


MAX_TEXT = 1_000_000  # characters a template may build by repetition


class _Sandbox(SandboxedEnvironment):
    """Jinja2's sandbox (no private attributes, range capped) with bounded arithmetic, and
    loops, output, calls and lookups that check the render's deadline (engine/bounds.py)."""

    intercepted_binops = frozenset({"*", "**"})
    code_generator_class = BoundedCodeGenerator
    produced = staticmethod(produced)  # the generated code counts its output through this

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters[LOOP_FILTER] = checked_loop
        self.filters["last_event"] = last_event

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        check_deadline()
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        check_deadline()
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        check_deadline()
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise SecurityError("exponent too large")
        if operator == "*":
            sized, times = (left, right) if isinstance(left, str | list) else (right, left)
            if isinstance(sized, str | list) and isinstance(times, int) \
                    and len(sized) * times > MAX_TEXT:
                raise SecurityError("repetition too large")
        return super().call_binop(context, operator, left, right)


def last_event(events: Sequence[Mapping[str, Any]] | None, event_type: str | None = None
               ) -> dict[str, Any] | None:
    """The latest of a participant's `recent_events` (of `event_type`), its properties as keys
    beside its own (event_type, occurred_at, ...): `{{ (recent_events | last_event(
    'nps_response')).score }}`. None when there is none (reading from it is an error)."""
    found = [e for e in events or () if event_type is None or e["event_type"] == event_type]
    if not found:
        return None
    event = dict(found[-1])  # recent_events is oldest first
    properties = json.loads(event.pop("properties") or "{}")
    return {**properties, **event} if isinstance(properties, dict) else event


@lru_cache(maxsize=2)
def _environment(autoescape: bool) -> SandboxedEnvironment:
    return _Sandbox(undefined=StrictUndefined, autoescape=autoescape)


@lru_cache(maxsize=4096)
def _compiled(text: str, autoescape: bool) -> Template:
    return _environment(autoescape).from_string(text)


# Types whose text form is the same in Polars and in Python's str(): safe to vectorize.
_PLAIN_TYPES = (pl.String, pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16,
                pl.UInt32, pl.UInt64, pl.Date)
_HTML_ESCAPES = [("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&#34;"), ("'", "&#39;")]


@lru_cache(maxsize=4096)
def _substitution_parts(text: str) -> tuple[tuple[str, bool], ...] | None:
    """(text, is_name) parts when the template is literal text and bare names only."""
    body = _environment(False).parse(text).body
    if not body:
        return ()
    if len(body) != 1 or not isinstance(body[0], nodes.Output):
        return None
    parts = []
    for node in body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            parts.append((node.data, False))
        elif isinstance(node, nodes.Name) and node.ctx == "load":
            parts.append((node.name, True))
        elif (isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name)
              and node.node.name == RELATED):
            parts.append((f"{RELATED}.{node.attr}", True))
        else:
            return None
    return tuple(parts)


@lru_cache(maxsize=4096)
def _variables(text: str) -> frozenset[str]:
    """The names a template reads (parsing it is slow, and a tick renders it often)."""
    return frozenset(template_variables(text))


def _vectorized(
    frame: pl.DataFrame, text: str, constants: dict[str, object], autoescape: bool
) -> pl.DataFrame | None:
    rendered = substitution(frame, text, constants, autoescape=autoescape)
    if rendered is None:
        return None
    return frame.lazy().with_columns(  # with_columns broadcasts a template with no names
        rendered.alias("rendered"), pl.lit(None, dtype=pl.String).alias("error")
    ).select("rendered", "error").collect()


def substitution(
    frame: pl.DataFrame, text: str, constants: dict[str, object], *, autoescape: bool = False
) -> pl.Expr | None:
    """The template as one string expression over `frame`'s columns, if it is a plain
    substitution (literal text and bare names); None when Jinja2 must render it."""
    parts = _substitution_parts(text)
    if parts is None:
        return None
    pieces: list[pl.Expr] = []
    for value, is_name in parts:
        if not is_name:
            pieces.append(pl.lit(value))
            continue
        if value in constants and isinstance(constants[value], str):
            column = pl.lit(constants[value])
        elif value in frame.columns and isinstance(frame.schema[value], _PLAIN_TYPES):
            column = pl.col(value).cast(pl.String).fill_null("None")
        else:
            return None  # undefined names, floats, datetimes: Jinja2 decides
        if autoescape:
            for raw, escaped in _HTML_ESCAPES:
                column = column.str.replace_all(raw, escaped, literal=True)
        pieces.append(column)
    return pl.concat_str(pieces) if pieces else pl.lit("")


def render(
    frame: pl.DataFrame, text: str, constants: dict[str, object], *, autoescape: bool = False,
    budget: RenderBudget | None = None,
) -> pl.DataFrame:
    """Two columns aligned with `frame`: `rendered` (null on failure) and `error`. `budget`:
    the tick's rendering limits (default: a fresh budget for this call alone)."""
    budget = RenderBudget() if budget is None else budget
    fast = _vectorized(frame, text, constants, autoescape)
    if fast is not None:
        return fast
    template = _compiled(text, autoescape)
    names = sorted(_variables(text) - constants.keys())
    present = [n for n in names if n in frame.columns]
    inputs = frame.select(present).with_row_index(_ROW) if present else None
    if inputs is None:
        rendered, error = _render_one(template, constants, budget)
        return pl.DataFrame(
            {"rendered": [rendered] * frame.height, "error": [error] * frame.height},
            schema={"rendered": pl.String, "error": pl.String},
        )
    distinct = inputs.select(present).unique(maintain_order=True)
    outcomes = [
        _render_one(template, {**constants, **_nested(row)}, budget)
        for row in distinct.iter_rows(named=True)
    ]
    distinct = distinct.with_columns(
        pl.Series("rendered", [o[0] for o in outcomes], dtype=pl.String),
        pl.Series("error", [o[1] for o in outcomes], dtype=pl.String),
    )
    joined = inputs.join(distinct, on=present, how="left", nulls_equal=True).sort(_ROW)
    return joined.select("rendered", "error")


def _nested(row: dict[str, object]) -> dict[str, object]:
    """`account.<field>` columns become `account` with attributes, as templates write them."""
    prefix = f"{RELATED}."
    if not any(key.startswith(prefix) for key in row):
        return row
    flat = {k: v for k, v in row.items() if not k.startswith(prefix)}
    related = {k.removeprefix(prefix): v for k, v in row.items() if k.startswith(prefix)}
    return {**flat, RELATED: related}


def _render_one(template: Template, context: dict[str, object], budget: RenderBudget
                ) -> tuple[str | None, str | None]:
    try:
        with bounded(budget):
            return template.render(context), None
    except Exception as exc:  # a template error must not stop the tick
        return None, f"{type(exc).__name__}: {exc}"
