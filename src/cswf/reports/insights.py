"""The action insights report: per workflow and step, what emails and tasks did.

Its SQL is the report model `sql/reports/action_insights.sql`, a report with an `as_of`
parameter, so it is run here per call rather than stored by build_reports. It reads the delivery
tables, which exist only once delivery has run; this function creates them (empty) first, so the
report works on a warehouse that has ticked but never delivered.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from cswf.calendar import utc_naive
from cswf.reports.build import report_sql
from cswf.store.tables import ensure_delivery_tables


def insights_sql() -> str:
    return report_sql("action_insights")


def action_insights(con: duckdb.DuckDBPyConnection, as_of: datetime) -> pl.DataFrame:
    """Emails sent / delivered / opened / clicked / replied / bounced and tasks created /
    completed / overdue (due before `as_of`, not completed), per workflow and step."""
    ensure_delivery_tables(con)
    return con.sql(insights_sql(), params={"as_of": utc_naive(as_of)}).pl()
