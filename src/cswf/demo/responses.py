"""A simulated audience for the demo: what came of the actions, recorded as action events.

Outcomes are drawn from a hash of the action id (md5 in DuckDB), not from a random generator, so
they are the same whatever ran before, in whatever order, and a call with a later `until` only
adds events: of the emails, 97% are delivered and 2% bounce (the rest vanish); of the delivered,
45% are opened 1 to 48 hours later, 10% clicked and 4% replied to after that; 70% of the tasks
are completed before they are due (the rest go overdue). Every event is strictly after the
moment the action reached its audience and at most `until`.

An email reaches its recipient when delivery sends it, which may be later than its tick (quiet
hours) or never (capped, suppressed, failed): `SimulatedAudience` delivers along the quarter
(demo/delivering.py) and its customers answer only what was sent, counted from the send. Tasks
reach their owner at their tick. `simulated_events` and `simulate_responses` answer the outbox
as if everything went out at its tick (a landing file for tests and tools).

Ticks see only events already recorded, so the demo records responses before the ticks that
should see them: after tick T, the events up to the next tick.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from cswf.calendar import utc_naive
from cswf.demo.delivering import SLOT, QuarterDelivery
from cswf.demo.progress import QuarterProgress
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


# Events of the actions in {answerable} (action_id, action_type, since, due_at): `since` is
# when the action reached its audience (an email's send, a task's tick).
_EVENTS_OF = f"""
WITH actions AS (SELECT action_id, action_type, since AS tick, due_at FROM ({{answerable}})),
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
# Outbox actions that can still answer in (after, until], as if sent at their tick.
_FROM_OUTBOX = f"""
SELECT action_id, action_type, tick AS since,
       coalesce(due_at, tick + INTERVAL {DEFAULT_DUE_DAYS} DAY) AS due_at
FROM {{source}}
WHERE tick <= $ticks_until AND status = 'pending' AND action_type IN (SELECT unnest($types))
  AND ((action_type = 'task' AND greatest(coalesce(due_at, tick + INTERVAL
            {DEFAULT_DUE_DAYS} DAY), tick + INTERVAL 1 HOUR) > $after)
       OR (action_type = 'email' AND recipient IS NOT NULL
           AND tick > $after - INTERVAL {EMAIL_SPAN_DAYS} DAY))
"""
# Actions emitted in [ticks_from, ticks_until] as answerable: tasks from their tick; emails from
# BASE, so their answers come out as offsets from the send, which is not known yet.
_EMITTED = f"""
SELECT action_id, action_type,
       CASE WHEN action_type = 'email' THEN $base ELSE tick END AS since,
       coalesce(due_at, tick + INTERVAL {DEFAULT_DUE_DAYS} DAY) AS due_at
FROM {{source}}
WHERE status = 'pending' AND action_type IN ('email', 'task')
  AND tick >= $ticks_from AND tick <= $ticks_until
"""
BASE = datetime(2000, 1, 1)
_SENT_EMAILS = ("SELECT action_id, sent_at FROM deliveries WHERE action_type = 'email' "
                "AND status = 'sent' AND sent_at >= $sent_from AND sent_at < $sent_before")
_EVENTS = _EVENTS_OF.replace("{answerable}", _FROM_OUTBOX.replace("{source}", "actions_outbox"))
_ALL_TYPES = ["email", "task"]
_PENDING = {"action_id": pl.String, "event_type": pl.String, "occurred_at": pl.Datetime("us")}
# What delivery itself recorded (sent, failed, ...) in [from, until): the engine sees it too.
_DELIVERY_EVENTS = ("SELECT action_id, event_type, occurred_at FROM action_events "
                    f"WHERE source IS DISTINCT FROM '{DETAIL}' AND occurred_at >= $from "
                    "AND occurred_at < $until")


def simulated_events(con: duckdb.DuckDBPyConnection, until: datetime,
                     after: datetime = EARLIEST) -> pl.DataFrame:
    """The simulated events of the outbox's actions in (after, until] (action_id, event_type,
    occurred_at, detail), in time order, as if every action went out at its tick. Only actions
    that can still answer are read, so a call per tick costs what that tick's window holds."""
    until = utc_naive(until)
    return con.sql(_EVENTS, params={"until": until, "ticks_until": until,
                                    "after": utc_naive(after), "types": _ALL_TYPES}).pl()


