"""Days of a raw table whose keys were found unique, remembered with a fingerprint of their
rows, so that the duplicate-key check before every tick reads only the days that changed since.

A day's fingerprint is its row count and the sum of its ids' hashes. Any change to that day's
ids (a row added, removed or replaced, whoever made it: the ingest, a person's SQL) gives
another fingerprint, and the day is checked again. A day with a duplicate key is never
remembered, so it is found again at every check until it is fixed. (DuckDB's `hash` may change
with its version: every day then looks new and is checked once more, never skipped wrongly.)
A read-only connection checks the same days and remembers nothing.
"""

from __future__ import annotations

from datetime import date

import duckdb

from cswf.ingest.contract import LandingObject

REMEMBERED = "_cswf_unique_days"
TO_CHECK = "cswf_days_to_check"  # a temp table: this check's days


def days_to_check(con: duckdb.DuckDBPyConnection, obj: LandingObject, until: date | None,
                  remembered: bool) -> None:
    """TO_CHECK: (day, rows, fingerprint) of the raw table's days dated on or before `until`
    that are not remembered as unique with the fingerprint they have now (`remembered`:
    whether the REMEMBERED table exists yet)."""
    day, key = obj.key
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {TO_CHECK} AS "
        f"SELECT {day} AS day, count(*) AS rows, sum(hash({key})::HUGEINT) AS fingerprint "
        f"FROM {obj.table} WHERE $until IS NULL OR {day} <= $until GROUP BY 1",
        {"until": until},
    ).fetchall()
    if remembered:
        con.execute(
            f"DELETE FROM {TO_CHECK} AS d USING {REMEMBERED} AS r WHERE r.raw_table = $t "
            "AND r.day = d.day AND r.rows = d.rows AND r.fingerprint = d.fingerprint",
            {"t": obj.table},
        ).fetchall()


def remember_unique(con: duckdb.DuckDBPyConnection, obj: LandingObject, twice: str) -> None:
    """Remember the checked days without a key in `twice` (the duplicate keys the caller found
    among them), unless the connection is read-only."""
    if _read_only(con):
        return
    day, _ = obj.key
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {REMEMBERED} (raw_table VARCHAR NOT NULL, "
        "day DATE NOT NULL, rows BIGINT NOT NULL, fingerprint HUGEINT NOT NULL)"
    ).fetchall()
    con.execute(f"DELETE FROM {REMEMBERED} AS r USING {TO_CHECK} AS d "
                "WHERE r.raw_table = $t AND r.day = d.day", {"t": obj.table}).fetchall()
    con.execute(
        f"INSERT INTO {REMEMBERED} SELECT $t, day, rows, fingerprint FROM {TO_CHECK} "
        f"WHERE day IS NOT NULL AND day NOT IN (SELECT {day} FROM {twice} "
        f"WHERE {day} IS NOT NULL)",
        {"t": obj.table},
    ).fetchall()


def _read_only(con: duckdb.DuckDBPyConnection) -> bool:
    return con.execute("SELECT current_setting('access_mode')").fetchall()[0][0] == "read_only"
