"""Manual deploy requests (Natero's "Deploy", Catalyst's manual entry), honoured at the next tick.

A request is stored once with the time it was made; the tick whose window (previous tick,
as_of] holds that time evaluates it, so a replay honours it at the same tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import polars as pl

from cswf.store.tables import ensure_deploy_requests

# What a request says; the same shape whatever asked (the CLI, a landing file).
REQUEST_SCHEMA = {
    "workflow": pl.String,
    "participant_id": pl.String,
    "requested_by": pl.String,
    "requested_at": pl.Datetime("us"),
}
_REQUESTS = "_cswf_new_requests"  # the rows being inserted, as DuckDB reads them


_AT = pl.col("requested_at")
# `workflow/participant@requested_at`, the time exactly as datetime.isoformat() writes it: the
# same request made twice, from anywhere, gets one id.
REQUEST_ID = (
    pl.col("workflow") + "/" + pl.col("participant_id") + "@"
    + _AT.dt.strftime("%Y-%m-%dT%H:%M:%S")
    + pl.when(_AT.dt.microsecond() != 0).then(_AT.dt.strftime("%.6f")).otherwise(pl.lit(""))
).alias("request_id")

def request_deploys(
    con: duckdb.DuckDBPyConnection,
    workflow: str,
    participants: Sequence[str],
    requested_by: str,
    requested_at: datetime,
) -> int:
    """Store one request per participant; the same request made twice is stored once."""
    asked = pl.DataFrame(
        {"participant_id": list(dict.fromkeys(participants))}, schema={"participant_id": pl.String}
    ).select(
        pl.lit(workflow, dtype=pl.String).alias("workflow"),
        "participant_id",
        pl.lit(requested_by, dtype=pl.String).alias("requested_by"),
        pl.lit(requested_at, dtype=pl.Datetime("us")).alias("requested_at"),
    )
    return store_requests(con, asked)


def store_requests(con: duckdb.DuckDBPyConnection, requests: pl.DataFrame) -> int:
    """Store requests (columns of REQUEST_SCHEMA); returns how many were new.

    The id is `workflow/participant@requested_at` (ISO time), so the same request made twice,
    from anywhere, is stored once. Runs inside the caller's transaction if there is one.
    """
    ensure_deploy_requests(con)
    rows = requests.select(
        REQUEST_ID,
        *(pl.col(name).cast(dtype) for name, dtype in REQUEST_SCHEMA.items()),
    ).unique("request_id", keep="first", maintain_order=True)
    return insert_new(con, "deploy_requests", rows)


def insert_new(con: duckdb.DuckDBPyConnection, table: str, rows: pl.DataFrame) -> int:
    """Insert `rows` into a request table keyed by request_id; returns how many were new."""
    before = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    con.register(_REQUESTS, rows)
    try:
        con.execute(f"INSERT OR IGNORE INTO {table} SELECT * FROM {_REQUESTS}").fetchall()
    finally:
        con.unregister(_REQUESTS)
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] - before


def load_deploys(
    con: duckdb.DuckDBPyConnection, after: datetime | None, until: datetime
) -> pl.DataFrame:
    """Requests made in (after, until], oldest first (all up to `until` when after is None)."""
    ensure_deploy_requests(con)
    return con.sql(
        "SELECT workflow, participant_id, requested_by, requested_at FROM deploy_requests "
        "WHERE requested_at <= $until AND ($after IS NULL OR requested_at > $after) "
        "ORDER BY requested_at, request_id",
        params={"after": after, "until": until},
    ).pl()
