"""`cswf backtest`: a workflow as its spec file is now, over past ticks, in a scratch copy; and
preview, backtest and explain against what the live ticks then did."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest
from landing_rows import contract_columns, snapshot_csv
from test_cli_errors import cswf, one_error

from cswf.demo.generate import generate_book
from cswf.ingest.contract import ACCOUNTS

REPO = Path(__file__).resolve().parents[1]
RESCUE = """
name: rescue
owner: {field: csm_email}
state: draft
entry:
  all:
    - {field: tier, op: eq, value: enterprise}
    - {field: health_score, op: lt, value: 60}
exit: {field: stage, op: eq, value: churned}
objective: {condition: {field: health_score, op: ge, value: 70}}
steps:
  - name: call
    actions: [{type: task, title: "Call {{ account_name }}"}]
  - name: wait
    delay: {days: 7}
"""
# The same with half held out: of a1 and a2, a1 falls in the control group (its hash bucket).
HELD = RESCUE.replace("name: rescue", "name: held") + "holdout: {percent: 50}\n"
# (tier, health, stage) on 2026-06-01, then on 2026-06-02.
BOOK = {
    "a1": [("enterprise", 50, "mature"), ("enterprise", 75, "churned")],  # in, then out
    "a2": [("enterprise", 62, "mature"), ("enterprise", 55, "mature")],  # in on day 2
    "a3": [("smb", 40, "mature"), ("smb", 40, "mature")],  # never qualifies
    "a4": [("enterprise", 65, "mature"), ("enterprise", 72, "mature")],  # never qualifies
    "a5": [("enterprise", 30, "churned"), ("enterprise", 30, "churned")],  # exit holds
}
TABLES = ("tick_log", "enrollment_history", "transitions", "actions_outbox", "workflow_versions")


def rescue_project(root: Path) -> Path:
    (root / "workflow_specs").mkdir(parents=True)
    (root / "workflow_specs" / "rescue.yaml").write_text(RESCUE)
    (root / "workflow_specs" / "held.yaml").write_text(HELD)
    (root / "cswf.yaml").write_text("tick_start: '2026-05-31 00:00'\n")
    accounts = root / "data/landing/accounts"
    accounts.mkdir(parents=True)
    for i, day in enumerate((date(2026, 6, 1), date(2026, 6, 2))):
        rows = [{"account_id": a, "tier": t, "health_score": str(h), "stage": s}
                for a, days in BOOK.items() for t, h, s in [days[i]]]
        (accounts / f"accounts_{day}.csv").write_text(
            snapshot_csv(contract_columns(ACCOUNTS), day, rows))
    return root


def counts(root: Path) -> dict[str, int]:
    with duckdb.connect(str(root / "data/cswf.duckdb"), read_only=True) as con:
        return {t: con.sql(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in TABLES}


@pytest.fixture(scope="module")
def rescue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The draft `rescue`, with live ticks run at 2026-06-01 00:00 and 03:00 (it took nobody)."""
    root = rescue_project(tmp_path_factory.mktemp("backtest"))
    code, out, err = cswf("run", "--start", "2026-06-01T00:00", "--end", "2026-06-01T03:00",
                          "--root", str(root))
    assert code == 0, out + err
    return root


