"""The demo's simulated customers at work: the run's `respond` hook, and a landing file.

An email reaches its recipient when delivery sends it, which may be later than its tick (quiet
hours) or never (capped, suppressed, failed): `SimulatedAudience` delivers along the quarter
(demo/delivering.py) and its customers answer only what was sent, counted from the send. Tasks
reach their owner at their tick. What each customer does is fixed by the action's id
(demo/answers.py). `simulated_events` and `simulate_responses` answer the outbox as if
everything went out at its tick (a landing file for tests and tools).

Ticks see only events already known, so the demo answers before the ticks that should see
them: after tick T, the events up to the next tick.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from cswf.calendar import utc_naive
from cswf.demo.answers import DEFAULT_DUE_DAYS, EMAIL_SPAN_DAYS, answers, draws
from cswf.demo.delivering import SLOT, QuarterDelivery
from cswf.demo.progress import QuarterProgress
from cswf.engine.tick import TickResult
from cswf.ingest.action_events import record_events
from cswf.project import EVENTS_FOLDER
from cswf.store.query import query_frame
from cswf.store.tables import SUPPRESSING_EVENTS, ensure_delivery_tables

FILE_NAME = "simulated_responses.csv"
DETAIL = "simulated"
EARLIEST = datetime(1970, 1, 1)
_EVENT = {"action_id": pl.String, "event_type": pl.String, "occurred_at": pl.Datetime("us")}
# Outbox actions that may still answer after $after: tasks not yet due, recent emails.
_MAY_ANSWER = (f"tick <= $until AND ((action_type = 'task' AND greatest(coalesce(due_at, tick + "
               f"INTERVAL {DEFAULT_DUE_DAYS} DAY), tick + INTERVAL 1 HOUR) > $after) OR "
               f"(action_type = 'email' AND recipient IS NOT NULL "
               f"AND tick > $after - INTERVAL {EMAIL_SPAN_DAYS} DAY))")
# A dry run's previews count: the demo's audience answers what a real run would have sent.
_SENT_EMAILS = ("SELECT action_id, sent_at FROM deliveries WHERE action_type = 'email' "
                "AND status IN ('sent', 'previewed') AND sent_at >= $sent_from "
                "AND sent_at < $sent_before")
# What delivery itself recorded (sent, failed, ...) in [from, until): the engine sees it too.
_DELIVERY_EVENTS = ("SELECT action_id, event_type, occurred_at FROM action_events "
                    f"WHERE source IS DISTINCT FROM '{DETAIL}' AND occurred_at >= $from "
                    "AND occurred_at < $until")


def simulated_events(con: duckdb.DuckDBPyConnection, until: datetime,
                     after: datetime = EARLIEST) -> pl.DataFrame:
    """The simulated events of the outbox's actions in (after, until] (action_id, event_type,
    occurred_at, detail), in time order, as if every action went out at its tick. Only actions
    that can still answer are read, so a call per tick costs what that tick's window holds."""
    until, after = utc_naive(until), utc_naive(after)
    drawn = answers(draws(con, "actions_outbox", _MAY_ANSWER, {"until": until, "after": after}))
    at = pl.col("tick") + pl.col("offset")
    return drawn.filter((at > after) & (at <= until)).select(
        "action_id", "event_type", at.alias("occurred_at"), pl.lit(DETAIL).alias("detail"),
    ).sort("occurred_at", "action_id", "event_type")


