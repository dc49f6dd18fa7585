"""Quiet hours read each participant's zone from the latest snapshot on or before the day."""

from __future__ import annotations

from datetime import datetime

import duckdb

from cswf.delivery.zones import participant_time_zones


def test_latest_snapshot_zones_for_accounts_and_contacts() -> None:
    con = duckdb.connect(":memory:")
    assert participant_time_zones(con, datetime(2026, 6, 2)) is None
    con.execute("CREATE TABLE raw_accounts (snapshot_date DATE, account_id VARCHAR, "
                "time_zone VARCHAR)").fetchall()
    con.execute("INSERT INTO raw_accounts VALUES ('2026-06-01', 'A1', 'Europe/Berlin'), "
                "('2026-06-03', 'A1', 'Asia/Tokyo'), ('2026-06-01', 'A2', NULL)").fetchall()
    zones = participant_time_zones(con, datetime(2026, 6, 2, 10))
    assert zones is not None and zones.rows() == [("A1", "Europe/Berlin")]
    con.execute("CREATE TABLE raw_contacts (snapshot_date DATE, contact_id VARCHAR, "
                "account_id VARCHAR, time_zone VARCHAR)").fetchall()
    con.execute("INSERT INTO raw_contacts VALUES ('2026-06-01', 'C1', 'A1', NULL), "
                "('2026-06-01', 'C2', 'A1', 'America/Chicago')").fetchall()
    zones = participant_time_zones(con, datetime(2026, 6, 2))
    assert zones is not None
    assert sorted(zones.rows()) == [("A1", "Europe/Berlin"), ("C1", "Europe/Berlin"),
                                    ("C2", "America/Chicago")]
