"""Delivery along the simulated quarter, as a deployment's delivery schedule would do it.

In production `delivery_schedule` delivers every 15 minutes (defs/delivery.py). Most of those
runs find nothing due; the ones that matter are the slot of each tick (its new actions) and the
slots where something held comes due again (quiet hours end, a retry's backoff ends). The
simulation runs exactly those slots, so every send, deferral and daily cap happens at the time
it would have in real life, and nothing else differs: a slot with nothing due changes nothing.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

import duckdb
import polars as pl

from cswf.delivery import DeliveryConfig, DeliveryReport, default_senders, deliver
from cswf.delivery.zones import participant_time_zones

SLOT = timedelta(minutes=15)  # defs/delivery.py's DELIVERY_CRON: */15 * * * *
_EPOCH = datetime(1970, 1, 1)


def slot_at_or_after(moment: datetime) -> datetime:
    """The first delivery slot (a quarter hour) at or after `moment`."""
    slots = -((_EPOCH - moment) // SLOT)  # ceiling division
    return _EPOCH + slots * SLOT


class QuarterDelivery:
    """Runs the delivery schedule's slots between two ticks; keeps a tally for the terminal.

    Time zones for quiet hours come from the latest snapshots as of the slot's day; they are
    read once per day (the query depends on the day only).
    """

    def __init__(self, config: DeliveryConfig) -> None:
        self.config = config
        self.outcomes: Counter[str] = Counter()  # status -> actions, over the whole run
        self.slots = 0
        self._zones: tuple[date, pl.DataFrame | None] | None = None

    def at(self, con: duckdb.DuckDBPyConnection, now: datetime) -> DeliveryReport:
        """One delivery run at `now`, as `project.deliver_outbox` makes it (the simulation's
        results are recorded directly, so there is no events folder to ingest first)."""
        report = deliver(con, default_senders(self.config), self.config, now,
                         time_zones=self._time_zones(con, now))
        self.outcomes.update(report.outcomes)
        self.slots += 1
        return report

    def next_due(self, con: duckdb.DuckDBPyConnection, after: datetime, before: datetime
                 ) -> datetime | None:
        """The first slot in (after, before) where a held action comes due, or None."""
        due = con.execute(
            "SELECT min(next_attempt_at) FROM deliveries WHERE status IN ('deferred', 'failed') "
            "AND next_attempt_at > $after AND next_attempt_at < $before",
            {"after": after, "before": before},
        ).fetchall()[0][0]
        if due is None:
            return None
        slot = slot_at_or_after(due)
        return slot if slot < before else None

    def _time_zones(self, con: duckdb.DuckDBPyConnection, now: datetime) -> pl.DataFrame | None:
        if self._zones is None or self._zones[0] != now.date():
            self._zones = (now.date(), participant_time_zones(con, now))
        return self._zones[1]
