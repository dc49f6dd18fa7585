"""The action insights report: per workflow and step, what emails and tasks did.

Its SQL lives in `delivery/sql/action_insights.sql` rather than `sql/reports/`, because it reads
the delivery tables, which exist only once delivery has run; this function creates them (empty)
first, so the report works on a warehouse that has ticked but never delivered.
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources

import duckdb
import polars as pl

from cswf.calendar import utc_naive
from cswf.store.tables import ensure_delivery_tables


def insights_sql() -> str:
    return resources.files("cswf.delivery").joinpath(
        "sql/action_insights.sql").read_text()


def action_insights(con: duckdb.DuckDBPyConnection, as_of: datetime) -> pl.DataFrame:
    """Emails sent / delivered / opened / clicked / replied / bounced and tasks created /
    completed / overdue (due before `as_of`, not completed), per workflow and step."""
    ensure_delivery_tables(con)
    return con.sql(insights_sql(), params={"as_of": utc_naive(as_of)}).pl()
