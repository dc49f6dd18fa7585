"""Guards: a glitched snapshot holds its tick before anything leaves; a person approves or
rejects it. Small hand-written books, one tick a day at noon, delivery in dry run."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import hypothesis
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from landing_rows import contract_columns, snapshot_csv

from cswf import project
from cswf.delivery import deliver
from cswf.engine.guard import NORM_SCHEMA, Tally, active_by_workflow, tally_of, tripped
from cswf.engine.tick import TickResult
from cswf.ingest.contract import ACCOUNTS
from cswf.project.fanout import commit_tick, prepare_tick, shard_tick
from cswf.settings import Settings, load_settings

DAY1 = date(2026, 6, 1)

RENEWAL = """
name: renewal_check_in
owner: {field: csm_email}
state: enabled
entry: {field: renewal_date, op: within_next_days, value: 90}
exit: {field: days_to_renewal, op: gt, value: 120}
steps:
  - name: hello
    actions: [{type: email, subject: "Your renewal", body: "Hi"}]
  - name: wait
    delay: {days: 60}
  - name: call
    actions: [{type: task, title: "Call {{ account_name }}"}]
"""

WELCOME = """
name: onboarding_welcome
owner: {field: csm_email}
state: enabled
entry: {field: stage, op: eq, value: onboarding}
steps:
  - name: welcome
    actions: [{type: email, subject: "Welcome", body: "Hi"}]
  - name: wait
    delay: {days: 30}
  - name: check
    actions: [{type: task, title: "Check on {{ account_name }}"}]
