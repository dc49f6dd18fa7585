"""What an action type is: its spec model plus what the rest of cswf asks of it.

An action type is one module of `specs/actions/` holding an `ActionSpec` subclass registered with
`@register`. The class says, next to its YAML keys: the results a wait or branch may ask of it,
the delivery channel that carries it, its Jinja2 templates, the fact fields and owners it reads,
and how it fills its outbox row. The engine calls `outbox()` once per action of a step with a
`text(part)` callback that renders a template part for all participants at once, so a type deals
in Polars expressions and columns, never in single participants.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, get_args

import polars as pl
from pydantic import Field

from cswf.specs.common import NAME_PATTERN, Owner, Strict

Text = pl.Expr | pl.Series  # a rendered column: an expression, or Jinja2's values
# The outbox columns an action type fills; the engine sets the others (ids, tick, category,
# on_error, status, error). Anything else a type needs goes into `payload` (JSON).
OUTBOX_COLUMNS = frozenset({"assignee", "owner_group", "recipient", "due_at", "subject", "body",
                            "payload"})


class ActionProblem(ValueError):
    """A problem with one action found while loading its spec, at `key` under the action."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


class Render(Protocol):
    def __call__(self, part: str, *, autoescape: bool = False) -> tuple[Text, Text]:
        """Render the action's template `part`: (rendered, error) columns, one value per
        participant; error is null where it rendered."""
        ...


@dataclass(frozen=True)
class OutboxContext:
    """What an action may use to fill its outbox columns at a tick."""

    text: Render
    owner: Owner  # the workflow's owner
    now: pl.Expr  # the tick's as_of
    references: list[dict[str, str]] = field(default_factory=list)  # the workflow's links


@dataclass(frozen=True)
class Outbox:
    """An action's outbox columns (names from OUTBOX_COLUMNS) and the render errors of its
    templates (the first non-null one marks the row render_failed)."""

    columns: dict[str, Text]
    errors: list[Text] = field(default_factory=list)


class ActionSpec(Strict):
    """What every action has: a name to refer to it, a category, and what a failure does.

    A type adds `type: Literal[...]` (one or more names), its own keys, and overrides what it
    needs below; the defaults suit an action that renders nothing and reads no fact field.
    """

    results: ClassVar[tuple[str, ...]] = ("sent",)  # what waits and branches may ask of it
    delivered_by: ClassVar[str]  # the delivery channel (delivery/channels/)

    name: str | None = Field(
        default=None, pattern=NAME_PATTERN,
        description="Names the action for waits and branches (`<step>.<name>`).",
    )
    category: str | None = Field(default=None, description="Default: the workflow's category.")
    on_error: Literal["continue", "retry", "exit"] = Field(
        default="retry",
        description=(
            "When delivery fails: continue (record it, no retry, the flow goes on), retry "
            "(retry with backoff; the flow goes on meanwhile), exit (the enrollment exits at the "
            "next tick once the action has finally failed)."
        ),
    )
    type: str

    def templates(self, folder: Path) -> dict[str, str]:
        """Its Jinja2 template texts by part (the names `text(part)` renders); `folder` holds
        the spec, for templates kept in files. Raises ActionProblem."""
        return {}

    def fact_fields(self) -> set[str]:
        """Fact fields it reads besides those in its templates and owners."""
        return set()

    def owners(self) -> Iterator[tuple[str, Owner]]:
        """Owners it names, with their key: checked like the workflow's owner."""
        return iter(())

    def field_problems(self, participant: str, fact_fields: Mapping[str, Any]
                       ) -> list[tuple[str, str]]:
        """(key, message) for what does not fit a `participant` workflow with these facts."""
        return []

    def outbox(self, context: OutboxContext) -> Outbox:
        raise NotImplementedError(f"action type {self.type!r} does not fill the outbox")


# Results that are events of their own despite the `not_` (delivery records `not_actioned`
# when an email's approval window closed without an answer).
OWN_EVENTS = frozenset({"not_actioned"})


def asked_event(result: str) -> tuple[str, bool]:
    """The event a result asks about, and whether it asks for its absence: `not_<x>` holds
    while there is no `x` event, `incomplete` while there is no `completed` event, any other
    result (and those of OWN_EVENTS) once its own event happened."""
    if result in OWN_EVENTS:
        return result, False
    if result == "incomplete":
        return "completed", True
    if result.startswith("not_"):
        return result.removeprefix("not_"), True
    return result, False


def type_names(model: type[ActionSpec]) -> tuple[str, ...]:
    """The `type:` values a model answers to (its `type` Literal)."""
    names = get_args(model.model_fields["type"].annotation)
    if not names or not all(isinstance(n, str) for n in names):
        raise TypeError(f"{model.__name__}.type must be a Literal of type names")
    return names


def owner_columns(owner: Owner) -> dict[str, pl.Expr]:
    """assignee and owner_group; a group's task is handed to a member later (engine/assign.py),
    until then (or with no groups configured) the assignee reads `group:<name>`."""
    if owner.field is not None:
        assignee = pl.col(owner.field).cast(pl.String)
    elif owner.group is not None:
        assignee = pl.lit(f"group:{owner.group}")
    else:
        assignee = pl.lit(owner.user)
    return {"assignee": assignee, "owner_group": pl.lit(owner.group, dtype=pl.String)}


def settings_json(**settings: object) -> pl.Expr:
    """The action's settings that have no column of their own, as JSON (the same for every
    participant, so encoded once)."""
    return pl.lit(json.dumps(settings, sort_keys=True))
