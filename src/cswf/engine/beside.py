"""A tick's second thread: each step's action rows are built, and each workflow's output
sorted, beside the tick's own thread, which goes on to the next step or workflow.

A tick's loop is mostly Python between small Polars queries, so on two cores one core sits
idle; Polars runs a query without holding the GIL. One worker runs the tasks in the order they
were given, so:
- a task that reads an earlier task's result (a workflow's sort reads its action rows) finds it
  done (`done`);
- the render budget (engine/bounds.py) is spent in the same order as on one thread;
- a failure is the one a single thread would meet first: the earliest task that failed, or
  else the tick thread's own error (with its cause, as `evaluating` set it); an interrupt
  (KeyboardInterrupt, SystemExit) is not a failure of the tick: it goes on at once, and the
  tasks not started are dropped.

A task reads only what it is given (and spends the render budget, in the order given): the
tick's result does not depend on which thread ran what.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from time import perf_counter
from types import TracebackType
from typing import ParamSpec, TypeVar

import polars as pl

from cswf.engine.failures import is_panic
from cswf.engine.phases import Phases

P = ParamSpec("P")
T = TypeVar("T")

# A step's action rows: built already (one thread), or being built beside.
Rows = pl.DataFrame | Future[pl.DataFrame]


class Beside:
    """The second thread of one tick (a context manager: the thread ends with it)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cswf-beside")
        self._given = 0
        # (order given, error) of the tasks that failed; not the tasks themselves, whose
        # results (a step's action rows) would otherwise stay alive until the tick's end
        self._failures: list[tuple[int, BaseException]] = []
        # Seconds per phase of the work done here; it overlaps the tick thread's phases.
        self.phases: Phases = {}

    def submit(self, phase: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
               ) -> Future[T]:
        """Run `fn` after every task submitted before it, timed as `phase`."""
        future = self._pool.submit(self._timed, phase, fn, *args, **kwargs)
        order, self._given = self._given, self._given + 1
        future.add_done_callback(lambda task: self._note(order, task))
        return future

    def _note(self, order: int, task: Future[T]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._failures.append((order, task.exception()))  # type: ignore[arg-type]

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
        interrupted = error is not None and not (isinstance(error, Exception)
                                                 or is_panic(error))
        # Every task given ran before the error on one thread: all run to the end here too,
        # unless the tick is interrupted.
        self._pool.shutdown(wait=not interrupted, cancel_futures=interrupted)
        if error is None or interrupted or not self._failures:
            return
        _, first = min(self._failures, key=lambda failed: failed[0])
        raise first from first.__cause__


def done(rows: Rows) -> pl.DataFrame:
    """Rows built (by a task submitted before the one asking, so never waited for: a wait
    there would wait on itself, the worker being one)."""
    if isinstance(rows, pl.DataFrame):
        return rows
    if not rows.done():
        raise RuntimeError("a task read the result of a task given after it")
    return rows.result()
