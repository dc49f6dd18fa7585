"""Held ticks in `tick_holds`, and the trailing norms the guards compare a tick with.

A held tick is stored like any other (state, transitions, outbox); its holds keep delivery from
sending anything of it or of a later tick, and keep later ticks from running, until a person
approves it or rejects it (then it and any later tick are rewound: nothing of them was sent).
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from cswf.engine.guard import DELIBERATE, NORM_SCHEMA, TRIPPED_SCHEMA
from cswf.store.transaction import transaction
from cswf.store.warehouse import rewind

HELD, APPROVED, REJECTED = "held", "approved", "rejected"
_NOT_DELIBERATE = " AND ".join(
    f"NOT starts_with(coalesce(reason, ''), '{why}')" for why in DELIBERATE)


def trailing_norms(con: duckdb.DuckDBPyConnection, as_of: datetime, window: int) -> pl.DataFrame:
    """Per workflow and guard, the median count per tick over the `window` ticks before
    `as_of`, counting only ticks where some happened (a book that enters accounts with each
    morning's snapshot is compared with its mornings, not with its quiet nights)."""
    return con.sql(
        "WITH recent AS (SELECT as_of AS tick FROM tick_log WHERE as_of < $t "
        "ORDER BY as_of DESC LIMIT $n), counts AS ("
        "SELECT workflow, 'entries' AS guard, tick, count(*) AS n FROM transitions "
        f"SEMI JOIN recent USING (tick) WHERE transition = 'entered' AND {_NOT_DELIBERATE} "
        "GROUP BY ALL UNION ALL "
        "SELECT workflow, action_type || 's' AS guard, tick, count(*) AS n FROM actions_outbox "
        "SEMI JOIN recent USING (tick) WHERE action_type IN ('email', 'webhook') GROUP BY ALL) "
        "SELECT workflow, guard, median(n)::DOUBLE AS norm FROM counts GROUP BY ALL",
        params={"t": as_of, "n": window},
    ).pl().cast(NORM_SCHEMA)  # type: ignore[arg-type]


def launched(con: duckdb.DuckDBPyConnection, before: datetime) -> set[str]:
    """Workflows someone entered before `before` (the others are still to launch)."""
    rows = con.execute("SELECT DISTINCT workflow FROM transitions "
                       "WHERE transition = 'entered' AND tick < $t", {"t": before}).fetchall()
    return {name for (name,) in rows}


def approved(con: duckdb.DuckDBPyConnection, as_of: datetime) -> bool:
    """Whether a person approved the tick at `as_of` as it is stored."""
    return con.execute(f"SELECT count(*) FROM tick_holds WHERE as_of = $t AND status = "
                       f"'{APPROVED}'", {"t": as_of}).fetchall()[0][0] > 0


def write_holds(con: duckdb.DuckDBPyConnection, as_of: datetime, found: pl.DataFrame) -> None:
    """Hold the tick at `as_of` for each tripped guard (engine.guard.TRIPPED_SCHEMA rows)."""
    rows = found.select(list(TRIPPED_SCHEMA)).with_columns(  # noqa: F841 (read by DuckDB)
        pl.lit(as_of).cast(pl.Datetime("us")).alias("as_of"))
    con.execute(
        "INSERT INTO tick_holds SELECT as_of, workflow, guard, observed, norm, threshold, "
        f"minimum, sample, '{HELD}', NULL, NULL, NULL FROM rows"
    ).fetchall()


def holds(con: duckdb.DuckDBPyConnection, status: str | None = None) -> pl.DataFrame:
    """Every hold (or those in `status`), oldest tick first."""
    where = "WHERE status = $s" if status else ""
    return con.sql(f"SELECT * FROM tick_holds {where} ORDER BY as_of, workflow, guard",
                   params={"s": status} if status else None).pl()


def sent_since(con: duckdb.DuckDBPyConnection, as_of: datetime) -> int:
    """Actions of the tick at `as_of` or later that a sender was handed (none should be)."""
    return int(con.execute(
        "SELECT count(*) FROM deliveries AS d JOIN actions_outbox AS o USING (action_id) "
        "WHERE o.tick >= $t AND d.attempts > 0", {"t": as_of}).fetchall()[0][0])


def decide(con: duckdb.DuckDBPyConnection, as_of: datetime, status: str, by: str,
           reason: str | None, at: datetime) -> int:
    """Record a person's decision on the held tick at `as_of`; rejecting it also rewinds it and
    every later tick. Returns how many ticks a rejection removed."""
    with transaction(con):
        con.execute(
            "UPDATE tick_holds SET status = $s, decided_at = $at, decided_by = $by, "
            f"reason = $why WHERE as_of = $t AND status = '{HELD}'",
            {"s": status, "at": at, "by": by, "why": reason, "t": as_of}).fetchall()
    return rewind(con, as_of) if status == REJECTED else 0
