"""Results back in: event files ingested once, bad rows named, suppression fed, insights."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from test_delivery_servers import (
    NOW,
    TICK,
    add_actions,
    email_row,
    make_config,
    task_row,
    warehouse,
)

from cswf.delivery import deliver, ingest_action_events
from cswf.delivery.dry_run import DryRunSender
from cswf.project.deliver import results_in
from cswf.reports.insights import action_insights

HEADER = "action_id,event_type,occurred_at,detail\n"
ANN = "onboarding/acc-1/1/s0.a0"
BOB = "onboarding/acc-1/1/s0.a1"


def test_event_files_load_once_and_bad_rows_are_named(tmp_path: Path) -> None:
    con = warehouse()
    add_actions(con, [email_row(0, "ann@customer.test"), email_row(1, "bob@customer.test")])
    folder = tmp_path / "events"
    (folder / "esp").mkdir(parents=True)
    (folder / "esp" / "day1.csv").write_text(
        HEADER
        + f"{ANN},delivered,2026-06-02T14:00:05Z,250 ok\n"
        + f"{ANN},Opened,2026-06-02 16:30:00+02:00,\n"  # case and offsets are fine
        + f"{ANN},openned,2026-06-02T15:00:00Z,typo\n"
        + f"{BOB},clicked,yesterday-ish,\n"
        + "nope/1/s0.a0,opened,2026-06-02T15:00:00Z,\n"
        + f"{BOB},replied,2026-06-03T09:00:00,\n"
    )
    pl.DataFrame({
        "action_id": [BOB, BOB],
        "event_type": ["delivered", "delivered"],  # reported twice by the provider
        "occurred_at": [datetime(2026, 6, 2, 14, 0, 7, tzinfo=UTC)] * 2,
    }).write_parquet(folder / "day1.parquet")
    (folder / "broken.csv").write_text("action,kind\nx,y\n")
    report = ingest_action_events(con, folder, NOW)
    assert (report.files, report.rows, report.accepted, report.inserted) == (3, 9, 5, 4)
    fix = "; the row was not loaded: fix it and land the file again"
    assert report.rejected == [
        "broken.csv: missing required columns 'action_id', 'event_type', 'occurred_at' (need "
        "action_id, event_type, occurred_at); no row of it was loaded: fix it and land the file "
        "again",
        "esp/day1.csv row 3: column event_type: 'openned' is not one of sent, delivered, "
        "opened, clicked, replied, bounced, dropped, complained, unsubscribed, completed, "
        "failed, approved, rejected" + fix,
        "esp/day1.csv row 4: column occurred_at: 'yesterday-ish' is not an ISO 8601 timestamp"
        + fix,
        "esp/day1.csv row 5: column action_id: 'nope/1/s0.a0' is not in actions_outbox (yet); "
        "the row waits: leave the file in the landing folder and the first ingest after the "
        "tick that emits this action loads it (a typo? fix the action_id)",
    ]
    stored = con.execute("SELECT action_id, event_type, occurred_at, source FROM action_events "
                         "ORDER BY occurred_at").fetchall()
    assert stored == [
        (ANN, "delivered", datetime(2026, 6, 2, 14, 0, 5), "file:esp/day1.csv"),
        (BOB, "delivered", datetime(2026, 6, 2, 14, 0, 7), "file:day1.parquet"),
        (ANN, "opened", datetime(2026, 6, 2, 14, 30), "file:esp/day1.csv"),
        (BOB, "replied", datetime(2026, 6, 3, 9, 0), "file:esp/day1.csv"),
    ]
    again = ingest_action_events(con, folder, NOW + timedelta(hours=1))
    assert again.inserted == 0 and again.duplicates == 5
    assert con.execute("SELECT count(*) FROM action_events").fetchall() == [(4,)]


def test_bounces_complaints_and_unsubscribes_feed_suppression(tmp_path: Path) -> None:
    con = warehouse(tmp_path / "cswf.duckdb")
    add_actions(con, [email_row(0, "Ann@Customer.test"), email_row(1, "bob@customer.test"),
                      email_row(2, "cy@customer.test"), email_row(3, "dee@customer.test")])
    folder = tmp_path / "events"
    folder.mkdir()
    (folder / "esp.csv").write_text(
        HEADER
        + f"{ANN},bounced,2026-06-02T15:00:00Z,550 no such user\n"
        + f"{BOB},complained,2026-06-02T15:00:00Z,abuse report\n"
        + "onboarding/acc-1/1/s0.a2,unsubscribed,2026-06-02T15:00:00Z,\n"
        + "onboarding/acc-1/1/s0.a3,opened,2026-06-02T15:00:00Z,\n"
    )
    ingest_action_events(con, folder, NOW)
    assert con.execute("SELECT address, reason, action_id FROM suppressions ORDER BY 1"
                       ).fetchall() == [
        ("ann@customer.test", "bounced", ANN),
        ("bob@customer.test", "complained", BOB),
        ("cy@customer.test", "unsubscribed", "onboarding/acc-1/1/s0.a2"),
    ]


def test_action_insights_per_workflow_and_step(tmp_path: Path) -> None:
    config = make_config(tmp_path, dry_run=True)
    con = warehouse()
    emails = [email_row(i, f"p{i}@customer.test") for i in range(4)]
    tasks = [task_row(i) for i in range(3)]  # due TICK + 3 days
    add_actions(con, [*emails, *tasks])
    deliver(con, {"smtp": DryRunSender(config)}, config, NOW)
    folder = tmp_path / "events"
    folder.mkdir()
    rows = [(0, "delivered"), (0, "opened"), (0, "opened"), (0, "clicked"), (1, "delivered"),
            (1, "replied"), (2, "bounced")]
    lines = [f"onboarding/acc-1/1/s0.a{i},{kind},2026-06-02T15:0{n}:00Z,\n"
             for n, (i, kind) in enumerate(rows)]
    lines.append("onboarding/acc-1/1/s1.a0,completed,2026-06-03T10:00:00Z,\n")
    lines.append("onboarding/acc-1/1/s0.a3,opened,2026-06-20T10:00:00Z,\n")  # after as_of
    (folder / "events.csv").write_text(HEADER + "".join(lines))
    ingest_action_events(con, folder, NOW)
    as_of = TICK + timedelta(days=4)  # the tasks were due a day ago
    report = action_insights(con, as_of)
    by_step = {r["step_name"]: r for r in report.iter_rows(named=True)}
    email = by_step["step 0"]
    assert (email["emails"], email["emails_dry_run"], email["emails_sent"]) == (4, 4, 0)
    assert (email["emails_delivered"], email["emails_opened"], email["emails_clicked"],
            email["emails_replied"], email["emails_bounced"]) == (2, 1, 1, 1, 1)
    task = by_step["kickoff"]
    assert (task["tasks_created"], task["tasks_completed"], task["tasks_overdue"]) == (3, 1, 2)
    assert task["workflow"] == "onboarding" and task["step"] == 1
    earlier = action_insights(con, TICK + timedelta(days=1))
    kickoff = earlier.filter(pl.col("step_name") == "kickoff").row(0, named=True)
    assert kickoff["tasks_overdue"] == 0 and kickoff["tasks_completed"] == 0


def test_insights_work_before_any_delivery_ran() -> None:
    con = warehouse()
    add_actions(con, [email_row(0, "ann@customer.test")])
    report = action_insights(con, NOW)
    assert report.height == 1 and report["emails"].to_list() == [1]
    assert report["emails_sent"].to_list() == [0]


def test_delivery_logs_the_event_rows_it_rejects(tmp_path: Path, caplog) -> None:
    """Delivery ingests the results first and prints no report: a bad row goes to the log."""
    con = warehouse()
    (tmp_path / "x.csv").write_text(HEADER + "nope/1/s0.a0,opened,2026-06-02T15:00:00Z,\n")
    with caplog.at_level("WARNING", logger="cswf.project.deliver"):
        results_in(con, tmp_path, NOW)
    assert [r.getMessage() for r in caplog.records] == [
        "action events: x.csv row 1: column action_id: 'nope/1/s0.a0' is not in actions_outbox "
        "(yet); the row waits: leave the file in the landing folder and the first ingest after "
        "the tick that emits this action loads it (a typo? fix the action_id)"]