"""


def noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12)


def book(accounts: int, day: date, **change: object) -> list[dict[str, str]]:
    """`accounts` accounts in adoption, renewing 30 to 89 days after DAY1; `change` sets a
    column for all (a callable gets the account's index)."""
    rows = []
    for i in range(accounts):
        row = {"account_id": f"ACC-{i:03d}", "account_name": f"Account {i}",
               "stage": "adoption", "renewal_date": str(DAY1 + timedelta(days=30 + i % 60)),
               "snapshot_date": str(day)}
        for column, value in change.items():
            row[column] = str(value(i) if callable(value) else value)
        rows.append(row)
    return rows


def land(root: Path, day: date, rows: list[dict[str, str]]) -> None:
    path = root / "landing" / "accounts" / f"accounts_{day}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(snapshot_csv(contract_columns(ACCOUNTS), day, rows))


def make_project(root: Path, specs: dict[str, str], extra: str = "") -> Settings:
    (root / "workflow_specs").mkdir(parents=True)
    for name, text in specs.items():
        (root / "workflow_specs" / f"{name}.yaml").write_text(text)
    (root / "cswf.yaml").write_text(
        f"database: {root / 'cswf.duckdb'}\nlanding_dir: {root / 'landing'}\n"
        "tick_start: '2026-06-01 12:00'\ntick_cron: '0 12 * * *'\n"
        f"delivery: {{dry_run: true, dry_run_dir: {root / 'preview'}, cap_per_day: null, "
        "quiet_hours: null}\n" + extra)
    return load_settings(root)


def run(con: duckdb.DuckDBPyConnection, settings: Settings, first: date,
        last: date) -> project.RunSummary:
    """Ingest what landed, then tick every noon from `first` to `last`."""
    project.ingest(con, settings, noon(last))
    ticks = project.ticks_in(settings, noon(first), noon(last))
    project.store_facts(con, settings, ticks)
    return project.run_ticks(con, settings, project.load_workflows(settings), ticks)


def delivered(con: duckdb.DuckDBPyConnection, settings: Settings, now: datetime) -> dict:
    """Deliver (dry run) as of `now`; the emails previewed so far, by the tick that emitted them."""
    deliver(con, {}, settings.delivery_config(), now)
    rows = con.execute(
        "SELECT o.tick, count(*) FROM deliveries AS d JOIN actions_outbox AS o USING (action_id) "
        "WHERE d.status = 'previewed' AND o.action_type = 'email' GROUP BY ALL ORDER BY 1"
    ).fetchall()
    return {tick.date(): n for tick, n in rows}


def hold_rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("SELECT as_of::DATE, workflow, guard, observed, norm, threshold, minimum, "
                       "status FROM tick_holds ORDER BY ALL").fetchall()


@pytest.fixture()
def renewals(tmp_path: Path) -> tuple[duckdb.DuckDBPyConnection, Settings]:
    """60 accounts entered at launch (June 1) and waiting; June 6's file moves every renewal
    date a year later, so all 60 would exit at once."""
    settings = make_project(tmp_path, {"renewal_check_in": RENEWAL})
    for n in range(5):
        land(tmp_path, DAY1 + timedelta(days=n), book(60, DAY1 + timedelta(days=n)))
    glitch = DAY1 + timedelta(days=5)
    land(tmp_path, glitch, book(60, glitch, renewal_date=lambda i: DAY1 + timedelta(
        days=365 + 30 + i % 60)))
    con = duckdb.connect(str(settings.database_path))
    summary = run(con, settings, DAY1, DAY1 + timedelta(days=4))
    assert summary.held is None and summary.ticks == 5
    return con, settings


RENEWAL_HELD = (
    "tick 2026-06-06 12:00 is held by the exits guard: renewal_check_in: 60 exits of 60 active "
    "(100%; the limit is 20% and at least 10) — {what}: `cswf approve 2026-06-06T12:00` "
    "releases it, `cswf reject 2026-06-06T12:00` discards it and the ticks after it")


def test_a_mass_exit_holds_the_tick_and_nothing_of_it_is_delivered(renewals) -> None:
    con, settings = renewals
    june6 = DAY1 + timedelta(days=5)
    summary = run(con, settings, june6, june6)

    assert summary.held == noon(june6)
    assert hold_rows(con) == [(june6, "renewal_check_in", "exits", 60, 60.0, 12.0, 10, "held")]
    sample = con.execute("SELECT sample FROM tick_holds").fetchall()[0][0]
    assert sample.startswith('[{"participant_id": "ACC-000", "facts": {"days_to_renewal": ')
    # stored like any tick: its exits are there to look at
    assert con.execute("SELECT count(*) FROM transitions WHERE transition = 'exited'"
                       ).fetchall() == [(60,)]
    # the launch's 60 emails leave; nothing of the held tick does
    assert delivered(con, settings, noon(june6)) == {DAY1: 60}
    with pytest.raises(project.TickHeld) as held:
        run(con, settings, june6 + timedelta(days=1), june6 + timedelta(days=1))
    assert str(held.value) == RENEWAL_HELD.format(
        what="no later tick runs until it is decided")


def test_approve_releases_a_held_tick(renewals) -> None:
    con, settings = renewals
    june6 = DAY1 + timedelta(days=5)
    run(con, settings, june6, june6)

    project.approve(con, noon(june6), "maria", "we really moved renewals", noon(june6))

    assert hold_rows(con)[0][-1] == "approved"
    assert con.execute("SELECT decided_by, reason FROM tick_holds").fetchall() == [
        ("maria", "we really moved renewals")]
    land(settings.root, june6 + timedelta(days=1), book(60, june6 + timedelta(days=1)))
    assert run(con, settings, june6 + timedelta(days=1), june6 + timedelta(days=1)).held is None
    # the approved tick run again as it was stays released
    assert run(con, settings, june6, june6).held is None
    assert hold_rows(con)[0][-1] == "approved"


def test_reject_discards_the_tick_and_the_fixed_snapshot_runs(renewals) -> None:
    con, settings = renewals
    june6 = DAY1 + timedelta(days=5)
    run(con, settings, june6, june6)

    assert project.reject(con, noon(june6), "cli", None, noon(june6)) == 1

    assert hold_rows(con)[0][-1] == "rejected"
    assert con.execute("SELECT max(as_of)::DATE FROM tick_log").fetchall() == [
        (june6 - timedelta(days=1),)]
    assert con.execute("SELECT count(*) FROM transitions WHERE transition = 'exited'"
                       ).fetchall() == [(0,)]
    land(settings.root, june6, book(60, june6))  # the export, fixed
    summary = run(con, settings, june6, june6 + timedelta(days=1))
    assert summary.held is None and summary.written == 2
    assert con.execute("SELECT count(*) FROM transitions WHERE transition = 'exited'"
                       ).fetchall() == [(0,)]
    with pytest.raises(LookupError, match=r"tick 2026-06-06T12:00 is not held \(no tick is held\)"):
        project.approve(con, noon(june6), "cli", None, noon(june6))


def test_a_stage_glitch_spikes_entries_and_emails_and_sends_none(tmp_path: Path) -> None:
    """Two accounts a day start onboarding; June 9's file says all 60 are onboarding."""
    settings = make_project(tmp_path, {"onboarding_welcome": WELCOME})
    for n in range(8):
        day = DAY1 + timedelta(days=n)
        land(tmp_path, day, book(60, day, stage=lambda i, n=n: "onboarding" if i < 2 * (n + 1)
                                 else "adoption"))
    con = duckdb.connect(str(settings.database_path))
    assert run(con, settings, DAY1, DAY1 + timedelta(days=7)).held is None
    glitch = DAY1 + timedelta(days=8)
    land(tmp_path, glitch, book(60, glitch, stage="onboarding"))

    assert run(con, settings, glitch, glitch).held == noon(glitch)
    assert hold_rows(con) == [
        (glitch, "onboarding_welcome", "emails", 44, 2.0, 10.0, 25, "held"),
        (glitch, "onboarding_welcome", "entries", 44, 2.0, 10.0, 25, "held"),
    ]
    sent = delivered(con, settings, noon(glitch))
    assert glitch not in sent and sum(sent.values()) == 16
    with pytest.raises(project.TickHeld, match="held by the emails guard: onboarding_welcome: "
                       r"44 emails against a trailing median of 2 per tick \(the limit is 5x it "
                       r"and at least 25\) \(and 1 more, see `cswf holds`\)"):
        project.require_no_hold(con)
    project.approve(con, noon(glitch), "cli", None, noon(glitch))
    assert sum(delivered(con, settings, noon(glitch)).values()) == 60


def test_a_workflow_can_loosen_its_own_limits(tmp_path: Path) -> None:
    loose = WELCOME + "guards: {entries: {ratio: 50}, emails: {min: 100}}\n"
    settings = make_project(tmp_path, {"onboarding_welcome": loose})
    for n in range(3):
        day = DAY1 + timedelta(days=n)
        land(tmp_path, day, book(60, day, stage=lambda i, n=n: "onboarding" if i < 2 * (n + 1)
                                 else "adoption"))
    land(tmp_path, DAY1 + timedelta(days=3), book(60, DAY1 + timedelta(days=3),
                                                  stage="onboarding"))
    con = duckdb.connect(str(settings.database_path))
    assert run(con, settings, DAY1, DAY1 + timedelta(days=3)).held is None


def test_guards_can_be_switched_off_in_settings(renewals) -> None:
    con, settings = renewals
    june6 = DAY1 + timedelta(days=5)
    off = settings.model_copy(update={"guards": settings.guards.model_copy(
        update={"enabled": False})})
    assert run(con, off, june6, june6).held is None


def test_a_small_book_never_trips_in_a_month(tmp_path: Path) -> None:
    """The demo's generated book (300 accounts, its eight specs) over 30 days of 3-hour ticks."""
    from cswf.demo.generate import generate_book

    repo = Path(__file__).resolve().parents[1]
    root = tmp_path / "p"
    import shutil

    shutil.copytree(repo / "workflow_specs", root / "workflow_specs")
    (root / "cswf.yaml").write_text(f"database: {root / 'cswf.duckdb'}\nlanding_dir: "
                                    f"{root / 'landing'}\ntick_start: '2026-05-31 00:00'\n")
    generate_book(root / "landing", accounts=300, days=61, start=date(2026, 5, 1))
    settings = load_settings(root)
    con = duckdb.connect(str(settings.database_path))
    project.ingest(con, settings, datetime(2026, 6, 30))
    ticks = project.ticks_in(settings, datetime(2026, 5, 31), datetime(2026, 6, 29, 21))
    project.store_facts(con, settings, ticks)
    summary = project.run_ticks(con, settings, project.load_workflows(settings), ticks)
    assert (summary.ticks, summary.held) == (240, None)
    assert con.execute("SELECT count(*) FROM tick_holds").fetchall() == [(0,)]


# -- the pure comparison, on hand-written frames ------------------------------------------


def _result(transitions: list[tuple[str, str, str]], emails: list[str]) -> TickResult:
    """(workflow, participant, transition) rows and the participants emailed (workflow w)."""
    at = datetime(2026, 6, 2, 12)
    frame = pl.DataFrame(
        [{"workflow": w, "participant_id": p, "transition": t, "enrollment_id": f"{w}/{p}/1",
          "reason": "exit conditions met", "evidence": '{"x": 1}'} for w, p, t in transitions],
        schema={"workflow": pl.String, "participant_id": pl.String, "transition": pl.String,
                "enrollment_id": pl.String, "reason": pl.String, "evidence": pl.String})
    actions = pl.DataFrame(
        [{"workflow": "w", "participant_id": p, "enrollment_id": f"w/{p}/1",
          "action_type": "email"} for p in emails],
        schema={"workflow": pl.String, "participant_id": pl.String, "enrollment_id": pl.String,
                "action_type": pl.String})
    return TickResult(at, 0, 1, pl.DataFrame(), actions, frame)


LIMITS = pl.DataFrame({"workflow": ["w"] * 4, "guard": ["exits", "entries", "emails", "webhooks"],
                       "factor": [0.2, 5.0, 5.0, 5.0], "minimum": [10, 25, 25, 25]})


def _active(n: int) -> pl.DataFrame:
    return active_by_workflow(pl.DataFrame({"workflow": ["w"] * n, "status": ["active"] * n},
                                           schema={"workflow": pl.String, "status": pl.String}))


def test_exits_trip_above_the_share_and_the_minimum() -> None:
    no_norms = pl.DataFrame(schema={"workflow": pl.String, "guard": pl.String,
                                    "norm": pl.Float64})
    eleven = _result([("w", f"P{i:02d}", "exited") for i in range(11)], [])
    assert tripped(_active(50), tally_of(eleven), no_norms, LIMITS, ["w"]).select(
        "guard", "observed", "norm", "threshold").rows() == [("exits", 11, 50.0, 10.0)]
    assert tripped(_active(60), tally_of(eleven), no_norms, LIMITS, ["w"]).is_empty()  # 18%
    nine = _result([("w", f"P{i}", "exited") for i in range(9)], [])
    # 90%, but only 9
    assert tripped(_active(10), tally_of(nine), no_norms, LIMITS, ["w"]).is_empty()


def test_a_manual_removal_is_deliberate_and_never_trips_the_exits_guard() -> None:
    no_norms = pl.DataFrame(schema={"workflow": pl.String, "guard": pl.String,
                                    "norm": pl.Float64})
    eleven = _result([("w", f"P{i:02d}", "exited") for i in range(11)], [])
    removed = TickResult(eleven.as_of, 0, 1, eleven.state, eleven.actions,
                         eleven.transitions.with_columns(
                             reason=pl.lit("removed by ann at 2026-06-02 10:00: churned")))
    assert tripped(_active(50), tally_of(removed), no_norms, LIMITS, ["w"]).is_empty()


def test_spikes_trip_against_the_median_else_the_floor_and_never_at_launch() -> None:
    norms = pl.DataFrame({"workflow": ["w"], "guard": ["entries"], "norm": [4.0]})
    thirty = _result([("w", f"P{i:02d}", "entered") for i in range(30)], [])
    assert tripped(_active(0), tally_of(thirty), norms, LIMITS, ["w"]).select(
        "guard", "observed", "norm", "threshold").rows() == [("entries", 30, 4.0, 20.0)]
    calm = pl.DataFrame({"workflow": ["w"], "guard": ["entries"], "norm": [8.0]})
    assert tripped(_active(0), tally_of(thirty), calm, LIMITS, ["w"]).is_empty()  # 30 ≤ 5 × 8
    no_history = norms.clear()
    assert tripped(_active(0), tally_of(thirty), no_history, LIMITS, ["w"])[
        "threshold"].to_list() == [None]
    assert tripped(_active(0), tally_of(thirty), no_history, LIMITS, []).is_empty()  # its launch
    emails = _result([], [f"P{i:02d}" for i in range(24)])
    assert tripped(_active(0), tally_of(emails), no_history, LIMITS, ["w"]).is_empty()  # under 25


@hypothesis.settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["w", "v"]), st.integers(0, 40),
                          st.sampled_from(["exited", "entered", "stayed"]),
                          st.sampled_from(["branch 'b'", "exit conditions met", ""])),
                max_size=120),
       st.lists(st.integers(0, 40), max_size=60), st.integers(1, 6))
