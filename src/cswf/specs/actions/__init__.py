"""The action types a spec may use: every module of this package registers one (or more).

A new action type is one new module here: an `ActionSpec` subclass (specs/action.py) decorated
with `@register`. The workflow model (`Action` in specs/workflow.py) is built from this registry
and rebuilt when it changes, so validation, the JSON Schema, the loader's checks, the engine's
outbox rows and delivery's routing all follow it. See docs/extending.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cswf.registry import Registry, import_modules
from cswf.specs.action import ActionSpec, asked_event, type_names

A = TypeVar("A", bound=type[ActionSpec])

_TYPES: Registry[type[ActionSpec]] = Registry("action type")


def register(model: A) -> A:
    """Make `model` an action type under each name of its `type` Literal (a class decorator)."""
    _TYPES.add(type_names(model), model)
    return model


def unregister(model: type[ActionSpec]) -> None:
    """Take an action type back (tests that add one for a while)."""
    _TYPES.remove(model)


def action_type(name: str) -> type[ActionSpec] | None:
    return _TYPES.get(name)


def action_models() -> tuple[type[ActionSpec], ...]:
    """Every registered model once, in registration order (the order of the `type` union)."""
    return _TYPES.entries()


def action_type_names() -> tuple[str, ...]:
    return _TYPES.names()


def all_results() -> tuple[str, ...]:
    """Every result any action type can have, each once, in registration order."""
    return tuple(dict.fromkeys(r for model in action_models() for r in model.results))


def result_events() -> tuple[str, ...]:
    """The event types the results of all action types are made of (`opened` for `opened` and
    `not_opened`), each once: what may arrive as action events."""
    return tuple(dict.fromkeys(asked_event(result)[0] for result in all_results()))


def channel_of(name: str) -> str | None:
    """The delivery channel of the action type `name` (None: no such type)."""
    model = _TYPES.get(name)
    return None if model is None else model.delivered_by


def on_change(listener: Callable[[], None]) -> None:
    """Call `listener` whenever a type is registered or taken back."""
    _TYPES.subscribe(listener)


# The built-in types in the order the spec language lists them (error messages, JSON Schema).
import_modules(__name__, __path__, first=("task", "email", "field_update", "webhook"))
