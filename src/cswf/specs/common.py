"""What the workflow model and the action types share: strict models, names, owners.

Kept apart from `workflow.py` so that action types (`specs/actions/`) can use them while the
workflow model is built from the registered action types.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from difflib import get_close_matches
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
# Bounds on what a spec may say: a length beyond these is a typo, and it would overflow the
# engine's datetimes (a 100-million-day delay passed validation, then panicked in every tick).
MAX_DAYS = 3650  # 10 years: delays, waits, re-entry, milestones, stages, relative dates
MAX_MONTHS = 120  # 10 years
MAX_NUMBER = 1e15  # a number in a condition: far above any fact, well inside Int64 and Float64
MAX_YAML_DEPTH = 200  # levels of YAML mappings and lists: checked before the model reads them


def quoted_number(value: object) -> bool:
    """Whether `value` is a number written in quotes in YAML ("60", "2.5")."""
    try:
        return isinstance(value, str) and math.isfinite(float(value))
    except ValueError:
        return False


def drop_the_quotes(text: str) -> str:
    """The one message for a number in quotes where a number is expected."""
    return f"write the number without quotes: {text.strip()}, not {text!r}"


def _unquoted(value: object) -> object:
    if quoted_number(value):
        raise ValueError(drop_the_quotes(str(value)))
    if isinstance(value, bool):  # YAML's yes/true would pass as 1
        raise ValueError(f"expected a number, got {value!r}")
    return value


# The numbers of every YAML file cswf reads (specs, segments, cswf.yaml): written as numbers,
# without quotes. Pydantic alone took `days: "1"` as 1 (and `days: true` as 1), but a
# condition's `value: "60"` stays text; one rule for all, the one the JSON schema (and so the
# editor) already states.
Int = Annotated[int, BeforeValidator(_unquoted)]
Float = Annotated[float, BeforeValidator(_unquoted)]
MaybeInt = Annotated[int | None, BeforeValidator(_unquoted)]  # a bound on it stays in the schema
MaybeFloat = Annotated[float | None, BeforeValidator(_unquoted)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Owner(Strict):
    """Who gets the work: a fact field holding a user (the account's CSM), a group, or a user."""

    field: str | None = Field(default=None, description="Fact field holding the assignee.")
    group: str | None = Field(default=None, description="A user group name.")
    user: str | None = Field(default=None, description="One user (email or login).")

    @model_validator(mode="after")
    def _exactly_one(self) -> Owner:
        given = [k for k in ("field", "group", "user") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("owner needs exactly one of: field, group, user")
        return self


def yaml_problem(exc: Exception) -> tuple[int | None, str]:
    """A YAML error as (line, `not valid YAML: what (column C)`). An unclosed bracket or quote
    is only noticed where the parser gives up, lines later: for such a construct (a flow
    collection, a quoted scalar, a key), the line is the one where it starts, and the message
    says where the parser stopped. A block's context is the whole block: its problem's line."""
    mark = getattr(exc, "problem_mark", None)
    start = getattr(exc, "context_mark", None)
    context = getattr(exc, "context", None)
    problem = getattr(exc, "problem", None)
    what = " ".join(filter(None, (context, problem))) or str(exc).splitlines()[0]
    if mark is None:
        return None, f"not valid YAML: {what}"
    if start is not None and context and problem and start.line < mark.line \
            and not context.startswith("while parsing a block"):
        return start.line + 1, (f"not valid YAML: {context} (column {start.column + 1}): "
                                f"{problem} on line {mark.line + 1} (column {mark.column + 1})")
    return mark.line + 1, f"not valid YAML: {what} (column {mark.column + 1})"


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """`did you mean 'x'?` for the closest of `choices`, else None. A near match by difflib's
    ratio must also be a typo: a few edits away (a swap counts once), so `bgi` suggests `big`
    but `colour` does not suggest `holdout`."""
    for close in get_close_matches(word, list(choices), n=3, cutoff=0.6):
        if _edits(word, close) <= max(1, len(word) // 3):
            return f"did you mean '{close}'?"
    return None


def _edits(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps."""
    rows = [list(range(len(b) + 1))]
    for i, x in enumerate(a, 1):
        row = [i]
        for j, y in enumerate(b, 1):
            cost = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                cost = min(cost, rows[-2][j - 2] + 1)
            row.append(cost)
        rows.append(row)
    return rows[-1][-1]


def unknown_field(name: str, fact_fields: Iterable[str]) -> str:
    """The message for a spec naming a fact field that does not exist."""
    known = sorted(fact_fields)
    hint = did_you_mean(name, known)
    return (f"unknown field '{name}'{f' ({hint})' if hint else ''}; fields that exist: "
            f"{', '.join(known)}")


def too_deep(raw: object, limit: int = MAX_YAML_DEPTH) -> list[str] | None:
    """The path to the first place where `raw` (parsed YAML) nests more than `limit` mappings
    and lists, else None. Iterative: the model's own validation would recurse (and fail) on it."""
    stack: list[tuple[object, list[str]]] = [(raw, [])]
    while stack:
        node, path = stack.pop()
        if len(path) > limit:
            return path
        if isinstance(node, dict):
            stack.extend((value, [*path, str(key)]) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, [*path, str(i)]) for i, value in enumerate(node))
    return None
