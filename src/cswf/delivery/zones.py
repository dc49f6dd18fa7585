"""Participants' time zones for quiet hours, from the latest account and contact snapshots."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from cswf.store.query import query_frame

SQL = Path(__file__).with_name("sql") / "participant_time_zones.sql"
CONTACTS = """UNION ALL
SELECT c.contact_id, coalesce(c.time_zone, a.time_zone)
FROM raw_contacts AS c LEFT JOIN accounts AS a ON a.participant_id = c.account_id
WHERE c.snapshot_date <= $day AND coalesce(c.time_zone, a.time_zone) IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY c.contact_id ORDER BY c.snapshot_date DESC) = 1"""


def participant_time_zones(con: duckdb.DuckDBPyConnection, now: datetime) -> pl.DataFrame | None:
    """participant_id → time_zone as of `now`'s day; None before any account snapshot."""
    tables = {row[0] for row in con.execute(
        "SELECT table_name FROM information_schema.tables").fetchall()}
    if "raw_accounts" not in tables:
        return None
    query = SQL.read_text().format(contacts=CONTACTS if "raw_contacts" in tables else "")
    return query_frame(con, query, {"day": now.date()})
