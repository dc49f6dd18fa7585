"""The demo's terminal while the quarter runs: one bar over its ticks, and what is happening.

Dagster runs the ticks and keeps its per-partition events in the run's event log; the demo's
audience (demo/audience.py) reports each tick here. It finds the bar through a context
variable set while the run lasts, so the Dagster layer knows nothing about terminals.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

_CURRENT: ContextVar[QuarterProgress | None] = ContextVar("cswf_demo_progress", default=None)


class QuarterProgress:
    """A bar over the quarter's ticks; its text says which stage the run is in."""

    def __init__(self, console: Console, ticks: int) -> None:
        self.ticks = ticks
        self.done = 0
        self.delivery_runs = 0
        self._bar = Progress(
            SpinnerColumn(), TextColumn("{task.description:<34}"), BarColumn(bar_width=30),
            MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[detail]}"),
            console=console,
        )
        self._task = self._bar.add_task("ingest, checks, account facts", total=ticks,
                                        detail="")

    def stage(self, text: str, detail: str = "") -> None:
        self._bar.update(self._task, description=text, detail=detail)

    def tick(self, as_of: datetime, actions: int, delivered: Mapping[str, int],
             delivery_runs: int) -> None:
        """One more tick ran; `delivered`: delivery outcomes (status -> actions) so far."""
        self.done += 1
        self.delivery_runs = delivery_runs
        shown = ", ".join(f"{delivered[k]:,} {k}" for k in (
            "sent", "previewed", "deferred", "capped", "suppressed") if delivered.get(k))
        self._bar.update(self._task, advance=1, description=f"tick {as_of:%Y-%m-%d %H:%M}",
                         detail=f"{actions:,} actions" + (f"; delivered: {shown}" if shown
                                                          else ""))
        if self.done == self.ticks:
            self.stage("Dagster records the partitions",
                       "every tick of every asset goes to the run's event log")

    @contextmanager
    def showing(self) -> Iterator[QuarterProgress]:
        """Show the bar, and let the run's audience find it, for the length of the block."""
        token = _CURRENT.set(self)
        try:
            with self._bar:
                yield self
        finally:
            _CURRENT.reset(token)


def current_progress() -> QuarterProgress | None:
    """The bar of the run under way in this context, if the demo shows one."""
    return _CURRENT.get()
