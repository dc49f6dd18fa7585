"""The tick calendar as Dagster time partitions: one partition per tick, keyed by its as_of."""

from __future__ import annotations

import dagster as dg

from cswf.calendar import PARTITION_FORMAT, TickCalendar


def tick_partitions(calendar: TickCalendar) -> dg.TimeWindowPartitionsDefinition:
    """A partition per tick; its key is the tick's as_of (the window start), UTC.

    `end_offset=1` makes the tick that starts now runnable now, so a schedule firing at 03:00
    evaluates as of 03:00, not three hours late.
    """
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=calendar.cron, start=calendar.first, fmt=PARTITION_FORMAT, timezone="UTC",
        end_offset=1,
    )