def test_tallies_of_any_split_combine_to_the_whole_tick_s(
        moves: list[tuple[str, int, str, str]], emailed: list[int], parts: int) -> None:
    """The global step guards a sharded tick by combining each shard's tally: the guards it
    trips, samples included, are those of the whole tick in one process."""
    whole = _result([(w, f"P{p:02d}", t) for w, p, t, _ in moves],
                    [f"P{p:02d}" for p in emailed])
    whole = TickResult(whole.as_of, 0, 2, whole.state, whole.actions,
                       whole.transitions.with_columns(
                           reason=pl.Series([r for *_, r in moves], dtype=pl.String),
                           evidence=pl.format('{{"p": "{}"}}', "participant_id")))
    shard = pl.col("participant_id").str.slice(1).cast(pl.Int64) % parts
    pieces = [Tally.of(whole.transitions.filter(shard == k).lazy(),
                       whole.actions.filter(shard == k).lazy()) for k in range(parts)]
    combined, alone = Tally.combine(pieces), tally_of(whole)
    assert combined.counts.sort("workflow", "guard").equals(alone.counts.sort("workflow", "guard"))
    low = pl.DataFrame({"workflow": ["w", "v"] * 4, "guard": ["exits"] * 2 + ["entries"] * 2
                        + ["emails"] * 2 + ["webhooks"] * 2, "factor": [0.1] * 8,
                        "minimum": [1] * 8})
    no_norms = pl.DataFrame(schema=NORM_SCHEMA)
    found = tripped(_active(3), combined, no_norms, low, ["w", "v"])
    assert found.equals(tripped(_active(3), alone, no_norms, low, ["w", "v"]))
    assert found.height == alone.counts.height  # every count trips: every sample compared


