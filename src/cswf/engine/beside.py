"""A tick's second thread: each step's action rows are built, and each workflow's output
sorted, beside the tick's own thread, which goes on to the next step or workflow.

A tick's loop is mostly Python between small Polars queries, so on two cores one core sits
idle; Polars runs a query without holding the GIL. One worker runs the tasks in the order they
were given, so:
- a task that reads an earlier task's result (a workflow's sort reads its action rows) finds it
  done (`done`);
- the render budget (engine/bounds.py) is spent in the same order as on one thread;
- a failure is the one a single thread would meet first: the earliest task that failed, or
  else the tick thread's own error.

Every task is a pure function of what it is given: the tick's result does not depend on which
thread ran what.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from time import perf_counter
from types import TracebackType
from typing import ParamSpec, TypeVar

import polars as pl

from cswf.engine.phases import Phases

P = ParamSpec("P")
T = TypeVar("T")

# A step's action rows: built already (one thread), or being built beside.
Rows = pl.DataFrame | Future[pl.DataFrame]


class Beside:
    """The second thread of one tick (a context manager: the thread ends with it)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cswf-beside")
        self._tasks: list[Future[object]] = []
        # Seconds per phase of the work done here; it overlaps the tick thread's phases.
        self.phases: Phases = {}

    def submit(self, phase: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
               ) -> Future[T]:
        """Run `fn` after every task submitted before it, timed as `phase`."""
        future = self._pool.submit(self._timed, phase, fn, *args, **kwargs)
        self._tasks.append(future)  # type: ignore[arg-type]
        return future

    def _timed(self, phase: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        started = perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.phases[phase] = self.phases.get(phase, 0.0) + perf_counter() - started

    def __enter__(self) -> Beside:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        # Every task given ran before the error on one thread: all run to the end here too.
        self._pool.shutdown(wait=True)
        if error is None:
            return
        for task in self._tasks:  # in the order given: the first failure one thread meets
            failure = task.exception()
            if failure is not None:
                raise failure from None


def done(rows: Rows) -> pl.DataFrame:
    """Rows built (by a task submitted before the one asking, so never waited for: a wait
    there would wait on itself, the worker being one)."""
    if isinstance(rows, pl.DataFrame):
        return rows
    if not rows.done():
        raise RuntimeError("a task read the result of a task given after it")
    return rows.result()
