"""Emails to contacts from the contacts snapshot, against a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from test_delivery_servers import (
    NOW,
    SmtpRecorder,
    add_actions,
    deliveries,
    email_row,
    make_config,
    smtp_server,
    statuses,
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
from cswf.ingest import ensure_tables

ACCOUNT = "A-0001"
Smtp = tuple[SmtpRecorder, int]


def run(con: duckdb.DuckDBPyConnection, config: DeliveryConfig, now: datetime = NOW,
        **kwargs: Any) -> DeliveryReport:
    return deliver(con, default_senders(config), config, now, **kwargs)


def contact(contact_id: str, email: str, role: str, *, primary: bool = False,
            day: date = date(2026, 6, 1), account: str = ACCOUNT,
            zone: str | None = None) -> dict[str, Any]:
    return {"snapshot_date": day, "contact_id": contact_id, "account_id": account,
            "contact_name": contact_id, "email": email, "role": role, "is_primary": primary,
            "time_zone": zone}


def add_contacts(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    ensure_tables(con)
    landed = pl.DataFrame(rows, infer_schema_length=None)  # noqa: F841 (read by DuckDB)
    con.execute("INSERT INTO raw_contacts BY NAME SELECT * FROM landed").fetchall()


def to_contacts(n: int, pick: str, *, account: str = ACCOUNT, **over: Any) -> dict[str, Any]:
    """An email action whose recipient is a contacts pick (`primary` or `role=<role>`)."""
    row = email_row(n, f"contacts:{pick}", participant=account, **over)
    spec = {"primary": True} if pick == "primary" else {"role": pick.removeprefix("role=")}
    return {**row, "payload": json.dumps({"html": False, "template": None,
                                          "to_contacts": spec})}


def action_id(n: int, account: str = ACCOUNT, step: int = 0) -> str:
    return f"onboarding/{account}/1/s{step}.a{n}"


def book(con: duckdb.DuckDBPyConnection) -> None:
    """Two snapshots of A-0001's contacts (the later one before NOW) and one after NOW."""
    add_contacts(con, [
        contact("C-1", "old.champ@customer.test", "champion", day=date(2026, 5, 30)),
        contact("C-2", "Zoe.Champ@Customer.test", "champion"),
        contact("C-3", "al.champ@customer.test", "Champion"),
        contact("C-4", "pat.primary@customer.test", "admin", primary=True),
        contact("C-5", "bo.user@customer.test", "user"),
        contact("C-9", "next.day@customer.test", "champion", day=date(2026, 6, 3)),
        contact("C-7", "other.champ@customer.test", "champion", account="A-0002"),
    ])


# -- resolution ---------------------------------------------------------------------------------


def test_a_role_goes_to_every_such_contact_of_the_latest_snapshot_in_one_message(
    tmp_path: Path, smtp: Smtp
) -> None:
    recorder, port = smtp
    con = warehouse()
    book(con)
    add_actions(con, [to_contacts(0, "role=CHAMPION")])
    report = run(con, make_config(tmp_path, smtp_port=port))
    assert report.outcomes == {"sent": 1} and not report.errors
    (received,) = recorder.messages
    # The snapshot of 2026-06-01 (not 05-30, not 06-03), role compared case-insensitively,
    # ordered by contact_id; the address is written as the snapshot has it.
    expected = ["Zoe.Champ@Customer.test", "al.champ@customer.test"]
    assert received.rcpt_tos == expected
    assert [a.addr_spec for a in received.message["To"].addresses] == expected
    row = deliveries(con)[action_id(0)]
    assert row["status"] == "sent" and row["recipients"] == expected


def test_primary_picks_the_primary_contact(tmp_path: Path, smtp: Smtp) -> None:
    recorder, port = smtp
    con = warehouse()
    book(con)
    add_actions(con, [to_contacts(0, "primary")])
    run(con, make_config(tmp_path, smtp_port=port))
    assert [m.rcpt_tos for m in recorder.messages] == [["pat.primary@customer.test"]]
    assert recorder.messages[0].message["To"] == "pat.primary@customer.test"
    assert deliveries(con)[action_id(0)]["recipients"] == ["pat.primary@customer.test"]


