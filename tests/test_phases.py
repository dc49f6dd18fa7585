"""The tick's phase timers: where its time goes, never part of its results."""

from __future__ import annotations

import time
from dataclasses import fields

import duckdb
from engine_harness import START, facts, spec

from cswf.engine.frames import ENROLLMENT_SCHEMA, empty
from cswf.engine.phases import collecting, phase
from cswf.engine.tick import run_tick
from cswf.store.tables import ensure_engine_tables
from cswf.store.warehouse import write_tick

ONBOARDING = """
name: onboarding
owner: {field: csm}
state: enabled
entry: {field: days_to_renewal, op: lt, value: 90}
steps:
  - name: hello
    actions: [{type: task, title: "Call {{ account_name }}"}]
"""


def test_nested_phases_count_their_own_time_only() -> None:
    phases: dict[str, float] = {}
    with collecting(phases), phase("outer"):
        time.sleep(0.02)
        with phase("inner"):
            time.sleep(0.05)
    assert set(phases) == {"outer", "inner"}
    assert 0.02 <= phases["outer"] < 0.05 <= phases["inner"]


def test_a_phase_outside_a_collector_times_nothing() -> None:
    with phase("alone"):
        pass  # no collector: nothing to add to, and no error


def test_a_tick_and_its_write_report_their_phases() -> None:
    rows = [{"participant_id": "A", "account_name": "Acme", "csm": "c@example.com",
             "days_to_renewal": 30}]
    result = run_tick(empty(ENROLLMENT_SCHEMA), facts(START, rows), None, None,
                      [spec(ONBOARDING)], START)
    assert {"evaluate", "admit", "flow", "emit (beside)", "sort (beside)", "frames",
            "other"} <= set(result.phases)
    assert all(seconds >= 0 for seconds in result.phases.values())
    timing = {f.name: f.compare for f in fields(result)}
    assert timing["phases"] is False  # timings differ from run to run: not part of the result
    con = duckdb.connect(":memory:")
    ensure_engine_tables(con)
    outcome = write_tick(con, result)
    assert {"write enrollment_history", "write actions_outbox", "write transitions",
            "write other"} <= set(outcome.phases)
