"""Data-quality checks on the landed snapshots: what must block a tick.

One implementation for both callers: the CLI's pipeline refuses to run a tick while
`snapshot_problems` is non-empty, and the Dagster asset checks report each `Finding`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from cswf.ingest.contract import ACCOUNTS, OBJECTS, LandingObject

MAX_EXAMPLES = 5


@dataclass(frozen=True)
class Finding:
    """What a check found: how many offending keys or files, and a few examples."""

    count: int
    examples: list[str] = field(default_factory=list)


def existing_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT internal").fetchall()
    return {name for (name,) in rows}


def duplicate_keys(con: duckdb.DuckDBPyConnection, obj: LandingObject) -> Finding:
    """(date, id) keys seen more than once in one raw table, with their files."""
    if obj.table not in existing_tables(con):
        return Finding(0)
    day, account = obj.key
    rows = con.execute(
        f"""
        SELECT {day}, {account}, count(*) AS n, list_sort(list(DISTINCT source_file)),
               count(*) OVER () AS total
        FROM {obj.table}
        GROUP BY ALL
        HAVING count(*) > 1
        ORDER BY 1, 2
        LIMIT {MAX_EXAMPLES}
        """
    ).fetchall()
    examples = [f"{d} {a} x{n} in {', '.join(files)}" for d, a, n, files, _ in rows]
    return Finding(rows[0][4] if rows else 0, examples)


def duplicate_ids(con: duckdb.DuckDBPyConnection) -> Finding:
    """Duplicate keys across every raw table."""
    findings = [(obj.table, duplicate_keys(con, obj)) for obj in OBJECTS.values()]
    examples = [f"{table}: {e}" for table, found in findings for e in found.examples]
    return Finding(sum(found.count for _, found in findings), examples[:MAX_EXAMPLES])


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


def account_rows(con: duckdb.DuckDBPyConnection) -> int:
    """Rows in raw_accounts (0 when the table does not exist yet)."""
    if ACCOUNTS.table not in existing_tables(con):
        return 0
    return int(con.execute(f"SELECT count(*) FROM {ACCOUNTS.table}").fetchall()[0][0])


def snapshot_problems(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every problem that must block a tick, as sentences; empty when the raw data is usable."""
    problems = []
    for obj in OBJECTS.values():
        found = duplicate_keys(con, obj)
        if found.count:
            date_col, id_col = obj.key
            problems.append(f"{obj.table}: {found.count} duplicate ({date_col}, {id_col}) keys, "
                            f"e.g. {'; '.join(found.examples)}")
    rejected = rejected_files(con)
    if rejected.count:
        problems.append(f"ingest_rejections: {rejected.count} rejected landing file(s): "
                        f"{'; '.join(rejected.examples)}")
    if not account_rows(con):
        problems.append(f"{ACCOUNTS.table} is empty: no account snapshot has been ingested")
    return problems
