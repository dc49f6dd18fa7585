"""Where a tick's time goes: cheap, always-on phase timers.

Timing only, never read by the engine's results (which stay a function of their inputs):
`run_tick` collects the phases of its tick, the store adds each table's write, and the bench
prints them. Phases nest; a phase's time excludes the phases inside it, so they add up, except
those of a tick's second thread (named "... (beside)": engine/beside.py), which overlap them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from time import perf_counter

Phases = dict[str, float]  # phase name -> seconds spent in it (exclusive of nested phases)

_current: ContextVar[tuple[Phases, list[float]] | None] = ContextVar("cswf_phases", default=None)


@contextmanager
def collecting(phases: Phases) -> Iterator[Phases]:
    """Time the `phase`s run inside into `phases`."""
    token = _current.set((phases, []))
    try:
        yield phases
    finally:
        _current.reset(token)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Add the time spent inside to `name` (nothing when no collector runs)."""
    state = _current.get()
    if state is None:
        yield
        return
    phases, stack = state
    stack.append(0.0)  # time taken by the phases nested in this one
    started = perf_counter()
    try:
        yield
    finally:
        spent = perf_counter() - started
        nested = stack.pop()
        phases[name] = phases.get(name, 0.0) + spent - nested
        if stack:
            stack[-1] += spent


def timed_elsewhere(phases: Phases) -> None:
    """Add phases timed on another thread (which has no collector of its own) to the
    collector running here."""
    state = _current.get()
    if state is None:
        return
    for name, seconds in phases.items():
        state[0][name] = state[0].get(name, 0.0) + seconds