def test_no_matching_contact_fails_for_good_with_a_clear_error(tmp_path: Path,
                                                               smtp: Smtp) -> None:
    recorder, port = smtp
    con = warehouse()
    book(con)
    add_actions(con, [to_contacts(0, "role=executive"),
                      to_contacts(1, "primary", account="A-0002"),
                      to_contacts(2, "role=champion", account="A-0404"),
                      to_contacts(3, "favourite")])
    config = make_config(tmp_path, smtp_port=port)
    report = run(con, config)
    assert report.outcomes == {"failed": 4} and recorder.messages == []
    rows = deliveries(con)
    assert rows[action_id(0)]["last_error"] == (
        "no contact with role 'executive' for account A-0001 in the contacts snapshot of "
        "2026-06-01")
    assert rows[action_id(1, "A-0002")]["last_error"] == (
        "no primary contact for account A-0002 in the contacts snapshot of 2026-06-01")
    assert rows[action_id(2, "A-0404")]["last_error"] == (
        "no contact with role 'champion' for account A-0404: no contacts snapshot of the "
        "account on or before 2026-06-02")
    assert "is not contacts:primary or contacts:role=<role>" in rows[action_id(3)]["last_error"]
    assert all(r["next_attempt_at"] is None and r["status"] == "failed" for r in rows.values())
    assert f"{action_id(0)}: no contact with role 'executive'" in report.errors[0]
    events = con.execute("SELECT action_id, event_type, occurred_at, source FROM action_events "
                         "ORDER BY action_id").fetchall()
    assert [(e[1], e[2], e[3]) for e in events] == [("failed", NOW, "delivery")] * 4
    assert run(con, config, NOW + timedelta(days=1)).outcomes == {}


def test_without_a_contacts_table_the_pick_fails_clearly(tmp_path: Path, smtp: Smtp) -> None:
    _, port = smtp
    con = warehouse()  # raw_contacts was never created
    add_actions(con, [to_contacts(0, "primary")])
    run(con, make_config(tmp_path, smtp_port=port))
    assert deliveries(con)[action_id(0)]["last_error"] == (
        "no contacts snapshot loaded (raw_contacts is missing) for account A-0001")


# -- the safety rules, per address --------------------------------------------------------------


def test_suppressed_and_capped_addresses_are_dropped_the_rest_get_it(tmp_path: Path,
                                                                     smtp: Smtp) -> None:
    recorder, port = smtp
    con = warehouse(tmp_path / "cswf.duckdb")
    book(con)
    config = make_config(tmp_path, smtp_port=port, cap_per_day=1)
    # Earlier today al.champ got an email addressed from a fact field.
    add_actions(con, [email_row(0, "al.champ@customer.test", participant="acc-1",
                                tick=NOW - timedelta(hours=2))])
    run(con, config, NOW - timedelta(hours=1))
    suppress(con, ["zoe.champ@customer.test"], "unsubscribed", NOW)
    add_actions(con, [to_contacts(0, "role=champion"), to_contacts(1, "primary")])
    report = run(con, config)
    assert report.outcomes == {"capped": 1, "sent": 1}
    assert statuses(con)[action_id(0)] == "capped"
    row = deliveries(con)[action_id(0)]
    assert row["last_error"] == ("daily cap of 1 emails reached for every address not "
                                 "suppressed (2026-06-02 local day)")
    assert row["recipients"] == ["Zoe.Champ@Customer.test", "al.champ@customer.test"]
    assert [m.rcpt_tos for m in recorder.messages] == [["al.champ@customer.test"],
                                                       ["pat.primary@customer.test"]]
    # A role with one suppressed contact and one free: the free one gets it.
    add_contacts(con, [contact("C-2", "Zoe.Champ@Customer.test", "champion", day=date(2026, 6, 2)),
                       contact("C-8", "new.champ@customer.test", "champion",
                               day=date(2026, 6, 2))])
    add_actions(con, [to_contacts(2, "role=champion")])
    later = run(con, config, NOW + timedelta(minutes=5))
    assert later.outcomes == {"sent": 1}
    assert recorder.messages[-1].rcpt_tos == ["new.champ@customer.test"]
    assert deliveries(con)[action_id(2)]["recipients"] == ["new.champ@customer.test"]
    # The cap counts what each address got: new.champ has had today's one.
    add_actions(con, [email_row(9, "NEW.champ@customer.test", participant="acc-1")])
    assert run(con, config, NOW + timedelta(minutes=10)).outcomes == {"capped": 1}


def test_all_addresses_suppressed_means_suppressed(tmp_path: Path, smtp: Smtp) -> None:
    recorder, port = smtp
    con = warehouse()
    book(con)
    suppress(con, ["zoe.champ@customer.test", "AL.champ@customer.test"], "opt-out", NOW)
    add_actions(con, [to_contacts(0, "role=champion")])
    assert run(con, make_config(tmp_path, smtp_port=port)).outcomes == {"suppressed": 1}
    row = deliveries(con)[action_id(0)]
    assert row["last_error"] == "all 2 addresses are on the suppression list"
    assert recorder.messages == []


