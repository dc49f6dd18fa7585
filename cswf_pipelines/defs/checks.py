"""Blocking data-quality checks on the landed snapshots.

Each check is a small SQL function over the raw tables (see facts/contract.py) returning how many
problems it found and up to five examples; the Dagster checks below only report them. The checks
are blocking: when one fails, nothing downstream of `landing_snapshots` runs in that run, so no
tick is evaluated and no action is emitted from bad data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from cswf_pipelines.defs.resources import open_warehouse
from cswf_pipelines.facts.contract import ACCOUNTS, OBJECTS

MAX_EXAMPLES = 5
LANDING = dg.AssetKey("landing_snapshots")


@dataclass(frozen=True)
class Finding:
    """What a check found: the number of offending rows/keys/files and a few examples."""

    count: int
    examples: list[str] = field(default_factory=list)


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT internal").fetchall()
    return {name for (name,) in rows}


def duplicate_ids(con: duckdb.DuckDBPyConnection) -> Finding:
    """Keys seen more than once: (snapshot_date, account_id) in raw_accounts,
    (usage_date, account_id) in raw_usage."""
    existing = _tables(con)
    count, examples = 0, []
    for obj in OBJECTS.values():
        if obj.table not in existing:
            continue
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
        if rows:
            count += rows[0][4]
            examples += [
                f"{obj.table}: {d} {a} x{n} in {', '.join(files)}" for d, a, n, files, _ in rows
            ]
    return Finding(count, examples[:MAX_EXAMPLES])


def rejected_files(con: duckdb.DuckDBPyConnection) -> Finding:
    """Landing files the ingest rejected; each reason names the file and the column."""
    if "ingest_rejections" not in _tables(con):
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
    if ACCOUNTS.table not in _tables(con):
        return 0
    return int(con.execute(f"SELECT count(*) FROM {ACCOUNTS.table}").fetchall()[0][0])


def _result(finding: Finding, what: str) -> dg.AssetCheckResult:
    listed = "\n".join(f"- {example}" for example in finding.examples)
    return dg.AssetCheckResult(
        passed=finding.count == 0,
        description=f"{finding.count} {what}" if finding.count else f"no {what}",
        metadata={
            "offending": finding.count,
            "examples": dg.MetadataValue.md(listed or "none"),
        },
    )


@dg.asset_check(
    asset=LANDING,
    blocking=True,
    description="No duplicate (snapshot_date, account_id) or (usage_date, account_id) keys.",
)
def unique_ids(warehouse: DuckDBResource) -> dg.AssetCheckResult:
    with open_warehouse(warehouse) as con:
        return _result(duplicate_ids(con), "duplicate keys")


@dg.asset_check(
    asset=LANDING,
    blocking=True,
    description="No landing file was rejected (missing required column, bad value, unreadable).",
)
def required_columns(warehouse: DuckDBResource) -> dg.AssetCheckResult:
    with open_warehouse(warehouse) as con:
        return _result(rejected_files(con), "rejected landing files")


@dg.asset_check(asset=LANDING, blocking=True, description="raw_accounts has rows.")
def non_empty(warehouse: DuckDBResource) -> dg.AssetCheckResult:
    with open_warehouse(warehouse) as con:
        rows = account_rows(con)
    return dg.AssetCheckResult(
        passed=rows > 0,
        description=f"{rows} account snapshot rows" if rows else "raw_accounts is empty",
        metadata={"rows": rows},
    )


LANDING_CHECKS = [unique_ids, required_columns, non_empty]
