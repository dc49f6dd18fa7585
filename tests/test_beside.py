"""The tick's second thread (engine/beside.py): tasks in the order given, the first failure."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from concurrent.futures import Future

import polars as pl
import pytest

from cswf.engine.beside import Beside, done


def test_tasks_run_in_the_order_given_on_one_other_thread() -> None:
    ran: list[tuple[str, str]] = []

    def task(name: str) -> pl.DataFrame:
        ran.append((name, threading.current_thread().name))
        return pl.DataFrame({"name": [name]})

    with Beside() as beside:
        first = beside.submit("a", task, "first")
        second = beside.submit("a", lambda: done(first).height + 1)  # reads the earlier one
        others = [beside.submit("b", task, str(k)) for k in range(20)]
    assert [name for name, _ in ran] == ["first", *map(str, range(20))]
    assert {thread for _, thread in ran} != {threading.current_thread().name}
    assert len({thread for _, thread in ran}) == 1
    assert second.result() == 2 and all(o.done() for o in others)
    assert set(beside.phases) == {"a", "b"}


def test_the_first_failure_in_the_order_given_is_the_one_raised() -> None:
    def fail(message: str) -> None:
        raise ValueError(message)

    with pytest.raises(ValueError, match=r"^the first$"), Beside() as beside:
        beside.submit("x", lambda: None)
        beside.submit("x", fail, "the first")
        beside.submit("x", fail, "the second")
        raise RuntimeError("the tick thread's, met after both were given")


def test_the_tick_thread_s_own_error_when_no_task_failed() -> None:
    with pytest.raises(RuntimeError, match="mine"), Beside() as beside:
        beside.submit("x", lambda: None)
        raise RuntimeError("mine")


def test_a_result_not_made_yet_is_refused_rather_than_waited_for() -> None:
    with pytest.raises(RuntimeError, match="a task read the result of a task given after it"):
        done(Future())


def test_the_first_failure_keeps_its_cause() -> None:
    def fail() -> None:
        try:
            raise LookupError("the plugin's own error")
        except LookupError as cause:
            raise ValueError("evaluating steps.0 failed") from cause

    with pytest.raises(ValueError) as caught, Beside() as beside:
        beside.submit("x", fail)
        raise RuntimeError("the tick thread's")
    assert isinstance(caught.value.__cause__, LookupError)  # shown with CSWF_TRACEBACK=1


def test_an_interrupt_stays_an_interrupt_and_does_not_wait_for_the_tasks_queued() -> None:
    def fail() -> None:
        raise ValueError("a task's")

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), Beside() as beside:
        beside.submit("x", fail)
        for _ in range(20):
            beside.submit("x", time.sleep, 0.1)
        raise KeyboardInterrupt
    assert time.monotonic() - started < 1.0


def test_a_task_s_result_is_not_kept_once_its_reader_lets_it_go() -> None:
    class Rows:
        """Stands for a step's action rows."""

    with Beside() as beside:
        future = beside.submit("x", Rows)
        rows = weakref.ref(future.result())
        del future
        gc.collect()
        assert rows() is None  # not held until the tick's end
