"""Manual deploy requests (Natero's "Deploy", Catalyst's manual entry), honoured at the next tick.

A request is stored once with the time it was made; the tick whose window (previous tick,
as_of] holds that time evaluates it, so a replay honours it at the same tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import polars as pl

DDL = (
    "CREATE TABLE IF NOT EXISTS deploy_requests (request_id VARCHAR PRIMARY KEY, "
    "workflow VARCHAR NOT NULL, participant_id VARCHAR NOT NULL, requested_by VARCHAR, "
    "requested_at TIMESTAMP NOT NULL)"
)


def request_deploys(
    con: duckdb.DuckDBPyConnection,
    workflow: str,
    participants: Sequence[str],
    requested_by: str,
    requested_at: datetime,
) -> int:
    """Store one request per participant; the same request made twice is stored once."""
    con.execute(DDL).fetchall()
    rows = pl.DataFrame(  # noqa: F841 (read by DuckDB)
        {"participant_id": list(dict.fromkeys(participants))}, schema={"participant_id": pl.String}
    ).select(
        (pl.lit(f"{workflow}/") + pl.col("participant_id") + "@"
         + pl.lit(requested_at.isoformat())).alias("request_id"),
        pl.lit(workflow).alias("workflow"),
        "participant_id",
        pl.lit(requested_by).alias("requested_by"),
        pl.lit(requested_at).alias("requested_at"),
    )
    before = con.execute("SELECT count(*) FROM deploy_requests").fetchall()[0][0]
    con.execute("INSERT OR IGNORE INTO deploy_requests SELECT * FROM rows").fetchall()
    return con.execute("SELECT count(*) FROM deploy_requests").fetchall()[0][0] - before


def load_deploys(
    con: duckdb.DuckDBPyConnection, after: datetime | None, until: datetime
) -> pl.DataFrame:
    """Requests made in (after, until], oldest first (all up to `until` when after is None)."""
    con.execute(DDL).fetchall()
    return con.sql(
        "SELECT workflow, participant_id, requested_by, requested_at FROM deploy_requests "
        "WHERE requested_at <= $until AND ($after IS NULL OR requested_at > $after) "
        "ORDER BY requested_at, request_id",
        params={"after": after, "until": until},
    ).pl()
