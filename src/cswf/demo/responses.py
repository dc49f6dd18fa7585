"""A simulated audience for the demo: what came of the actions, as an action-events landing file.

Outcomes are drawn from a hash of the action id (md5 in DuckDB), not from a random generator, so
they are the same whatever ran before, in whatever order, and a call with a later `until` only
adds events: of the emails, 97% are delivered and 2% bounce (the rest vanish); of the delivered,
45% are opened 1 to 48 hours later, 10% clicked and 4% replied to after that; 70% of the tasks
are completed before they are due (the rest go overdue). Every event is strictly after its
action's tick and at most `until`.

Ticks see only events already ingested (waits and branches read `action_events` up to the tick),
so the demo must write and ingest responses before the ticks that should see them: after tick T,
call this with `until` = the next tick, then ingest, then run that tick. Every event that the
next tick can see belongs to an action emitted at T or before, so nothing is missed; running a
span of ticks in one go is exact only for events later than the span's end.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from cswf.calendar import utc_naive
from cswf.engine.tick import TickResult
from cswf.ingest.action_events import record_events
from cswf.project import EVENTS_FOLDER
from cswf.store.tables import ensure_delivery_tables

FILE_NAME = "simulated_responses.csv"
DETAIL = "simulated"
DELIVERED, BOUNCED = 0.97, 0.02  # of the emails
OPENED, CLICKED, REPLIED = 0.45, 0.10, 0.04  # of the delivered emails (clicks, replies: opened)
COMPLETED = 0.70  # of the tasks, before their due time
DEFAULT_DUE_DAYS = 3  # a task without a due time
EARLIEST, FAR = datetime(1970, 1, 1), datetime(9999, 1, 1)
EMAIL_SPAN_DAYS = 4  # every event of an email falls within 3 days of its tick (see _EVENTS)


def _draw(salt: str) -> str:
    """SQL: a uniform number in [0, 1) fixed by the action id and `salt`."""
    return f"(md5_number_lower(action_id || ':{salt}') / 18446744073709551616.0)"


def _after(start: str, low_seconds: float, high_seconds: float | str, salt: str) -> str:
    """SQL: `start` plus whole seconds drawn uniformly in [low, high) (`high` may be SQL)."""
    span = f"(({high_seconds}) - {low_seconds})"
    return (f"({start} + to_seconds(CAST(floor({low_seconds} + {span} * {_draw(salt)}) "
            "AS BIGINT)))")


_EVENTS_OF = f"""
WITH actions AS (
    SELECT action_id, action_type, tick,
           coalesce(due_at, tick + INTERVAL {DEFAULT_DUE_DAYS} DAY) AS due_at
    FROM {{source}}
    WHERE tick <= $until AND status = 'pending'
      AND ((action_type = 'task' AND greatest(coalesce(due_at, tick + INTERVAL
                {DEFAULT_DUE_DAYS} DAY), tick + INTERVAL 1 HOUR) > $after)
           OR (action_type = 'email' AND recipient IS NOT NULL
               AND tick > $after - INTERVAL {EMAIL_SPAN_DAYS} DAY))
),
emails AS (
    SELECT action_id, tick, {_draw('fate')} AS fate,
           {_after('tick', 60, 600, 'arrival')} AS arrived_at,
           {_draw('open')} < {OPENED} AS opened,
           {_draw('click')} < {CLICKED / OPENED} AS clicked,
           {_draw('reply')} < {REPLIED / OPENED} AS replied
    FROM actions WHERE action_type = 'email'
),
delivered AS (
    SELECT *, {_after('arrived_at', 3600, 48 * 3600, 'open_time')} AS opened_at
    FROM emails WHERE fate < {DELIVERED}
),
events AS (
    SELECT action_id, tick, 'delivered' AS event_type, arrived_at AS occurred_at FROM delivered
    UNION ALL
    SELECT action_id, tick, 'bounced', arrived_at FROM emails
    WHERE fate >= {DELIVERED} AND fate < {DELIVERED + BOUNCED}
    UNION ALL
    SELECT action_id, tick, 'opened', opened_at FROM delivered WHERE opened
    UNION ALL
    SELECT action_id, tick, 'clicked', {_after('opened_at', 60, 1800, 'click_time')}
    FROM delivered WHERE opened AND clicked
    UNION ALL
    SELECT action_id, tick, 'replied', {_after('opened_at', 600, 24 * 3600, 'reply_time')}
    FROM delivered WHERE opened AND replied
    UNION ALL
    SELECT action_id, tick, 'completed',
           {_after('tick', 60, 'greatest(epoch(due_at - tick), 3600)', 'done_time')}
    FROM actions WHERE action_type = 'task' AND {_draw('done')} < {COMPLETED}
)
SELECT action_id, event_type, occurred_at, '{DETAIL}' AS detail FROM events
WHERE occurred_at > tick AND occurred_at > $after AND occurred_at <= $until
ORDER BY occurred_at, action_id, event_type
"""
_EVENTS = _EVENTS_OF.replace("{source}", "actions_outbox")


def simulated_events(con: duckdb.DuckDBPyConnection, until: datetime,
                     after: datetime = EARLIEST) -> pl.DataFrame:
    """The simulated events of the outbox's actions in (after, until] (action_id, event_type,
    occurred_at, detail), in time order. Only actions that can still answer are read, so a
    call per tick costs what that tick's window holds, not the whole outbox."""
    return con.sql(_EVENTS, params={"until": utc_naive(until), "after": utc_naive(after)}).pl()


