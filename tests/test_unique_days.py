"""The duplicate-key check reads only the days that changed since it last found them unique
(ingest/unique_days.py), and finds exactly what a check of every day finds."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from cswf.ingest.checks import MAX_EXAMPLES, Finding, duplicate_keys
from cswf.ingest.contract import ACCOUNTS
from cswf.ingest.snapshots import ensure_tables
from cswf.ingest.unique_days import REMEMBERED

DAY = date(2026, 5, 1)


def every_day(con: duckdb.DuckDBPyConnection, until: date | None) -> Finding:
    """The check as it was, over every day in one pass: the reference."""
    rows = con.execute(
        f"""
        SELECT snapshot_date, account_id, count(*) AS n, list_sort(list(DISTINCT source_file)),
               count(*) OVER () AS total
        FROM raw_accounts
        WHERE $until IS NULL OR snapshot_date <= $until
        GROUP BY ALL
        HAVING count(*) > 1
        ORDER BY 1, 2
        LIMIT {MAX_EXAMPLES}
        """, {"until": until}).fetchall()
    return Finding(rows[0][4] if rows else 0,
                   [f"{d} {a} x{n} in {', '.join(files)}" for d, a, n, files, _ in rows])


def land(con: duckdb.DuckDBPyConnection, rows: list[tuple[date | None, str | None, str]]
         ) -> None:
    con.executemany("INSERT INTO raw_accounts (snapshot_date, account_id, source_file) "
                    "VALUES (?, ?, ?)", rows)


def remembered(con: duckdb.DuckDBPyConnection) -> list[date]:
    return [d for (d,) in con.execute(f"SELECT day FROM {REMEMBERED} ORDER BY 1").fetchall()]


days = st.one_of(st.none(), st.integers(0, 4).map(lambda n: DAY + timedelta(days=n)))
ids = st.one_of(st.none(), st.sampled_from(["A", "B", "C", "D", "E", "F", "G"]))
files = st.sampled_from(["a.csv", "b.csv", "c.csv"])
rows = st.lists(st.tuples(days, ids), min_size=1, max_size=8)
# a file landed, removed, or landed again with other rows (the ingest replaces its rows)
steps = st.lists(st.tuples(st.sampled_from(["land", "remove", "replace"]), files, rows),
                 min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(steps=steps, until=st.one_of(st.none(), st.integers(0, 4)))
def test_the_check_finds_what_a_check_of_every_day_finds(steps: list, until: int | None) -> None:
    """Files landed and removed in any order, checked after each step: the same count and
    examples as reading every day, whatever the check remembered before."""
    last = None if until is None else DAY + timedelta(days=until)
    with duckdb.connect() as con:
        ensure_tables(con)
        for kind, file, landed in steps:
            if kind != "land":
                con.execute("DELETE FROM raw_accounts WHERE source_file = ?", [file])
            if kind != "remove":
                land(con, [(day, key, file) for day, key in landed])
            for scope in (last, None):
                assert duplicate_keys(con, ACCOUNTS, scope) == every_day(con, scope)


def test_a_unique_day_is_remembered_and_a_day_with_a_duplicate_never_is() -> None:
    with duckdb.connect() as con:
        ensure_tables(con)
        second = DAY + timedelta(days=1)
        land(con, [(DAY, "A", "a.csv"), (DAY, "B", "a.csv"), (second, "A", "b.csv"),
                   (second, "A", "c.csv")])
        assert duplicate_keys(con, ACCOUNTS).count == 1
        assert remembered(con) == [DAY]
        # a row added to a remembered day changes its fingerprint: checked again, and found
        land(con, [(DAY, "B", "d.csv")])
        assert duplicate_keys(con, ACCOUNTS) == Finding(2, [
            "2026-05-01 B x2 in a.csv, d.csv", "2026-05-02 A x2 in b.csv, c.csv"])
        assert remembered(con) == []
        # the same number of rows, another id: a new fingerprint too
        con.execute("UPDATE raw_accounts SET account_id = 'C' WHERE source_file = 'd.csv'")
        assert duplicate_keys(con, ACCOUNTS).examples == ["2026-05-02 A x2 in b.csv, c.csv"]
        assert remembered(con) == [DAY]
        con.execute("UPDATE raw_accounts SET account_id = 'A' WHERE source_file = 'd.csv'")
        assert duplicate_keys(con, ACCOUNTS).count == 2
        con.execute("DELETE FROM raw_accounts WHERE source_file IN ('c.csv', 'd.csv')")
        assert duplicate_keys(con, ACCOUNTS) == Finding(0)
        assert remembered(con) == [DAY, second]
        # the temp tables of a check are gone after it
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchall() \
            == [(0,)]


def test_a_read_only_connection_checks_the_same_and_remembers_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "w.duckdb")
    with duckdb.connect(path) as con:
        ensure_tables(con)
        land(con, [(DAY, "A", "a.csv"), (DAY, "A", "b.csv"), (DAY + timedelta(days=1), "A",
                                                                "a.csv")])
    with duckdb.connect(path, read_only=True) as con:
        assert duplicate_keys(con, ACCOUNTS) == Finding(1, ["2026-05-01 A x2 in a.csv, b.csv"])
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                           [REMEMBERED]).fetchall() == [(0,)]
