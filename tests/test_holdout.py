"""Holdout groups: a stable, hashed share enters the control group, which receives nothing but
whose objective is tracked; changing the holdout of a running workflow is structural."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import duckdb
import polars as pl
import pytest
from engine_harness import START, Run, facts, spec

from cswf.engine.holdout import buckets, is_control
from cswf.engine.tick import run_tick
from cswf.specs.lifecycle import structural_changes
from cswf.specs.loader import SpecErrors
from cswf.specs.workflow import Holdout
from cswf.store.tables import ENGINE, HISTORY, ensure_engine_tables
from cswf.store.warehouse import load_state, write_tick

ADOPTION = """
name: adoption
owner: {user: ana@example.com}
state: enabled
entry: {field: tier, op: eq, value: enterprise}
reentry: {mode: none}
objective:
  condition: {field: seats, op: gt, value: 40}
holdout: {percent: 30, window_days: 5}
milestones:
  - {name: kickoff, trigger_days: 0, due_days: 2}
steps:
  - name: welcome
    actions: [{type: task, title: "Welcome {{ participant_id }}"}]
  - name: pause
    delay: {days: 10}
  - name: follow_up
    actions: [{type: task, title: Follow up}]
"""

# Buckets of `adoption/<id>` (see engine/holdout.py): below 3000 is the 30% control group.
PINNED = {"ACC-1": 9834, "ACC-2": 7874, "ACC-3": 6346, "ACC-4": 7717, "ACC-5": 6445,
          "ACC-6": 7972, "ACC-7": 2820, "ACC-8": 1716}


def accounts(seats: dict[str, int] | None = None) -> list[dict]:
    seats = seats or {}
    return [{"participant_id": p, "tier": "enterprise", "seats": seats.get(p, 10)}
            for p in PINNED]


def day(n: int) -> object:
    return START + timedelta(days=n)


def test_buckets_are_the_documented_sha256_prefix_and_pinned() -> None:
    ids = pl.Series(list(PINNED))
    assert dict(zip(PINNED, buckets("adoption", ids).tolist(), strict=True)) == PINNED
    by_hand = int.from_bytes(hashlib.sha256(b"adoption/ACC-1").digest()[:8], "big") % 10_000
    assert by_hand == PINNED["ACC-1"]
    in_sql = duckdb.sql("SELECT ('0x' || sha256('adoption/ACC-1')[1:16])::UBIGINT % 10000")
    assert in_sql.fetchall() == [(PINNED["ACC-1"],)]  # the formula docs/workflow-specs.md gives


def test_the_same_ids_get_the_same_group_in_any_order_and_the_share_is_the_percent() -> None:
    ids = pl.Series([f"ACC-{i:05d}" for i in range(10_000)])
    holdout = Holdout(percent=10)
    control = is_control("adoption", ids, holdout)
    assert 0.09 < control.mean() < 0.11  # 973 of 10,000
    assert control.sum() == 973
    backwards = is_control("adoption", ids.reverse(), holdout).reverse()
    assert backwards.equals(control)
    assert not is_control("other_workflow", ids, holdout).equals(control)  # per workflow


def test_the_control_group_receives_nothing_and_its_objective_is_tracked() -> None:
    run = Run([spec(ADOPTION)])
    run.days([accounts(), accounts({"ACC-1": 50, "ACC-8": 50})])
    cohorts = dict(run.state.select("participant_id", "cohort").rows())
    assert cohorts == {"ACC-1": "treatment", "ACC-2": "treatment", "ACC-3": "treatment",
                       "ACC-4": "treatment", "ACC-5": "treatment", "ACC-6": "treatment",
                       "ACC-7": "control", "ACC-8": "control"}
    receivers = set(run.actions()["participant_id"].to_list())
    assert receivers == {"ACC-1", "ACC-2", "ACC-3", "ACC-4", "ACC-5", "ACC-6"}
    entered = run.results[0].transitions.filter(pl.col("participant_id") == "ACC-7")
    assert entered.select("transition", "reason").rows() == [(
        "entered", "entry conditions met: tier eq 'enterprise'; held out in the control group "
                   "(30% holdout): it receives nothing")]
    assert run.row("adoption", "ACC-8")["objective_met_at"] == day(1)  # tracked for both
    assert run.row("adoption", "ACC-1")["objective_met_at"] == day(1)
    assert run.row("adoption", "ACC-7")["objective_met_at"] is None


def test_a_control_enrollment_completes_when_its_window_ends_and_never_runs_a_step() -> None:
    run = Run([spec(ADOPTION)])
    run.days([accounts()] * 12)
    assert run.transitions("ACC-7") == [("06-01", "entered", "(control group)"),
                                        ("06-06", "completed", "(control group)")]
    control = run.row("adoption", "ACC-7")
    assert (control["status"], control["close_reason"]) == (
        "completed", "control group: the holdout window ended")
    treated = run.actions().filter(pl.col("participant_id") == "ACC-1")
    assert sorted(treated["step_name"].to_list()) == [
        "(workflow task)", "follow_up", "milestone: kickoff", "welcome"]
    assert "ACC-7" not in run.actions()["participant_id"].to_list()


def test_manual_deploys_are_not_split() -> None:
    run = Run([spec(ADOPTION.replace("state: enabled", "state: enabled\nmanual_entry: true")
                    .replace("value: enterprise}", "value: strategic}"))])
    deploys = pl.DataFrame({"workflow": ["adoption"], "participant_id": ["ACC-7"],
                            "requested_by": ["ana@example.com"]})
    result = run_tick(run.state, facts(START, accounts()), None, None, run.workflows, START,
                      deploys=deploys)
    row = result.state.row(0, named=True)
    assert (row["participant_id"], row["cohort"]) == ("ACC-7", None)
    assert not result.actions.is_empty()  # a person chose it: it runs the flow


def test_a_holdout_needs_an_objective_and_at_most_half() -> None:
    without = ADOPTION.replace("objective:\n  condition: {field: seats, op: gt, value: 40}\n", "")
    with pytest.raises(SpecErrors, match="a holdout measures the objective"):
        spec(without)
    with pytest.raises(SpecErrors, match="percent"):
        spec(ADOPTION.replace("percent: 30", "percent: 60"))


@pytest.mark.parametrize("edited", ["holdout: {percent: 20, window_days: 5}",
                                    "holdout: {percent: 30, window_days: 7}", ""])
def test_changing_or_removing_the_holdout_is_structural(edited: str) -> None:
    before = spec(ADOPTION).structure()
    after = spec(ADOPTION.replace("holdout: {percent: 30, window_days: 5}", edited)).structure()
    assert structural_changes(before, after)
    assert "holdout of 30% over 5 days" in before


def test_a_workflow_without_holdout_has_no_cohort() -> None:
    run = Run([spec(ADOPTION.replace("holdout: {percent: 30, window_days: 5}\n", ""))])
    run.days([accounts()])
    assert run.state["cohort"].null_count() == len(PINNED)
    assert set(run.actions()["participant_id"].to_list()) == set(PINNED)


def test_a_warehouse_made_before_holdouts_gets_the_cohort_column_and_keeps_its_rows() -> None:
    con = duckdb.connect()
    before = ENGINE[0].replace("cohort VARCHAR, ", "")  # enrollment_history as first released
    con.execute(before)
    con.execute(f"INSERT INTO {HISTORY} (workflow, participant_id, enrollment_id, status, "
                "valid_from) VALUES ('old', 'ACC-9', 'old/ACC-9/1', 'completed', '2026-05-01')")
    ensure_engine_tables(con)
    run = Run([spec(ADOPTION)])
    write_tick(con, run.tick(START, accounts()))
    state = load_state(con, START + timedelta(hours=1))
    assert state.height == 9
    assert dict(state.select("participant_id", "cohort").rows())["ACC-7"] == "control"
    assert dict(state.select("participant_id", "cohort").rows())["ACC-9"] is None
