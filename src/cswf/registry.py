"""A named registry and package discovery, shared by action types and delivery channels.

Both are open sets: a new action type is one module in `specs/actions/`, a new channel one module
in `delivery/channels/`, each registering itself when its package is imported. Registrations can
be taken back (tests add a type for one test only), and listeners hear of every change (the spec
models rebuild their schema when the set of action types changes).
"""

from __future__ import annotations

import pkgutil
from collections.abc import Callable, Iterable, Sequence
from importlib import import_module
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, in registration order; one entry may answer to several names."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, T] = {}
        self._listeners: list[Callable[[], None]] = []

    def add(self, names: Iterable[str], entry: T) -> None:
        names = list(names)
        for name in names:
            taken = self._entries.get(name)
            if taken is not None and taken is not entry:
                raise ValueError(f"{self.what} '{name}' is already registered ({taken!r})")
        for name in names:
            self._entries[name] = entry
        self._changed()

    def remove(self, entry: T) -> None:
        """Forget every name of `entry` (unknown: nothing happens)."""
        names = [name for name, known in self._entries.items() if known is entry]
        for name in names:
            del self._entries[name]
        if names:
            self._changed()

    def get(self, name: str) -> T | None:
        return self._entries.get(name)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def entries(self) -> tuple[T, ...]:
        """Each entry once, in registration order."""
        return tuple({id(e): e for e in self._entries.values()}.values())

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every registration or removal."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()


def import_modules(package: str, path: Iterable[str], first: Sequence[str]) -> None:
    """Import every module of `package` (whose `__path__` is `path`): the ones in `first` in
    that order, then the others by name (registration order is the order users see)."""
    found = {m.name for m in pkgutil.iter_modules(list(path))}
    missing = set(first) - found
    if missing:
        raise ImportError(f"{package}: no module {sorted(missing)}")
    for name in [*first, *sorted(found - set(first))]:
        import_module(f"{package}.{name}")
