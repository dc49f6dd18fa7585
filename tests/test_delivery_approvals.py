"""Emails that wait for their owner's approval: sent once approved, never when rejected or
left unanswered past the window, against a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from test_delivery_servers import (
    NOW,
    TICK,
    SmtpRecorder,
    add_actions,
    deliveries,
    email_row,
    make_config,
    statuses,
    warehouse,
)

from cswf.delivery import (
    DeliveryConfig,
    DeliveryReport,
    default_senders,
    deliver,
    ingest_action_events,
)
from cswf.reports.insights import action_insights

Smtp = tuple[SmtpRecorder, int]
HEADER = "action_id,event_type,occurred_at,detail\n"


def approval_email(n: int, participant: str, days: int = 3) -> dict[str, Any]:
    row = email_row(n, f"{participant}@customer.test", participant=participant)
    return {**row, "payload": json.dumps({"approval_days": days, "html": False,
                                          "template": None, "to_field": "email"})}


def aid(participant: str, n: int = 0) -> str:
    return f"onboarding/{participant}/1/s0.a{n}"


def run(con: duckdb.DuckDBPyConnection, config: DeliveryConfig, now: datetime
        ) -> DeliveryReport:
    return deliver(con, default_senders(config), config, now)


def answer(con: duckdb.DuckDBPyConnection, folder: Path, name: str, lines: list[str]) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(HEADER + "".join(f"{line}\n" for line in lines))
    assert ingest_action_events(con, folder, NOW).rejected == []


def test_an_email_waits_for_approval_and_is_sent_once_approved(tmp_path: Path,
                                                                smtp: Smtp) -> None:
    recorder, port = smtp
    con, config, events = warehouse(), make_config(tmp_path, smtp_port=port), tmp_path / "ev"
    add_actions(con, [approval_email(0, "ann"), approval_email(0, "bob"),
                      approval_email(0, "cat"), email_row(1, "dan@customer.test")])
    first = run(con, config, NOW)
    assert dict(first.outcomes) == {"sent": 1}
    assert first.summary().startswith("1 sent, 3 awaiting approval")
    assert [m.rcpt_tos for m in recorder.messages] == [["dan@customer.test"]]
    assert statuses(con)[aid("ann")] == "awaiting_approval"
    # Ann's CSM approves 51 hours after the tick (past max_age_hours: 48, counted from the
    # approval); Bob's rejects.
    answer(con, events, "day2.csv", [f"{aid('ann')},approved,2026-06-04T09:00:00Z,ana",
                                     f"{aid('bob')},rejected,2026-06-03T10:00:00Z,wrong tone"])
    report = run(con, config, datetime(2026, 6, 4, 10))
    assert dict(report.outcomes) == {"approved": 1, "rejected": 1, "sent": 1}
    assert report.awaiting_approval == 1  # cat's
    (insights,) = action_insights(con, datetime(2026, 6, 4, 10)).select(
        "emails_awaiting_approval", "emails_rejected", "emails_not_actioned").rows()
    assert insights == (1, 1, 0)
    assert [m.rcpt_tos for m in recorder.messages][1:] == [["ann@customer.test"]]
    rows = deliveries(con)
    assert rows[aid("bob")]["last_error"] == "not sent: rejected at 2026-06-03 10:00 (wrong tone)"
    assert (rows[aid("ann")]["status"], rows[aid("cat")]["status"]) == ("sent",
                                                                       "awaiting_approval")
    # The approval reported again, and a later run: nothing goes twice.
    answer(con, events, "day2-again.csv", [f"{aid('ann')},approved,2026-06-04T09:30:00Z,"])
    assert dict(run(con, config, datetime(2026, 6, 4, 12)).outcomes) == {}
    assert len(recorder.messages) == 2


def test_no_answer_within_the_window_is_not_actioned_and_never_sent(tmp_path: Path,
                                                                    smtp: Smtp) -> None:
    recorder, port = smtp
    con, config = warehouse(), make_config(tmp_path, smtp_port=port)
    add_actions(con, [approval_email(0, "cat", days=2)])
    # Only delivery says an approval went unanswered: a file cannot.
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "x.csv").write_text(HEADER + f"{aid('cat')},not_actioned,2026-06-03T00:00:00Z,\n")
    assert ingest_action_events(con, folder, NOW).rejected == [
        "x.csv row 1: column event_type: 'not_actioned' is not one of sent, delivered, opened, "
        "clicked, replied, bounced, dropped, complained, unsubscribed, completed, failed, "
        "approved, rejected; the row was not loaded: fix it and land the file again"]
    assert dict(run(con, config, TICK + timedelta(days=2) - timedelta(minutes=1)).outcomes) == {}
    assert dict(run(con, config, TICK + timedelta(days=2)).outcomes) == {"not_actioned": 1}
    row = deliveries(con)[aid("cat")]
    assert (row["status"], row["last_error"]) == (
        "not_actioned", "not sent: no approval within 2 days (by 2026-06-04 06:00)")
    assert con.execute("SELECT event_type, occurred_at, source FROM action_events").fetchall() == [
        ("not_actioned", TICK + timedelta(days=2), "delivery")]
    # An approval after the window changes nothing.
    answer(con, tmp_path / "ev", "late.csv", [f"{aid('cat')},approved,2026-06-04T08:00:00Z,"])
    assert dict(run(con, config, datetime(2026, 6, 4, 9)).outcomes) == {}
    assert recorder.messages == []


def test_an_approval_after_the_window_does_not_count_even_if_it_lands_first(
        tmp_path: Path, smtp: Smtp) -> None:
    recorder, port = smtp
    con, config = warehouse(), make_config(tmp_path, smtp_port=port)
    add_actions(con, [approval_email(0, "eve", days=1)])
    answer(con, tmp_path / "ev", "late.csv", [f"{aid('eve')},approved,2026-06-03T07:00:00Z,"])
    assert dict(run(con, config, datetime(2026, 6, 3, 8)).outcomes) == {"not_actioned": 1}
    assert recorder.messages == []


def test_a_replayed_tick_that_drops_the_approval_sends_the_email(tmp_path: Path,
                                                                 smtp: Smtp) -> None:
    recorder, port = smtp
    con, config = warehouse(), make_config(tmp_path, smtp_port=port)
    add_actions(con, [approval_email(0, "gus")])
    assert dict(run(con, config, NOW).outcomes) == {}
    # The tick is re-run after require_approval was taken out of the spec.
    con.execute("DELETE FROM actions_outbox").fetchall()
    add_actions(con, [email_row(0, "gus@customer.test", participant="gus")])
    assert dict(run(con, config, NOW + timedelta(hours=1)).outcomes) == {"sent": 1}
    assert [m.rcpt_tos for m in recorder.messages] == [["gus@customer.test"]]