def test_quiet_hours_use_the_contacts_zone_when_the_account_has_none(tmp_path: Path,
                                                                     smtp: Smtp) -> None:
    recorder, port = smtp
    con = warehouse()
    add_contacts(con, [
        contact("C-1", "ny@customer.test", "champion", zone="America/New_York"),
        contact("C-2", "ber@customer.test", "champion", account="A-0002", zone="Asia/Tokyo"),
    ])
    config = make_config(tmp_path, smtp_port=port,
                         quiet_hours={"start": "20:00", "end": "08:00"})
    add_actions(con, [to_contacts(0, "role=champion"),
                      to_contacts(0, "role=champion", account="A-0002")])
    nine_utc = datetime(2026, 6, 2, 9, 0)  # 05:00 in New York, 18:00 in Tokyo and Berlin
    run(con, config, nine_utc, time_zones={"A-0002": "Europe/Berlin"})  # the account's wins
    row = deliveries(con)[action_id(0)]
    assert row["status"] == "deferred" and row["last_error"] == "quiet hours in America/New_York"
    assert row["next_attempt_at"] == datetime(2026, 6, 2, 12, 0)
    assert row["recipients"] == ["ny@customer.test"]
    assert [m.rcpt_tos for m in recorder.messages] == [["ber@customer.test"]]
    assert run(con, config, datetime(2026, 6, 2, 12, 0)).outcomes == {"sent": 1}


# -- bounces and unsubscribes of one contact ----------------------------------------------------


def test_a_refused_contact_is_bounced_and_suppressed_the_others_get_it(tmp_path: Path) -> None:
    recorder = SmtpRecorder(reject={"zoe.champ@customer.test"})
    con = warehouse()
    book(con)
    add_actions(con, [to_contacts(0, "role=champion")])
    with smtp_server(recorder) as port:
        report = run(con, make_config(tmp_path, smtp_port=port))
    assert report.outcomes == {"sent": 1}
    assert [m.rcpt_tos for m in recorder.messages] == [["al.champ@customer.test"]]
    events = dict(con.execute("SELECT event_type, detail FROM action_events").fetchall())
    assert events["bounced"].startswith("Zoe.Champ@Customer.test: 550")
    assert con.execute("SELECT address, reason FROM suppressions").fetchall() == [
        ("zoe.champ@customer.test", "bounced")]


def test_an_unsubscribe_suppresses_the_contact_it_names_else_all(tmp_path: Path,
                                                                 smtp: Smtp) -> None:
    _, port = smtp
    con = warehouse()
    book(con)
    add_actions(con, [to_contacts(0, "role=champion"), to_contacts(1, "role=champion", step=1)])
    run(con, make_config(tmp_path, smtp_port=port))
    folder = tmp_path / "events"
    folder.mkdir()
    (folder / "esp.csv").write_text(
        "action_id,event_type,occurred_at,detail\n"
        f"{action_id(0)},unsubscribed,2026-06-02T15:00:00Z,one-click by al.champ@customer.test\n"
    )
    ingest_action_events(con, folder, NOW)
    assert con.execute("SELECT address FROM suppressions").fetchall() == [
        ("al.champ@customer.test",)]
    (folder / "esp2.csv").write_text(
        "action_id,event_type,occurred_at,detail\n"
        f"{action_id(1, step=1)},complained,2026-06-02T16:00:00Z,abuse report\n"
    )
    ingest_action_events(con, folder, NOW)
    assert con.execute("SELECT address, reason FROM suppressions ORDER BY 1").fetchall() == [
        ("al.champ@customer.test", "unsubscribed"), ("zoe.champ@customer.test", "complained")]


def test_dry_run_previews_the_message_to_all_contacts(tmp_path: Path) -> None:
    con = warehouse()
    book(con)
    config = make_config(tmp_path, dry_run=True)
    add_actions(con, [to_contacts(0, "role=champion")])
    assert run(con, config).outcomes == {"previewed": 1}
    (eml,) = (tmp_path / "preview").iterdir()
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["To"] == "Zoe.Champ@Customer.test, al.champ@customer.test"
    # {recipient} in the unsubscribe URL holds every address, comma-separated.
    assert "e=Zoe.Champ%40Customer.test%2Cal.champ%40customer.test&" in message[
        "List-Unsubscribe"]
    assert deliveries(con)[action_id(0)]["recipients"] == [
        "Zoe.Champ@Customer.test", "al.champ@customer.test"]


def test_the_payloads_account_id_wins_over_the_participant(tmp_path: Path, smtp: Smtp) -> None:
    """A contact or opportunity workflow's participant is not the account: the payload says."""
    recorder, port = smtp
    con = warehouse()
    book(con)
    row = to_contacts(0, "primary", account="OPP-7")
    row["payload"] = json.dumps({**json.loads(row["payload"]), "account_id": ACCOUNT})
    add_actions(con, [row])
    run(con, make_config(tmp_path, smtp_port=port))
    assert [m.rcpt_tos for m in recorder.messages] == [["pat.primary@customer.test"]]
