"""Manual exits (`cswf remove`): a person takes participants out of a workflow, with a reason.

Like a deploy request, a removal is stored once with the time it was made, and the tick whose
window (previous tick, as_of] holds that time exits the participant, so a replay equals a live
run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import polars as pl

from cswf.ingest.deploys import REQUEST_ID, insert_new
from cswf.store.tables import ensure_removal_requests


def request_removals(
    con: duckdb.DuckDBPyConnection,
    workflow: str,
    participants: Sequence[str],
    reason: str,
    requested_by: str,
    requested_at: datetime,
) -> int:
    """Store one request per participant; the same request made twice is stored once.
    Returns how many were new."""
    ensure_removal_requests(con)
    rows = pl.DataFrame(
        {"participant_id": list(dict.fromkeys(participants))},
        schema={"participant_id": pl.String},
    ).select(
        pl.lit(workflow, dtype=pl.String).alias("workflow"),
        "participant_id",
        pl.lit(requested_by, dtype=pl.String).alias("requested_by"),
        pl.lit(reason, dtype=pl.String).alias("reason"),
        pl.lit(requested_at, dtype=pl.Datetime("us")).alias("requested_at"),
    ).select(REQUEST_ID, pl.all())
    return insert_new(con, "removal_requests", rows)


def load_removals(
    con: duckdb.DuckDBPyConnection, after: datetime | None, until: datetime
) -> pl.DataFrame:
    """Requests made in (after, until], oldest first (all up to `until` when after is None)."""
    ensure_removal_requests(con)
    return con.sql(
        "SELECT workflow, participant_id, requested_by, reason, requested_at "
        "FROM removal_requests WHERE requested_at <= $until "
        "AND ($after IS NULL OR requested_at > $after) ORDER BY requested_at, request_id",
        params={"after": after, "until": until},
    ).pl()
