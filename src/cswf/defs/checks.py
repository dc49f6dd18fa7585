"""Blocking data-quality checks on the landed snapshots.

Each check is a function of `facts/checks.py` (shared with the CLI's pipeline) returning how many
problems it found and up to five examples; the Dagster checks below only report them. The checks
are blocking: when one fails, nothing downstream of `landing_snapshots` runs in that run, so no
tick is evaluated and no action is emitted from bad data.
"""

from __future__ import annotations

import dagster as dg
from dagster_duckdb import DuckDBResource

from cswf.defs.resources import open_warehouse
from cswf.ingest.checks import Finding, account_rows, duplicate_ids, rejected_files

LANDING = dg.AssetKey("landing_snapshots")


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
