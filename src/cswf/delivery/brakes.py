"""Brakes on delivery: rate limits per channel, and a breaker for a run far above the norm.

Why: a spec with a wrong condition, a replayed quarter or a broken snapshot can put thousands of
actions in the outbox at once. The rules (rules.py) protect one recipient; these protect the
whole audience, the mail server's reputation and the CSMs' queues.

- **Rate limits** (`delivery.rate_limits`, per channel): a run is one instant of delivery's own
  `now`, so it sends at most `per_minute` minus what the channel sent in the minute before
  `now` (`(now − 60 s, now]`), and at most `per_run`. The rest is `deferred` (`last_error`
  `rate limit …`, `next_attempt_at` = now + 1 minute) and goes out with a later run: nothing is
  dropped, nothing sent twice. Oldest tick first, as the due query orders them.
- **Breaker** (`delivery.breaker`): when a channel's due volume is more than `factor` × its
  trailing norm (the median sends per run over its last runs that sent) and more than `floor`,
  the run stops before sending anything, on every channel. The trip is a `delivery_breaks` row;
  `approve_spike` (`cswf deliver --approve-spike`) approves it, and the approval covers the runs
  that drain that backlog (due at most the approved volume, plus what would not trip the
  breaker on its own) until a run finds the channel back within its norm. A new spike on top
  trips again.

They protect recipients, servers and queues, so they hold real runs; a dry run previews the
whole volume unless `brakes_in_dry_run` is set (to rehearse them). Its previews count as sends
for the norm, so a project that ran in dry run first has a norm when it starts sending. Both
are judged per route: the channel an action type names (smtp, webhook, table), whatever sender
runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import polars as pl

from cswf.delivery.channel import DeliveryRun
from cswf.delivery.channels import channel_for
from cswf.delivery.config import Breaker, DeliveryConfig
from cswf.store.transaction import transaction

APPROVE_COMMAND = "cswf deliver --approve-spike"
RATE_LIMIT_WAIT = timedelta(minutes=1)
# Statuses of a row that went (or may have gone) out: what counts as "sent" on a channel.
_GONE = "('sent', 'previewed', 'unknown', 'sending')"

BREAKS_DDL = (
    "CREATE TABLE IF NOT EXISTS delivery_breaks ("
    "run_at TIMESTAMP NOT NULL, "  # the run that tripped it (its `now`)
    "channel VARCHAR NOT NULL, "  # the route that was far above its norm
    "due INTEGER NOT NULL, "  # actions due on the channel (the latest held run's count)
    "norm DOUBLE NOT NULL, "  # median sends per run over the channel's trailing runs
    "status VARCHAR NOT NULL, "  # tripped | approved
    "held_runs INTEGER NOT NULL, "  # runs held by it so far
    "approved_at TIMESTAMP, approved_by VARCHAR, "
    "closed_at TIMESTAMP, "  # the run that found the channel within its norm again
    "PRIMARY KEY (run_at, channel))"
)


def ensure_breaks_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(BREAKS_DDL).fetchall()


def _routes_of(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """action_type → route, for the action types the deliveries table holds."""
    types = con.sql("SELECT DISTINCT action_type FROM deliveries").pl()["action_type"].to_list()
    pairs = [(t, c.name) for t in types if t is not None and (c := channel_for(t)) is not None]
    return pl.DataFrame(pairs, schema={"action_type": pl.String, "route": pl.String},
                        orient="row")


def _norms(con: duckdb.DuckDBPyConnection, breaker: Breaker, now: datetime) -> dict[str, float]:
    """route → median sends per run over its last `history_runs` runs that sent (before now)."""
    routes = _routes_of(con)  # noqa: F841 (read by DuckDB)
    rows = con.execute(
        "WITH runs AS (SELECT r.route, d.sent_at, count(*) AS sends FROM deliveries AS d "
        "JOIN routes AS r USING (action_type) WHERE d.status IN ('sent', 'previewed') "
        "AND d.sent_at < $now "
        "AND d.sent_at >= $since GROUP BY ALL), "
        "recent AS (SELECT route, sends, row_number() OVER (PARTITION BY route ORDER BY sent_at "
        "DESC) AS n FROM runs) "
        "SELECT route, median(sends) FROM recent WHERE n <= $runs GROUP BY route",
        {"now": now, "since": now - timedelta(days=breaker.history_days),
         "runs": breaker.history_runs},
    ).fetchall()
    return {route: float(norm) for route, norm in rows}


@dataclass(frozen=True)
class Spike:
    channel: str
    due: int
    norm: float

    def describe(self) -> str:
        return f"{self.channel} has {self.due} due against a norm of {self.norm:g} per run"


def breaker_line(spikes: list[Spike], breaker: Breaker) -> str:
    """The one line a held run reports: what, why, and the command that releases it."""
    what = ", ".join(spike.describe() for spike in spikes)
    return (f"delivery held by the breaker: {what} (trips above {breaker.factor:g}× the norm "
            f"and {breaker.floor}); nothing was sent — check the outbox, then release it: "
            f"{APPROVE_COMMAND}")


def check_breaker(con: duckdb.DuckDBPyConnection, due: pl.DataFrame, config: DeliveryConfig,
                  now: datetime) -> str | None:
    """Judge this run's due rows (column `route`) per channel; None: go on. Otherwise the
    trips are recorded and the one line to report is returned: send nothing."""
    breaker = config.breaker
    if not breaker.enabled or due.is_empty():
        return None
    ensure_breaks_table(con)
    counts = due.filter(pl.col("route").is_not_null()).group_by("route").len()
    norms = _norms(con, breaker, now)
    spikes = []
    with transaction(con):
        for route, n in sorted(counts.iter_rows()):
            norm = norms.get(route, 0.0)
            spike = n > breaker.floor and n > breaker.factor * norm
            covered = con.execute(
                "SELECT max(due) FROM delivery_breaks WHERE channel = $c AND status = 'approved' "
                "AND closed_at IS NULL", {"c": route}).fetchall()[0][0]
            if covered is not None and not spike:  # back within the norm: approval done
                con.execute("UPDATE delivery_breaks SET closed_at = $now WHERE channel = $c "
                            "AND status = 'approved' AND closed_at IS NULL",
                            {"now": now, "c": route}).fetchall()
            # An approval covers its backlog plus what would not be a spike on its own.
            allowance = max(breaker.floor, breaker.factor * norm)
            if spike and not (covered is not None and n <= covered + allowance):
                spikes.append(Spike(route, int(n), norm))
        for spike in spikes:
            held = con.execute(
                "UPDATE delivery_breaks SET due = $due, norm = $norm, held_runs = held_runs + 1 "
                "WHERE channel = $c AND status = 'tripped'",
                {"due": spike.due, "norm": spike.norm, "c": spike.channel}).fetchall()[0][0]
            if not held:
                con.execute(
                    "INSERT INTO delivery_breaks (run_at, channel, due, norm, status, held_runs) "
                    "VALUES ($now, $c, $due, $norm, 'tripped', 1) ON CONFLICT DO NOTHING",
                    {"now": now, "c": spike.channel, "due": spike.due, "norm": spike.norm},
                ).fetchall()
    return breaker_line(spikes, breaker) if spikes else None


def approve_spike(con: duckdb.DuckDBPyConnection, now: datetime, by: str = "cli") -> int:
    """Approve every tripped break: the next runs send that backlog (within the rate limits).
    Returns how many breaks were approved."""
    ensure_breaks_table(con)
    return int(con.execute(
        "UPDATE delivery_breaks SET status = 'approved', approved_at = $now, approved_by = $by "
        "WHERE status = 'tripped'", {"now": now, "by": by}).fetchall()[0][0])


def limit_rates(run: DeliveryRun, due: pl.DataFrame, routes: set[str]) -> pl.DataFrame:
    """`due` without the rows of `routes` past their channel's rate limits; those are recorded
    `deferred` (reason `rate limit …`) and counted in the report."""
    limits = {route: limit for route, limit in run.config.rate_limits.items()
              if route in routes and limit is not None
              and (limit.per_minute is not None or limit.per_run is not None)}
    if due.is_empty() or not limits:
        return due
    con, now = run.con, run.now
    recent = _sent_last_minute(con, now)
    allowed: dict[str, int] = {}
    reasons: dict[str, str] = {}
    for route, limit in limits.items():
        room = [limit.per_run] if limit.per_run is not None else []
        if limit.per_minute is not None:
            room.append(max(limit.per_minute - recent.get(route, 0), 0))
        allowed[route] = min(room)
        reasons[route] = "rate limit of " + " and ".join(
            [*([f"{limit.per_minute} per minute"] if limit.per_minute is not None else []),
             *([f"{limit.per_run} per run"] if limit.per_run is not None else [])]
        ) + f" on {route}"
    ranked = due.with_columns(pl.int_range(1, pl.len() + 1).over("route").alias("__nth"))
    over = pl.col("__nth") > pl.col("route").replace_strict(
        allowed, default=None, return_dtype=pl.Int64)
    held = ranked.filter(over.fill_null(False)).select(  # read by DuckDB below
        "action_id", "route", pl.col("route").replace_strict(reasons, default=None,
                                                             return_dtype=pl.String)
        .alias("reason"))
    if held.is_empty():
        return due
    con.execute(
        "UPDATE deliveries AS d SET status = 'deferred', next_attempt_at = $next, "
        "last_error = h.reason, updated_at = $now FROM held AS h "
        "WHERE d.action_id = h.action_id",
        {"now": now, "next": now + RATE_LIMIT_WAIT},
    ).fetchall()
    run.report.rate_limited.update(held["route"].to_list())
    return due.filter(~pl.col("action_id").is_in(held["action_id"].implode()))


def _sent_last_minute(con: duckdb.DuckDBPyConnection, now: datetime) -> dict[str, int]:
    """route → actions that went (or may have gone) out in (now − 1 minute, now]."""
    routes = _routes_of(con)  # noqa: F841 (read by DuckDB)
    rows = con.execute(
        "SELECT r.route, count(*) FROM deliveries AS d JOIN routes AS r USING (action_type) "
        f"WHERE d.status IN {_GONE} AND coalesce(d.sent_at, d.updated_at) > $since "
        "AND coalesce(d.sent_at, d.updated_at) <= $now GROUP BY ALL",
        {"now": now, "since": now - RATE_LIMIT_WAIT},
    ).fetchall()
    return {route: int(n) for route, n in rows}
