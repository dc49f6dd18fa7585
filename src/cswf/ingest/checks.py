"""Data-quality checks on the landed snapshots: what must block a tick.

One implementation for both callers: the CLI's pipeline refuses to run a tick while
`snapshot_problems` is non-empty, and the Dagster asset checks report each `Finding`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date, datetime

import duckdb

from cswf.ingest.contract import ACCOUNTS, OBJECTS, LandingObject
from cswf.ingest.doubles import TODO
from cswf.ingest.unique_days import REMEMBERED, TO_CHECK, days_to_check, remember_unique
from cswf.settings import Snapshots

MAX_EXAMPLES = 5
TWICE = "cswf_twice_keys"  # a temp table: the duplicate keys among the days checked
REJECTED_TODO = "fix each file and land it again under the same name, or remove it"


@dataclass(frozen=True)
class Finding:
    """What a check found: how many offending keys or files, and a few examples."""

    count: int
    examples: list[str] = field(default_factory=list)


def existing_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT internal").fetchall()
    return {name for (name,) in rows}


def duplicate_keys(con: duckdb.DuckDBPyConnection, obj: LandingObject,
                   until: date | None = None) -> Finding:
    """(date, id) keys seen more than once in one raw table, with their files; with `until`
    (a tick's day), only those dated on or before it: a tick never sees later snapshots.

    Only the days not already found unique as they are now are read (ingest/unique_days.py):
    a tick reads the days landed since the last check. So the check writes (what it found
    unique), unless its connection is read-only: it is run by the database's one writer.
    Among them, the duplicate keys are counted first, then the files of the few shown are
    listed. (Listing every key's files
    in one pass over every day took 21 s and 5 GiB for a table of 35M usage rows, before
    every tick.)"""
    tables = existing_tables(con)
    if obj.table not in tables:
        return Finding(0)
    day, account = obj.key
    try:
        days_to_check(con, obj, until, REMEMBERED in tables)
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {TWICE} AS
            SELECT {day}, {account}, count(*) AS n
            FROM {obj.table} AS raw
            SEMI JOIN {TO_CHECK} AS d ON raw.{day} IS NOT DISTINCT FROM d.day
            GROUP BY ALL
            HAVING count(*) > 1
            """).fetchall()
        rows = con.execute(
            f"""
            WITH shown AS (
                SELECT *, count(*) OVER () AS total FROM {TWICE} ORDER BY 1, 2
                LIMIT {MAX_EXAMPLES}
            )
            SELECT shown.{day}, shown.{account}, any_value(n),
                   list_sort(list(DISTINCT raw.source_file)), any_value(total)
            FROM shown JOIN {obj.table} AS raw
              ON raw.{day} IS NOT DISTINCT FROM shown.{day}
             AND raw.{account} IS NOT DISTINCT FROM shown.{account}
            GROUP BY ALL
            ORDER BY 1, 2
            """).fetchall()
        remember_unique(con, obj, TWICE)
    finally:  # never in place of the error that stopped the check (an aborted transaction)
        for name in (TWICE, TO_CHECK):
            with suppress(duckdb.Error):
                con.execute(f"DROP TABLE IF EXISTS temp.{name}").fetchall()
    examples = [f"{d} {a} x{n} in {', '.join(files)}" for d, a, n, files, _ in rows]
    return Finding(rows[0][4] if rows else 0, examples)


Findings = dict[LandingObject, Finding]


def duplicate_findings(con: duckdb.DuckDBPyConnection, until: date | None = None) -> Findings:
    """Duplicate keys per raw table (dated on or before `until`, if given): one pass each,
    which `all_duplicates` counts and `duplicate_sentences` words."""
    return {obj: duplicate_keys(con, obj, until) for obj in OBJECTS.values()}


def all_duplicates(found: Findings) -> Finding:
    """The duplicate keys of every raw table as one finding."""
    examples = [f"{obj.table}: {e}" for obj, finding in found.items() for e in finding.examples]
    return Finding(sum(finding.count for finding in found.values()), examples[:MAX_EXAMPLES])


def duplicate_sentences(found: Findings) -> list[str]:
    """One sentence per raw table with duplicate keys: how many, where, and what to do."""
    problems = []
    for obj, finding in found.items():
        if finding.count:
            date_col, id_col = obj.key
            problems.append(f"{obj.table}: {finding.count} duplicate ({date_col}, {id_col}) "
                            f"keys, e.g. {'; '.join(finding.examples)}: {TODO}")
    return problems


def duplicate_ids(con: duckdb.DuckDBPyConnection, until: date | None = None) -> Finding:
    """Duplicate keys across every raw table (dated on or before `until`, if given)."""
    return all_duplicates(duplicate_findings(con, until))


def rejected_files(con: duckdb.DuckDBPyConnection) -> Finding:
    """Landing files the ingest rejected; each reason names the file and the column."""
    if "ingest_rejections" not in existing_tables(con):
        return Finding(0)
    rows = con.execute(
        f"""
        SELECT reason, count(DISTINCT source_file) OVER () AS files
        FROM ingest_rejections
        ORDER BY source_file, reason
        LIMIT {MAX_EXAMPLES}
        """
    ).fetchall()
    return Finding(rows[0][1] if rows else 0, [reason for reason, _ in rows])


def flagged_rows(con: duckdb.DuckDBPyConnection) -> Finding:
    """Rows loaded with a value the contract flags (an unknown tier, an extra field that does
    not convert): they do not block a tick, but someone should look."""
    if "ingest_row_flags" not in existing_tables(con):
        return Finding(0)
    rows = con.execute(
        f"""
        SELECT source_file, row_number, column_name, reason, count(*) OVER ()
        FROM ingest_row_flags
        ORDER BY source_file, row_number, column_name
        LIMIT {MAX_EXAMPLES}
        """
    ).fetchall()
    examples = [f"{rel}: row {row}: column '{column}': {reason}"
                for rel, row, column, reason, _ in rows]
    return Finding(rows[0][4] if rows else 0, examples)