class SimulatedAudience:
    """run_ticks' `respond` hook: after each tick, the simulated events up to the next tick,
    recorded in `action_events` like ingested ones, so that tick sees them.

    An action's events are fixed when it is emitted (they are drawn from its id), so each tick
    computes them once for its new actions only and keeps the future ones until they are due;
    the first call picks up the outbox's earlier actions that may still answer.
    """

    def __init__(self) -> None:
        self._pending: pl.DataFrame | None = None

    def __call__(self, con: duckdb.DuckDBPyConnection, result: TickResult, until: datetime
                 ) -> pl.DataFrame:
        window = {"until": FAR, "after": utc_naive(result.as_of)}
        if self._pending is None:
            ensure_delivery_tables(con)
            self._pending = con.sql(_EVENTS, params=window).pl()
        elif not result.actions.is_empty():
            emitted = result.actions  # noqa: F841 (read by DuckDB)
            fresh = con.sql(_EVENTS_OF.replace("{source}", "emitted"), params=window).pl()
            self._pending = pl.concat([self._pending, fresh])
        due = pl.col("occurred_at") <= utc_naive(until)
        released = self._pending.filter(due).sort("occurred_at", "action_id", "event_type")
        self._pending = self._pending.filter(~due)
        if not released.is_empty():
            record_events(con, released.with_columns(source=pl.lit(DETAIL)), until)
        return released.select("action_id", "event_type", "occurred_at")


def simulate_responses(con: duckdb.DuckDBPyConnection, until: datetime, landing_dir: Path
                       ) -> Path | None:
    """Write every simulated event up to `until` to `<landing_dir>/action_events/
    simulated_responses.csv` (the events landing folder; replaced atomically, so an ingest never
    reads half a file). Returns the file, or None when there is no event yet (nothing written).
    The same outbox and `until` give the same bytes; ingesting it again adds nothing."""
    events = simulated_events(con, until)
    if events.is_empty():
        return None
    folder = Path(landing_dir) / EVENTS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILE_NAME
    partial = path.with_name(f".{path.name}.partial")  # hidden: the ingest skips dot files
    events.write_csv(partial, datetime_format="%Y-%m-%dT%H:%M:%SZ")
    os.replace(partial, path)
    return path