def test_a_draft_is_run_over_past_ticks_and_the_numbers_read(rescue: Path) -> None:
    before = counts(rescue)
    code, out, err = cswf("backtest", "rescue", "--from", "2026-06-01", "--to", "2026-06-02",
                          "--json", "--root", str(rescue))
    assert code == 0, out + err
    found = json.loads(out)
    assert (found["workflow"], found["ticks"], found["held"]) == ("rescue", 9, None)
    entered = found["entered"]
    assert entered["total"] == 2
    assert [(t["tick"], t["entered"]) for t in entered["per_tick"] if t["entered"]] == [
        ("2026-06-01T00:00:00", 1), ("2026-06-02T00:00:00", 1)]
    assert len(entered["per_tick"]) == 9
    assert [s["participant_id"] for s in entered["sample"]] == ["a1", "a2"]
    assert found["actions"] == [
        {"step": 0, "step_name": "call", "action_type": "task", "actions": 2}]
    assert found["exits"] == [{"reason": "exit conditions met: stage eq 'churned'", "exits": 1}]
    assert found["completed"] == 0
    # a1 rose to 75 (met), a2 fell to 55; a5 qualified but its exit condition held; a4 rose
    # to 72 without the workflow.
    assert found["objective"] == {"condition": "health_score ge 70", "groups": [
        {"group": "entered", "participants": 2, "met_at_start": 0.0, "met_at_end": 0.5,
         "change": 0.5},
        {"group": "qualified, did not enter", "participants": 1, "met_at_start": 0.0,
         "met_at_end": 0.0, "change": 0.0},
        {"group": "did not qualify", "participants": 2, "met_at_start": 0.0, "met_at_end": 0.5,
         "change": 0.5},
    ]}
    # The working database is as it was: nothing stored, nothing in the outbox.
    assert counts(rescue) == before
    with duckdb.connect(str(rescue / "data/cswf.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM transitions WHERE workflow = 'rescue'"
                       ).fetchall() == [(0,)]


def test_a_holdout_control_group_is_counted_apart(rescue: Path) -> None:
    code, out, err = cswf("backtest", "held", "--from", "2026-06-01", "--to", "2026-06-02",
                          "--json", "--root", str(rescue))
    assert code == 0, out + err
    found = json.loads(out)
    assert (found["entered"]["total"], found["entered"]["control"]) == (2, 1)
    assert found["actions"] == [  # a2's task only: the control group receives nothing
        {"step": 0, "step_name": "call", "action_type": "task", "actions": 1}]
    groups = {g["group"]: (g["participants"], g["met_at_start"], g["met_at_end"])
              for g in found["objective"]["groups"]}
    assert groups["entered"] == (1, 0.0, 0.0)  # a2: 62 -> 55
    assert groups["entered, held out (control)"] == (1, 0.0, 1.0)  # a1: 50 -> 75


def test_the_table_shows_the_same_numbers(rescue: Path) -> None:
    code, out, err = cswf("backtest", "rescue", "--from", "2026-06-01", "--to", "2026-06-02",
                          "--root", str(rescue))
    assert code == 0, out + err
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert lines[0] == ("rescue backtest from 2026-06-01 00:00 to 2026-06-02 00:00 (9 ticks), "
                        "run in a scratch copy: nothing was stored or sent.")
    assert lines[1] == "entered: 2 (at 2 of 9 ticks); completed: 0; exited: 1"
    assert "│ 0 │ call │ task │ 2 │" in lines
    assert "│ exit conditions met: stage eq 'churned' │ 1 │" in lines
    assert "│ entered │ 2 │ 0.0 │ 0.5 │ 0.5 │" in lines


def test_bad_input_is_one_line(rescue: Path) -> None:
    _, line = one_error(["backtest", "rescu", "--from", "2026-06-01", "--to", "2026-06-02",
                         "--root", str(rescue)])
    assert line.endswith("no workflow 'rescu' — did you mean 'rescue'?")
    _, line = one_error(["backtest", "rescue", "--from", "2026-06-02", "--to", "2026-06-01",
                         "--root", str(rescue)])
    assert line == ("error: --to: 2026-06-01 00:00 is before --from 2026-06-02 00:00 — give a "
                    "--to at or after --from")
    _, line = one_error(["backtest", "rescue", "--from", "2026-06-01T01:00", "--to",
                         "2026-06-01T02:00", "--root", str(rescue)])
    assert line.startswith("error: --from/--to: no ticks of '0 */3 * * *' between")
    _, line = one_error(["backtest", "rescue", "--from", "June", "--to", "2026-06-01",
                         "--root", str(rescue)])
    assert "--from" in line


# --- preview, backtest and explain against the live ticks, on a small demo book -------------

FIRST, T, LAST = "2026-05-31T00:00", "2026-06-02T00:00", "2026-06-02T21:00"
# The busiest specs of the small book (onboarding_plan: milestones, contacts, a notification).
COMPARED = ("renewal_preparation", "onboarding_plan")


@pytest.fixture(scope="module")
def demo_book(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """The repo's specs on 80 simulated accounts: ticks up to 2026-06-01 21:00, then preview
    at 2026-06-02 00:00 (every enabled workflow), then the ticks of 2026-06-02."""
    root = tmp_path_factory.mktemp("agree")
    shutil.copytree(REPO / "workflow_specs", root / "workflow_specs")
    (root / "cswf.yaml").write_text("database: cswf.duckdb\nlanding_dir: landing\n"
                                    "tick_start: '2026-05-31 00:00'\n")
    generate_book(root / "landing", accounts=80, days=45, start=date(2026, 5, 1))
    code, out, err = cswf("run", "--start", "2026-05-31", "--end", "2026-06-01T21:00",
                          "--root", str(root))
    assert code == 0, out + err
    previews = {}
    for spec in sorted((root / "workflow_specs").glob("*.yaml")):
        if "state: enabled" not in spec.read_text():
            continue
        code, out, err = cswf("preview", spec.stem, "--as-of", T, "--root", str(root))
        assert code == 0, out + err
        previews[spec.stem] = int(out.split(" would enter")[0].split()[-1])
    code, out, err = cswf("run", "--start", T, "--end", LAST, "--root", str(root))
    assert code == 0, out + err
    return root, previews


def test_preview_would_enter_is_what_the_tick_then_entered(
        demo_book: tuple[Path, dict[str, int]]) -> None:
    root, previews = demo_book
    with duckdb.connect(str(root / "cswf.duckdb"), read_only=True) as con:
        live = dict(con.sql("SELECT workflow, count(*) FROM transitions WHERE tick = $t AND "
                            "transition = 'entered' GROUP BY ALL", params={"t": T}).fetchall())
    assert previews == {w: live.get(w, 0) for w in previews}
    assert sum(previews.values()) > 0


@pytest.mark.parametrize("workflow", COMPARED)
def test_backtest_of_an_unchanged_spec_is_what_the_ticks_did(
        demo_book: tuple[Path, dict[str, int]], workflow: str) -> None:
    root, _ = demo_book
    code, out, err = cswf("backtest", workflow, "--from", FIRST, "--to", LAST, "--json",
                          "--root", str(root))
    assert code == 0, out + err
    found = json.loads(out)
    params = {"w": workflow, "a": FIRST, "b": LAST}
    window = "workflow = $w AND tick BETWEEN $a AND $b"
    with duckdb.connect(str(root / "cswf.duckdb"), read_only=True) as con:
        entered = con.sql(f"SELECT strftime(tick, '%Y-%m-%dT%H:%M:%S'), count(*) FROM "
                          f"transitions WHERE {window} AND transition = 'entered' "
                          "GROUP BY ALL ORDER BY 1", params=params).fetchall()
        actions = con.sql(f"SELECT step, step_name, action_type, count(*) FROM actions_outbox "
                          f"WHERE {window} GROUP BY ALL ORDER BY step NULLS LAST, step_name, "
                          "action_type",
                          params=params).fetchall()
        exits = con.sql(f"SELECT reason, count(*) FROM transitions WHERE {window} AND "
                        "transition = 'exited' GROUP BY ALL ORDER BY 2 DESC, 1",
                        params=params).fetchall()
    assert entered, f"{workflow} entered nobody live: the comparison would prove nothing"
    assert [(t["tick"], t["entered"]) for t in found["entered"]["per_tick"]
            if t["entered"]] == [tuple(r) for r in entered]
    assert [tuple(a.values()) for a in found["actions"]] == [tuple(r) for r in actions]
    assert [tuple(e.values()) for e in found["exits"]] == [tuple(r) for r in exits]


def test_explain_inside_at_a_step_is_the_enrollments_table(
        demo_book: tuple[Path, dict[str, int]]) -> None:
    root, _ = demo_book
    with duckdb.connect(str(root / "cswf.duckdb"), read_only=True) as con:
        rows = con.sql("SELECT workflow, participant_id, status, step_name FROM enrollments "
                       "WHERE workflow IN ('renewal_preparation', 'onboarding_plan') "
                       "QUALIFY row_number() OVER (PARTITION BY workflow, status "
                       "ORDER BY participant_id) <= 2 ORDER BY ALL").fetchall()
    assert {status for _, _, status, _ in rows} >= {"active"}
    for workflow, participant, status, step in rows:
        code, out, err = cswf("explain", workflow, participant, "--root", str(root))
        assert code == 0, out + err
        first = " ".join(out.splitlines()[0].split())
        if status == "active":
            assert f"inside (enrollment {workflow}/{participant}/" in first, first
            assert f"at step {step} since" in first, first
        else:
            assert first.endswith("not inside."), first


def test_an_edited_spec_is_run_as_its_file_is_now_quietly(
        demo_book: tuple[Path, dict[str, int]]) -> None:
    """Renewals 60 days out instead of 90: fewer enter than live. The copy's ticks, delivered
    live (a dry run), are rewritten without announcing it: that is the copy, not the history."""
    root, _ = demo_book
    code, out, err = cswf("deliver", "--now", LAST, "--root", str(root))
    assert code == 0, out + err
    spec = root / "workflow_specs" / "renewal_preparation.yaml"
    text = spec.read_text()
    assert "within_next_days, value: 90}" in text
    try:
        spec.write_text(text.replace("within_next_days, value: 90}",
                                     "within_next_days, value: 60}"))
        code, out, err = cswf("backtest", "renewal_preparation", "--from", FIRST, "--to", LAST,
                              "--json", "--root", str(root))
    finally:
        spec.write_text(text)
    assert code == 0 and err == "", out + err
    with duckdb.connect(str(root / "cswf.duckdb"), read_only=True) as con:
        (live,), = con.sql("SELECT count(*) FROM transitions WHERE transition = 'entered' AND "
                           "workflow = 'renewal_preparation'").fetchall()
    assert 0 < json.loads(out)["entered"]["total"] < live
