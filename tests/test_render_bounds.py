"""Rendering is bounded in time per render, in time per tick, and in size, in any thread."""

from __future__ import annotations

import threading
import time
import tracemalloc
from pathlib import Path

import polars as pl
from engine_harness import START, facts, spec

from cswf.engine.bounds import RenderBudget
from cswf.engine.frames import ENROLLMENT_SCHEMA, empty
from cswf.engine.render import render
from cswf.engine.tick import TickResult, run_tick
from cswf.settings import Settings

NESTED = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
TIMEOUT = "RenderTimeout: rendering took longer than 1s"
TOO_LARGE = "RenderTooLarge: rendering produced more than 262144 characters"
SLOW_SPEC = """
name: slow
owner: {user: ops@example.com}
state: enabled
entry: {field: seats, op: ge, value: 0}
steps:
  - name: notes
    actions:
      - {type: task, title: "LOOPS{{ seats }} seats"}
""".replace("LOOPS", "{% for i in range(seats) %}{% for j in range(99999) %}{% endfor %}"
                     "{% endfor %}")


def _in_thread(work):
    """Run `work` in a worker thread (as Dagster may), returning what it returned."""
    box = []
    thread = threading.Thread(target=lambda: box.append(work()))
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    return box[0]


def _slow_tick(budget: RenderBudget) -> TickResult:
    """14 participants whose title takes ~forever (each a distinct render), 2 that are quick."""
    rows = [{"participant_id": "fast-1", "seats": 1}, {"participant_id": "fast-2", "seats": 2}]
    rows += [{"participant_id": f"slow-{k:02d}", "seats": 99_999 - k} for k in range(14)]
    return run_tick(empty(ENROLLMENT_SCHEMA), facts(START, rows), None, None,
                    [spec(SLOW_SPEC, Path("."))], START, render_budget=budget)


def test_fourteen_hostile_participants_are_cut_by_the_tick_budget_in_a_worker_thread() -> None:
    started = time.monotonic()
    result = _in_thread(lambda: _slow_tick(RenderBudget(seconds=2.0)))
    elapsed = time.monotonic() - started
    assert elapsed < 6, f"took {elapsed:.1f}s: the budget did not cut it (~16s without)"
    actions = result.actions.sort("participant_id")
    fast = actions.filter(pl.col("participant_id").str.starts_with("fast"))
    assert fast.select("status", "subject").rows() == [("pending", "1 seats"),
                                                       ("pending", "2 seats")]
    slow = actions.filter(pl.col("participant_id").str.starts_with("slow"))
    assert slow["status"].unique().to_list() == ["render_failed"]
    errors = slow["error"].to_list()
    assert errors[0] == TIMEOUT  # the first slow one had its full second
    assert set(errors[1:]) == {"RenderBudgetSpent: the tick's render budget of 2s is spent"}


def test_the_size_cap_stops_a_300_mb_render_early_without_building_it() -> None:
    frame = pl.DataFrame({"n": [1]})
    tracemalloc.start()
    try:
        started = time.monotonic()
        huge = render(frame, "{% for i in range(300) %}{{ 'x' * 999999 }}{% endfor %}", {})
        in_macro = render(frame, "{% macro m() %}{% for i in range(99999) %}{{ 'xyz' * 999 }}"
                                 "{% endfor %}{% endmacro %}{{ m() }}", {})
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert huge.row(0) == (None, TOO_LARGE)
    assert in_macro.row(0) == (None, TOO_LARGE)
    assert elapsed < 1
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.0f} MiB while rendering"
    assert render(frame, "{{ 'x' * 262144 }}", {})["rendered"].item() == "x" * 262144
    assert render(frame, "{{ 'x' * 262145 }}", {}).row(0) == (None, TOO_LARGE)
    small = RenderBudget(max_chars=10)
    assert render(frame, "{% for i in range(5) %}ab{% endfor %}", {}, budget=small).row(0) == (
        "ababababab", None)
    assert render(frame, "{% for i in range(6) %}ab{% endfor %}", {}, budget=small).row(0) == (
        None, "RenderTooLarge: rendering produced more than 10 characters")


def test_a_render_in_a_thread_is_still_bounded_in_time() -> None:
    frame = pl.DataFrame({"n": [1]})
    loops_over_text = ("{% set s = 'x' * 999999 %}{% for a in s %}{% for b in s %}{% endfor %}"
                       "{% endfor %}")
    for text in (NESTED, loops_over_text):
        started = time.monotonic()
        out = _in_thread(lambda text=text: render(frame, text, {}))
        assert out.row(0) == (None, TIMEOUT)
        assert time.monotonic() - started < 3


def test_loops_keep_their_meaning_under_the_checks() -> None:
    frame = pl.DataFrame({"items": [["a", "b", "c"]]})
    text = ("{% for x in items %}{{ loop.index }}/{{ loop.length }}:{{ x }} {% else %}none"
            "{% endfor %}{% for x in [] %}{% else %}empty{% endfor %}")
    assert render(frame, text, {})["rendered"].item() == "1/3:a 2/3:b 3/3:c empty"
    assert render(frame, "{% for x in nobody %}{% endfor %}", {}).row(0) == (
        None, "UndefinedError: 'nobody' is undefined")


def test_the_limits_are_settings_whose_defaults_are_the_engines() -> None:
    limits = Settings().templates
    assert RenderBudget() == RenderBudget(seconds=limits.budget_seconds,
                                          per_render_seconds=limits.seconds_per_render,
                                          max_chars=limits.max_chars)
    assert (limits.budget_seconds, limits.seconds_per_render, limits.max_chars) == (
        30.0, 1.0, 262144)
