"""The reports stage as one call: build the report tables, then publish the BI copy.

Every caller that builds reports (a tick, a run, `cswf reports`, the Dagster reports asset)
publishes right after, so the copy readers use is never older than the reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from cswf.reports.build import build_reports, report_files
from cswf.reports.insights import action_insights
from cswf.reports.publish import Publication, publish
from cswf.settings import Settings
from cswf.store.tables import ensure_engine_tables


@dataclass(frozen=True)
class Reports:
    rows: dict[str, int]  # each report table's rows, by name
    publication: Publication


def refresh_reports(con: duckdb.DuckDBPyConnection, settings: Settings) -> Reports:
    """Build every report of `settings.sql_path`, then publish them and the BI tables. The
    tables they read are brought up to date first (a warehouse from an older cswf may lack a
    column a report reads until its next tick)."""
    ensure_engine_tables(con)
    rows = build_reports(con, settings.sql_path)
    return Reports(rows, publish_bi_copy(con, settings, rows))


def publish_bi_copy(con: duckdb.DuckDBPyConnection, settings: Settings,
                    reports: dict[str, int] | None = None) -> Publication:
    """Publish the report tables built last (all of `sql/reports/` when not given)."""
    names = list(reports) if reports is not None else \
        [f.stem for f in report_files(settings.sql_path)]
    return publish(con, settings.bi_path, names)


def store_action_insights(con: duckdb.DuckDBPyConnection, now: datetime) -> int:
    """Rebuild the `action_insights` table as of a delivery's `now` (what the Dagster delivery
    job and `cswf deliver` both run after delivering); returns its rows. Publishing it is the
    caller's next step."""
    insights = action_insights(con, now)
    con.execute("CREATE OR REPLACE TABLE action_insights AS SELECT * FROM insights").fetchall()
    return insights.height