# -- through the CLI ------------------------------------------------------------------------


def test_the_cli_says_a_tick_is_held_refuses_to_go_on_and_decides(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cswf.cli import app

    settings = make_project(tmp_path, {"renewal_check_in": RENEWAL})
    for n in range(6):
        day = DAY1 + timedelta(days=n)
        land(tmp_path, day, book(60, day, renewal_date=lambda i, n=n: DAY1 + timedelta(
            days=(365 if n == 5 else 0) + 30 + i % 60)))
    runner = CliRunner()

    def cli(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, [*args, "--root", str(tmp_path)], terminal_width=400)
        return result.exit_code, result.stdout, result.stderr

    code, _, err = cli("run", "--start", "2026-06-01T12:00", "--end", "2026-06-06T12:00")
    assert (code, err) == (1, "error: " + RENEWAL_HELD.format(
        what="nothing of it is delivered and later ticks wait") + "\n")
    code, _, err = cli("tick", "--as-of", "2026-06-06T12:00")
    assert (code, err) == (1, "error: " + RENEWAL_HELD.format(
        what="no later tick runs until it is decided") + "\n")
    code, out, _ = cli("holds")
    assert out.splitlines()[0] == (
        "2026-06-06T12:00 held: exits guard, renewal_check_in: 60 exits of 60 active (100%; the "
        "limit is 20% and at least 10)")
    assert out.splitlines()[-1] == ("decide: `cswf approve 2026-06-06T12:00` releases it, `cswf "
                                    "reject 2026-06-06T12:00` discards it and the ticks after it")
    code, out, _ = cli("reject", "2026-06-06T12:00", "--reason", "renewal dates glitched")
    assert (code, out) == (0, "tick 2026-06-06 12:00 rejected by cli: 1 tick(s) removed, nothing "
                              "of them was sent; fix the snapshot, then `cswf tick --as-of "
                              "2026-06-06T12:00` runs it again\n")
    land(tmp_path, DAY1 + timedelta(days=5), book(60, DAY1 + timedelta(days=5)))
    code, out, err = cli("tick", "--as-of", "2026-06-06T12:00")
    assert (code, err) == (0, ""), out
    code, out, _ = cli("approve", "2026-06-06T12:00")
    assert (code, _) == (1, "error: tick 2026-06-06T12:00 is not held (no tick is held)\n")
    with duckdb.connect(str(settings.database_path), read_only=True) as con:
        assert hold_rows(con)[0][-1] == "rejected"


def test_in_dagster_the_held_tick_fails_a_blocking_check_and_no_report_is_built(
        tmp_path: Path) -> None:
    import dagster as dg

    from cswf.defs.launch import run_tick_range

    settings = make_project(tmp_path, {"renewal_check_in": RENEWAL})
    for n in range(6):
        day = DAY1 + timedelta(days=n)
        land(tmp_path, day, book(60, day, renewal_date=lambda i, n=n: DAY1 + timedelta(
            days=(365 if n == 5 else 0) + 30 + i % 60)))
    result = run_tick_range(settings, noon(DAY1), noon(DAY1 + timedelta(days=5)),
                            raise_on_error=False, quiet=True)

    checks = {e.asset_check_evaluation_data.asset_check_key.name: e.asset_check_evaluation_data
              for e in result.all_events
              if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION}
    assert not checks["tick_not_held"].passed
    assert checks["tick_not_held"].description == RENEWAL_HELD.format(
        what="nothing of it is delivered and later ticks wait")
    assert checks["snapshots_complete"].passed and checks["snapshots_fresh"].passed
    built = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "workflow_summary" not in built and "actions_outbox" in built


def run_sharded(settings: Settings, first: date, last: date) -> None:
    """`run`, each tick as the fan-out's prepare step, shard steps and global step."""
    ticks = project.ticks_in(settings, noon(first), noon(last))
    workflows = project.load_workflows(settings)
    with duckdb.connect(str(settings.database_path)) as con:
        project.ingest(con, settings, noon(last))
        project.store_facts(con, settings, ticks)
    for as_of in ticks:
        with duckdb.connect(str(settings.database_path)) as con:
            prepare_tick(con, settings, workflows, as_of)
        for k in range(settings.shards):
            shard_tick(settings, workflows, as_of, k, settings.shards)
        with duckdb.connect(str(settings.database_path)) as con:
            commit_tick(con, settings, workflows, as_of, settings.shards)


@pytest.mark.parametrize("shards", [2, 5])
def test_a_sharded_tick_trips_the_guards_a_single_process_trips(tmp_path: Path,
                                                                 shards: int) -> None:
    """Exits (a share of the active participants, which the global step counts in SQL) and
    spikes of entries and emails: the same holds, samples included, in any shard count."""
    holds = {}
    for name, extra in (("one", ""), ("sharded", f"shards: {shards}\n")):
        root = tmp_path / name
        settings = make_project(root, {"renewal_check_in": RENEWAL, "onboarding_welcome": WELCOME},
                                extra)
        for n in range(9):
            day = DAY1 + timedelta(days=n)
            land(root, day, book(60, day, stage=lambda i, n=n: "onboarding" if i < 2 * (n + 1)
                                 or n == 8 else "adoption",
                                 renewal_date=lambda i, n=n: DAY1 + timedelta(
                                     days=(365 if n == 8 else 0) + 30 + i % 60)))
        last = DAY1 + timedelta(days=8)
        if extra:
            run_sharded(settings, DAY1, last)
        else:
            with duckdb.connect(str(settings.database_path)) as con:
                assert run(con, settings, DAY1, last).held == noon(last)
        with duckdb.connect(str(settings.database_path)) as con:
            holds[name] = con.execute("SELECT * FROM tick_holds ORDER BY ALL"
                                      ).fetchall()
    assert [row[1:3] for row in holds["one"]] == [
        ("onboarding_welcome", "emails"), ("onboarding_welcome", "entries"),
        ("renewal_check_in", "exits")]
    assert holds["sharded"] == holds["one"]