def account_rows(con: duckdb.DuckDBPyConnection) -> int:
    """Rows in raw_accounts (0 when the table does not exist yet)."""
    if ACCOUNTS.table not in existing_tables(con):
        return 0
    return int(con.execute(f"SELECT count(*) FROM {ACCOUNTS.table}").fetchall()[0][0])


def _account_days(con: duckdb.DuckDBPyConnection) -> list[tuple[date, int, str]]:
    """(day, accounts, files) of every landed account snapshot day (accounts, not rows: a
    duplicated file is its own problem), header-only files included
    (0 rows, their day read from the file name), oldest first."""
    tables = existing_tables(con)
    if ACCOUNTS.table not in tables or "ingested_files" not in tables:
        return []
    return con.execute(
        rf"""
        WITH landed AS (
            SELECT snapshot_date AS day, count(DISTINCT account_id) AS n,
                   string_agg(DISTINCT source_file, ', ' ORDER BY source_file) AS files
            FROM {ACCOUNTS.table} GROUP BY ALL),
        headers AS (
            SELECT try_strptime(regexp_extract(source_file, '(\d{{4}}-\d{{2}}-\d{{2}})', 1),
                                '%Y-%m-%d')::DATE AS day, 0 AS n,
                   string_agg(source_file, ', ' ORDER BY source_file) AS files
            FROM ingested_files WHERE object = '{ACCOUNTS.name}' AND row_count = 0
            GROUP BY ALL)
        SELECT * FROM landed
        UNION ALL
        SELECT * FROM headers WHERE day IS NOT NULL AND day NOT IN (SELECT day FROM landed)
        ORDER BY day
        """
    ).fetchall()


def incomplete_snapshots(con: duckdb.DuckDBPyConnection,
                         rules: Snapshots | None = None, until: date | None = None) -> list[str]:
    """Account snapshot days that cannot be trusted whole: a header-only file, a day that lost
    more than `max_drop` of the rows of the day before, a day missing between the first and the
    last. A day in `accept` is a known change and passes. With `until` (a tick's day), only the
    days on or before it count: a tick never sees later snapshots."""
    rules = rules or Snapshots()
    accepted = set(rules.accept)
    days = [found for found in _account_days(con) if until is None or found[0] <= until]
    problems = []
    previous: tuple[date, int] | None = None
    for day, rows, files in days:
        if rows == 0 and day not in accepted:
            problems.append(f"{files}: a header and no rows (the account snapshot of {day})")
        if rows and previous is not None and day not in accepted and \
                rows < previous[1] * (1 - rules.max_drop):
            problems.append(
                f"{files}: {rows} account rows on {day}, {1 - rows / previous[1]:.0%} fewer than "
                f"the {previous[1]} on {previous[0]} (at most {rules.max_drop:.0%} fewer may "
                "pass)")
        if rows:
            previous = (day, rows)
    if days:
        first, last = days[0][0], days[-1][0]
        landed = {day for day, _, _ in days} | accepted
        missing = [first.fromordinal(n) for n in range(first.toordinal(), last.toordinal())
                   if first.fromordinal(n) not in landed]
        if missing:
            listed = ", ".join(str(d) for d in missing[:MAX_EXAMPLES])
            more = f" and {len(missing) - MAX_EXAMPLES} more" if len(missing) > MAX_EXAMPLES else ""
            problems.append(f"accounts: no snapshot for {listed}{more} (landed: {first} to "
                            f"{last})")
    return problems


def stale_snapshots(con: duckdb.DuckDBPyConnection, ticks: Sequence[datetime],
                    rules: Snapshots | None = None) -> list[str]:
    """The first of `ticks` whose newest account snapshot (on or before its day) is more than
    `max_age_days` old, as a sentence; none when every tick is fresh or its day is accepted."""
    rules = rules or Snapshots()
    landed = sorted(day for day, rows, _ in _account_days(con) if rows)
    if not landed:
        return []
    stale = []
    for tick in ticks:
        day = tick.date()
        if day in rules.accept:
            continue
        newest = max((d for d in landed if d <= day), default=None)
        if newest is None:
            stale.append((tick, f"no account snapshot on or before {day}"))
        elif (day - newest).days > rules.max_age_days:
            stale.append((tick, f"the newest account snapshot is {newest}, {(day - newest).days} "
                                f"days old (at most {rules.max_age_days} may pass)"))
    if not stale:
        return []
    tick, what = stale[0]
    more = f" (and {len(stale) - 1} later tick(s))" if len(stale) > 1 else ""
    return [f"accounts: at tick {tick:%Y-%m-%d %H:%M}, {what}{more}"]


def snapshot_problems(con: duckdb.DuckDBPyConnection, rules: Snapshots | None = None,
                      until: date | None = None) -> list[str]:
    """Every problem that must block a tick, as sentences; empty when the raw data is usable.
    With `until` (the last tick's day), duplicates and gaps dated after it do not count; a
    rejected file always does (its rows, unloaded, have no date). (Staleness depends on the
    tick: `stale_snapshots`.)"""
    problems = duplicate_sentences(duplicate_findings(con, until))
    rejected = rejected_files(con)
    if rejected.count:
        problems.append(f"ingest_rejections: {rejected.count} rejected landing file(s): "
                        f"{'; '.join(rejected.examples)}: {REJECTED_TODO}")
    if not account_rows(con):
        problems.append(f"{ACCOUNTS.table} is empty: no account snapshot has been ingested")
    return problems + incomplete_snapshots(con, rules, until)