class SimulatedAudience:
    """run_ticks' `respond` hook: after each tick, delivery and customers up to the next tick.

    Delivery runs at the tick's slot and at every slot before the next tick where something
    held comes due (demo/delivering.py). Returns what the next tick must see: the customers'
    events up to it and delivery's own (sent, failed); the engine keeps them in memory. The
    customers' events are recorded in `action_events` as results come in for real: before a
    delivery when a bounce is among them (it suppresses its address for the next send, as the
    ingest at the start of a delivery run would have it), and at `last_tick`, the run's last
    (every tick when None).

    An action's answers are drawn once, when it is emitted: a task's from its tick, an email's
    as offsets that become times when (if ever) delivery sends it. One query per tick with
    actions, none per delivery slot beyond looking up what it sent.
    """

    def __init__(self, delivery: QuarterDelivery, progress: QuarterProgress | None = None,
                 last_tick: datetime | None = None) -> None:
        self.delivery = delivery
        self.progress = progress
        self.last_tick = last_tick
        self._answers: pl.DataFrame | None = None  # emails not sent yet: their answers' offsets
        self._pending = pl.DataFrame(schema=_EVENT)  # answers drawn, not yet happened
        self._unrecorded: list[pl.DataFrame] = []  # happened, not yet in action_events

    def __call__(self, con: duckdb.DuckDBPyConnection, result: TickResult, until: datetime
                 ) -> pl.DataFrame:
        as_of = utc_naive(result.as_of)
        first = self._answers is None
        if first:  # every action so far: this tick's and those of earlier runs
            ensure_delivery_tables(con)
            self._emitted(draws(con, "actions_outbox", "tick <= $t", {"t": as_of}), as_of)
            self._sent(con, EARLIEST, as_of, after=as_of)
        elif not result.actions.is_empty():
            self._emitted(draws(con, result.actions), as_of)
        answered = []
        slot = as_of if first or not result.actions.is_empty() else \
            self.delivery.next_due(con, as_of, until)
        delivered = slot is not None
        while slot is not None:
            answered.append(self._release(slot))
            self._record(con, slot, only_if_suppressing=True)  # results back in first
            outcomes = self.delivery.at(con, slot).outcomes
            if outcomes.get("sent") or outcomes.get("previewed"):
                self._sent(con, slot, slot + SLOT, after=slot)
            slot = self.delivery.next_due(con, slot + SLOT, until)
        answered.append(self._release(until))
        if self.last_tick is None or as_of >= self.last_tick:
            self._record(con, until)
        if delivered:
            answered.append(query_frame(con, _DELIVERY_EVENTS, {"from": as_of, "until": until}))
        if self.progress is not None:
            self.progress.tick(as_of, result.actions.height, self.delivery.outcomes,
                               self.delivery.slots)
        return pl.concat(answered, how="vertical_relaxed")

    def _emitted(self, drawn: pl.DataFrame, as_of: datetime) -> None:
        """Keep the answers of newly seen actions: a task's from its tick, an email's as
        offsets until it is sent."""
        answered = answers(drawn)
        task = pl.col("action_type") == "task"
        at = pl.col("tick") + pl.col("offset")
        self._add(answered.filter(task & (at > as_of)).select(
            "action_id", "event_type", at.alias("occurred_at")))
        emails = answered.filter(~task).select("action_id", "event_type", "offset")
        self._answers = emails if self._answers is None else pl.concat([self._answers, emails],
                                                                         rechunk=True)

    def _sent(self, con: duckdb.DuckDBPyConnection, sent_from: datetime,
              sent_before: datetime, after: datetime) -> None:
        """The emails delivery sent in [sent_from, sent_before): their answers after `after`
        get times."""
        assert self._answers is not None
        sent = query_frame(con, _SENT_EMAILS,
                           {"sent_from": sent_from, "sent_before": sent_before})
        if sent.is_empty():
            return
        answers = self._answers.join(sent, on="action_id", how="inner").select(
            "action_id", "event_type", (pl.col("sent_at") + pl.col("offset")).alias("occurred_at"))
        self._add(answers.filter(pl.col("occurred_at") > after))
        self._answers = self._answers.join(sent, on="action_id", how="anti")

    def _add(self, drawn: pl.DataFrame) -> None:
        if not drawn.is_empty():
            self._pending = pl.concat([self._pending, drawn.select(list(_EVENT))], rechunk=True)

    def _release(self, now: datetime) -> pl.DataFrame:
        """The events that have happened by `now` (for the engine; recorded later)."""
        due = pl.col("occurred_at") <= utc_naive(now)
        released = self._pending.filter(due)
        self._pending = self._pending.filter(~due)
        if not released.is_empty():
            self._unrecorded.append(released)
        return released

    def _record(self, con: duckdb.DuckDBPyConnection, now: datetime,
                only_if_suppressing: bool = False) -> None:
        """Record the events released so far, as an ingest at `now` would. Before a delivery
        only a bounce can change what it does (it suppresses an address), so without one the
        events wait for the next chance (the same rows in the end, fewer writes)."""
        if not self._unrecorded:
            return
        events = pl.concat(self._unrecorded)
        if only_if_suppressing and not events["event_type"].is_in(SUPPRESSING_EVENTS).any():
            self._unrecorded = [events]
            return
        record_events(con, events.sort("occurred_at", "action_id", "event_type").with_columns(
            detail=pl.lit(DETAIL), source=pl.lit(DETAIL)), now)
        self._unrecorded = []


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
