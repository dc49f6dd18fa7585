"""The safety rules at send time: suppression, the daily cap, quiet hours across DST."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from test_delivery_servers import (
    NOW,
    SmtpRecorder,
    add_actions,
    deliveries,
    email_row,
    make_config,
    statuses,
    task_row,
    warehouse,
)

from cswf.delivery import (
    DeliveryConfig,
    DeliveryReport,
    default_senders,
    deliver,
    ingest_action_events,
    suppress,
)

NEW_YORK = {"acc-ny": "America/New_York"}
Smtp = tuple[SmtpRecorder, int]


def run(con: duckdb.DuckDBPyConnection, config: DeliveryConfig, now: datetime,
        **kwargs: Any) -> DeliveryReport:
    return deliver(con, default_senders(config), config, now, **kwargs)


def recipients(recorder: SmtpRecorder) -> list[str]:
    return [to for message in recorder.messages for to in message.rcpt_tos]


# -- suppression --------------------------------------------------------------------------------


def test_an_unsubscribe_after_the_email_was_emitted_still_wins(tmp_path: Path, smtp: Smtp) -> None:
    recorder, port = smtp
    config = make_config(tmp_path, smtp_port=port)
    con = warehouse(tmp_path / "cswf.duckdb")
    add_actions(con, [email_row(0, "ann@customer.test", tick=NOW - timedelta(days=3))])
    run(con, config, NOW - timedelta(days=3))  # an earlier email went out
    add_actions(con, [email_row(1, "Ann@Customer.TEST", step=1, tick=NOW - timedelta(hours=2)),
                      email_row(2, "bob@customer.test", step=1, tick=NOW - timedelta(hours=2))])
    # After the tick emitted them, the ESP reports that Ann unsubscribed (from email 0).
    events = tmp_path / "events"
    events.mkdir()
    (events / "esp.csv").write_text("action_id,event_type,occurred_at,detail\n"
                                    "onboarding/acc-1/1/s0.a0,unsubscribed,"
                                    "2026-06-02T09:00:00Z,list-unsubscribe one-click\n")
    assert ingest_action_events(con, events, NOW).inserted == 1
    report = run(con, config, NOW)
    assert report.outcomes == {"sent": 1, "suppressed": 1}
    assert recipients(recorder) == ["ann@customer.test", "bob@customer.test"]
    row = deliveries(con)["onboarding/acc-1/1/s1.a1"]
    assert row["status"] == "suppressed" and "suppression list" in row["last_error"]


def test_suppressed_addresses_match_case_insensitively(tmp_path: Path, smtp: Smtp) -> None:
    recorder, port = smtp
    config = make_config(tmp_path, smtp_port=port)
    con = warehouse(tmp_path / "cswf.duckdb")
    assert suppress(con, ["  CAROL@Customer.test "], "crm opt-out", NOW) == 1
    add_actions(con, [email_row(0, "carol@CUSTOMER.test"), email_row(1, "dan@customer.test")])
    run(con, config, NOW)
    assert recipients(recorder) == ["dan@customer.test"]
    assert statuses(con)["onboarding/acc-1/1/s0.a0"] == "suppressed"


def test_a_deferred_email_is_suppressed_if_an_unsubscribe_arrives_while_it_waits(
    tmp_path: Path, smtp: Smtp
) -> None:
    recorder, port = smtp
    config = make_config(tmp_path, smtp_port=port, quiet_hours={"start": "20:00", "end": "08:00"})
    con = warehouse(tmp_path / "cswf.duckdb")
    add_actions(con, [email_row(0, "erin@customer.test", participant="acc-ny")])
    night = datetime(2026, 6, 3, 2, 0)  # 22:00 in New York
    assert run(con, config, night, time_zones=NEW_YORK).outcomes == {"deferred": 1}
    suppress(con, ["Erin@customer.test"], "unsubscribed", night + timedelta(hours=1))
    later = run(con, config, datetime(2026, 6, 3, 12, 0), time_zones=NEW_YORK)
    assert later.outcomes == {"suppressed": 1} and recorder.messages == []


# -- the daily cap ------------------------------------------------------------------------------


def test_at_most_n_emails_per_recipient_per_local_day_across_workflows(tmp_path: Path,
                                                                       smtp: Smtp) -> None:
    recorder, port = smtp
    config = make_config(tmp_path, smtp_port=port, cap_per_day=2)
    con = warehouse(tmp_path / "cswf.duckdb")
    # Yesterday evening in New York (03:00 UTC today) one email went out: another local day.
    yesterday = datetime(2026, 6, 2, 3, 0)
    add_actions(con, [email_row(0, "fay@customer.test", participant="acc-ny", tick=yesterday)])
    # This morning one more went out.
    morning = datetime(2026, 6, 2, 13, 0)
    add_actions(con, [email_row(1, "fay@customer.test", participant="acc-ny", tick=morning)])
    run(con, config, yesterday, time_zones=NEW_YORK)
    run(con, config, morning, time_zones=NEW_YORK)
    assert len(recorder.messages) == 2
    # Now three more workflows want to email her, and one wants to email someone else.
    batch = [email_row(0, "FAY@customer.test", participant="acc-ny", workflow=w,
                       tick=NOW - timedelta(minutes=i))
             for i, w in enumerate(["renewal", "nurture", "upsell"])]
    add_actions(con, [*batch, email_row(1, "gus@customer.test", participant="acc-ny",
                                        workflow="renewal")])
    report = run(con, config, NOW, time_zones=NEW_YORK)
    assert report.outcomes == {"sent": 2, "capped": 2}
    states = statuses(con)
    # The oldest emitted goes first: upsell (ticked 2 minutes before NOW).
    assert states["upsell/acc-ny/1/s0.a0"] == "sent"
    assert states["nurture/acc-ny/1/s0.a0"] == "capped"
    assert states["renewal/acc-ny/1/s0.a0"] == "capped"
    assert "daily cap of 2" in deliveries(con)["renewal/acc-ny/1/s0.a0"]["last_error"]
    assert sorted(recipients(recorder)[-2:]) == ["FAY@customer.test", "gus@customer.test"]
    # Capped is final: the next day brings nothing back.
    assert run(con, config, NOW + timedelta(days=1), time_zones=NEW_YORK).outcomes == {}


def test_no_cap_when_switched_off(tmp_path: Path, smtp: Smtp) -> None:
    _, port = smtp
    config = make_config(tmp_path, smtp_port=port, cap_per_day=None)
    con = warehouse(tmp_path / "cswf.duckdb")
    add_actions(con, [email_row(i, "hal@customer.test") for i in range(4)])
    assert run(con, config, NOW).outcomes == {"sent": 4}


# -- quiet hours across DST ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "now", "window_opens", "daytime"),
    [
        # Sat 2026-03-07 22:00 EST; clocks spring forward that night: 08:00 EDT = 12:00 UTC.
        ("America/New_York", datetime(2026, 3, 8, 3, 0), datetime(2026, 3, 8, 12, 0),
         "Asia/Tokyo"),
        # Sat 2026-10-31 21:00 EDT; clocks fall back that night: 08:00 EST = 13:00 UTC.
        ("America/New_York", datetime(2026, 11, 1, 1, 0), datetime(2026, 11, 1, 13, 0),
         "Asia/Tokyo"),
        # Sun 2026-03-08 06:30 EDT, just after the change: the same morning, 08:00 EDT.
        ("America/New_York", datetime(2026, 3, 8, 10, 30), datetime(2026, 3, 8, 12, 0),
         "Asia/Tokyo"),
        # London, last Sunday of March: Sat 22:00 GMT; 08:00 BST on Sunday = 07:00 UTC.
        ("Europe/London", datetime(2026, 3, 28, 22, 0), datetime(2026, 3, 29, 7, 0),
         "America/Los_Angeles"),
        # London, last Sunday of October: Sat 21:00 BST; 08:00 GMT on Sunday = 08:00 UTC.
        ("Europe/London", datetime(2026, 10, 24, 20, 0), datetime(2026, 10, 25, 8, 0),
         "America/Los_Angeles"),
        # Lord Howe, DST ends on the first Sunday of April (+11:00 -> +10:30): Sat 22:00;
        # 08:00 on Sunday = 21:30 UTC.
        ("Australia/Lord_Howe", datetime(2026, 4, 4, 11, 0), datetime(2026, 4, 4, 21, 30),
         "Europe/Berlin"),
        # Lord Howe, DST starts on the first Sunday of October (+10:30 -> +11:00): Sat 22:00;
        # 08:00 on Sunday = 21:00 UTC.
        ("Australia/Lord_Howe", datetime(2026, 10, 3, 11, 30), datetime(2026, 10, 3, 21, 0),
         "Europe/Berlin"),
    ],
)
def test_quiet_hours_defer_to_8am_local_across_daylight_saving_changes(
    tmp_path: Path, smtp: Smtp, zone: str, now: datetime, window_opens: datetime, daytime: str
) -> None:
    recorder, port = smtp
    config = make_config(tmp_path, smtp_port=port, quiet_hours={"start": "20:00", "end": "08:00"},
                         default_time_zone="Europe/Berlin")
    con = warehouse(tmp_path / "cswf.duckdb")
    rows = [email_row(0, "ivy@customer.test", participant="acc-z", tick=now),
            email_row(0, "jon@customer.test", participant="acc-x", workflow="other", tick=now)]
    add_actions(con, rows)
    zones = {"acc-z": zone, "acc-x": daytime}
    run(con, config, now, time_zones=zones)
    row = deliveries(con)["onboarding/acc-z/1/s0.a0"]
    assert row["status"] == "deferred" and row["next_attempt_at"] == window_opens
    assert f"quiet hours in {zone}" in row["last_error"]
    assert recipients(recorder) == ["jon@customer.test"]  # daytime there
    run(con, config, window_opens - timedelta(minutes=1), time_zones=zones)
    assert len(recorder.messages) == 1
    report = run(con, config, window_opens, time_zones=zones)
    assert report.outcomes == {"sent": 1}
    assert recipients(recorder) == ["jon@customer.test", "ivy@customer.test"]


def test_unknown_zones_fall_back_to_the_default(tmp_path: Path, smtp: Smtp) -> None:
    _, port = smtp
    config = make_config(tmp_path, smtp_port=port, quiet_hours={"start": "20:00", "end": "08:00"})
    con = warehouse(tmp_path / "cswf.duckdb")
    add_actions(con, [email_row(0, "kim@customer.test", participant="acc-q")])
    midnight_utc = datetime(2026, 6, 3, 0, 0)
    run(con, config, midnight_utc, time_zones={"acc-q": "Mars/Olympus_Mons"})
    assert deliveries(con)["onboarding/acc-q/1/s0.a0"]["next_attempt_at"] == datetime(
        2026, 6, 3, 8, 0)


def test_quiet_hours_hold_emails_only(tmp_path: Path, smtp: Smtp) -> None:
    _, port = smtp
    config = make_config(tmp_path, smtp_port=port, quiet_hours={"start": "12:00", "end": "18:00"})
    con = warehouse(tmp_path / "cswf.duckdb")
    add_actions(con, [email_row(0, "lou@customer.test"), task_row(0)])
    assert run(con, config, NOW).outcomes == {"deferred": 1, "sent": 1}
    assert statuses(con)["onboarding/acc-1/1/s1.a0"] == "sent"
