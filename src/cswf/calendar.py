"""The tick calendar: when ticks happen, as Dagster time partitions (one definition for both)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

PARTITION_FORMAT = "%Y-%m-%d-%H:%M"


def tick_partitions(cron: str, start: datetime) -> dg.TimeWindowPartitionsDefinition:
    """A partition per tick; its key is the tick's as_of (the window start), UTC.

    `end_offset=1` makes the tick that starts now runnable now, so a schedule firing at 03:00
    evaluates as of 03:00, not three hours late.
    """
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=cron, start=start, fmt=PARTITION_FORMAT, timezone="UTC", end_offset=1
    )


def as_of_of(partition_key: str) -> datetime:
    return datetime.strptime(partition_key, PARTITION_FORMAT)


def key_of(as_of: datetime) -> str:
    return as_of.strftime(PARTITION_FORMAT)


def ticks_between(
    partitions: dg.TimeWindowPartitionsDefinition, start: datetime, end: datetime
) -> list[datetime]:
    """Every tick with start <= as_of <= end, in order (bounds need not be ticks)."""
    first = partitions.start.replace(tzinfo=None)
    start = max(start, first)
    if start > end:
        return []
    window = dg.TimeWindow(start.replace(tzinfo=UTC), (end + timedelta(seconds=1))
                           .replace(tzinfo=UTC))
    keys = partitions.get_partition_keys_in_time_window(window)
    return [t for t in map(as_of_of, keys) if start <= t <= end]


def previous_tick(
    partitions: dg.TimeWindowPartitionsDefinition, as_of: datetime
) -> datetime | None:
    window = partitions.get_prev_partition_window(as_of.replace(tzinfo=UTC))
    return window.start.replace(tzinfo=None) if window is not None else None


def is_tick(partitions: dg.TimeWindowPartitionsDefinition, as_of: datetime) -> bool:
    window = partitions.time_window_for_partition_key(key_of(as_of))
    return window.start.replace(tzinfo=None) == as_of


def next_tick(partitions: dg.TimeWindowPartitionsDefinition, as_of: datetime) -> datetime:
    window = partitions.time_window_for_partition_key(key_of(as_of))
    return window.end.replace(tzinfo=None)