class SimulatedAudience:
    """run_ticks' `respond` hook: after each tick, delivery and customers up to the next tick.

    Delivery runs at the tick's slot and at every slot before the next tick where something
    held comes due (demo/delivering.py). Before each delivery the customers' events that have
    happened by then are recorded (a bounce suppresses its address for the next send, as the
    ingest at the start of a real delivery run would have it). Returns what the next tick must
    see: the customers' events up to it and delivery's own (sent, failed).

    An action's answers are drawn once, when it is emitted: a task's from its tick, an email's
    as offsets that become times when (if ever) delivery sends it. One query per tick with
    actions, none per delivery slot beyond looking up what it sent.
    """

    def __init__(self, delivery: QuarterDelivery, progress: QuarterProgress | None = None
                 ) -> None:
        self.delivery = delivery
        self.progress = progress
        self._answers: pl.DataFrame | None = None  # emails not sent yet: their answers' offsets
        self._pending = pl.DataFrame(schema=_PENDING)  # answers drawn, not yet happened

    def __call__(self, con: duckdb.DuckDBPyConnection, result: TickResult, until: datetime
                 ) -> pl.DataFrame:
        as_of = utc_naive(result.as_of)
        first = self._answers is None
        if first:  # every action so far: this tick's and those of earlier runs
            ensure_delivery_tables(con)
            self._emitted(con, "actions_outbox", EARLIEST, as_of)
            self._sent(con, EARLIEST, as_of, after=as_of)
        elif not result.actions.is_empty():
            self._emitted(con, "emitted", as_of, as_of, result.actions)
        answered = []
        slot = as_of if first or not result.actions.is_empty() else \
            self.delivery.next_due(con, as_of, until)
        while slot is not None:
            answered.append(self._release(con, slot))  # results back in first
            if self.delivery.at(con, slot).outcomes.get("sent"):
                self._sent(con, slot, slot + SLOT, after=slot)
            slot = self.delivery.next_due(con, slot + SLOT, until)
        answered.append(self._release(con, until))
        answered.append(con.sql(_DELIVERY_EVENTS, params={"from": as_of, "until": until}).pl())
        if self.progress is not None:
            self.progress.tick(as_of, result.actions.height, self.delivery.outcomes,
                               self.delivery.slots)
        return pl.concat(answered, how="vertical_relaxed")

    def _emitted(self, con: duckdb.DuckDBPyConnection, source: str, ticks_from: datetime,
                 ticks_until: datetime, emitted: pl.DataFrame | None = None) -> None:
        """Draw the answers of the actions emitted in [ticks_from, ticks_until] (`source` is a
        table, or `emitted`)."""
        query = _EVENTS_OF.replace("{answerable}", _EMITTED.replace("{source}", source))
        drawn = con.sql(query, params={
            "until": FAR, "after": EARLIEST, "base": BASE, "ticks_from": ticks_from,
            "ticks_until": ticks_until}).pl().select(list(_PENDING))
        task = pl.col("event_type") == "completed"
        self._add(drawn.filter(task & (pl.col("occurred_at") > ticks_until)))
        emails = drawn.filter(~task).select(
            "action_id", "event_type", (pl.col("occurred_at") - BASE).alias("offset"))
        self._answers = emails if self._answers is None else pl.concat([self._answers, emails])

    def _sent(self, con: duckdb.DuckDBPyConnection, sent_from: datetime,
              sent_before: datetime, after: datetime) -> None:
        """The emails delivery sent in [sent_from, sent_before): their answers after `after`
        get times."""
        assert self._answers is not None
        sent = con.sql(_SENT_EMAILS, params={"sent_from": sent_from,
                                             "sent_before": sent_before}).pl()
        if sent.is_empty():
            return
        answers = self._answers.join(sent, on="action_id", how="inner").select(
            "action_id", "event_type", (pl.col("sent_at") + pl.col("offset")).alias("occurred_at"))
        self._add(answers.filter(pl.col("occurred_at") > after))
        self._answers = self._answers.join(sent, on="action_id", how="anti")

    def _add(self, drawn: pl.DataFrame) -> None:
        if not drawn.is_empty():
            self._pending = pl.concat([self._pending, drawn.select(list(_PENDING))])

    def _release(self, con: duckdb.DuckDBPyConnection, now: datetime) -> pl.DataFrame:
        """Record the events that have happened by `now`; returns them for the engine."""
        due = pl.col("occurred_at") <= utc_naive(now)
        released = self._pending.filter(due).sort("occurred_at", "action_id", "event_type")
        self._pending = self._pending.filter(~due)
        if not released.is_empty():
            record_events(con, released.with_columns(detail=pl.lit(DETAIL),
                                                     source=pl.lit(DETAIL)), now)
        return released


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
