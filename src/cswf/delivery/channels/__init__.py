"""The delivery channels: every module of this package registers one.

A new channel is one new module here: a `Channel` subclass (delivery/channel.py) decorated with
`@register`, named by the action types it carries (`ActionSpec.delivered_by`). See
docs/extending.md.
"""

from __future__ import annotations

from typing import TypeVar

from cswf.delivery.channel import Channel
from cswf.registry import Registry, import_modules
from cswf.specs.actions import channel_of

C = TypeVar("C", bound=type[Channel])

_CHANNELS: Registry[Channel] = Registry("delivery channel")


def register(channel: C) -> C:
    """Make `channel` (a Channel subclass) a delivery channel under its name (a decorator)."""
    _CHANNELS.add([channel.name], channel())
    return channel


def unregister(channel: type[Channel]) -> None:
    """Take a channel back (tests that add one for a while)."""
    registered = _CHANNELS.get(channel.name)
    if isinstance(registered, channel):
        _CHANNELS.remove(registered)


def get_channel(name: str) -> Channel | None:
    return _CHANNELS.get(name)


def channels() -> tuple[Channel, ...]:
    return _CHANNELS.entries()


def channel_names() -> tuple[str, ...]:
    return _CHANNELS.names()


def channel_for(action_type: str) -> Channel | None:
    """The channel that carries actions of this type (None: unknown type, or its channel is
    not registered)."""
    name = channel_of(action_type)
    return None if name is None else _CHANNELS.get(name)


def is_idempotent(name: str | None) -> bool:
    """Whether sending twice on this channel is harmless (unknown channels: as before, yes)."""
    channel = _CHANNELS.get(name or "")
    return channel is None or channel.idempotent


import_modules(__name__, __path__, first=("smtp", "webhook", "dry_run", "table"))
