"""The tick calendar as Dagster time partitions: one partition per tick, keyed by its as_of.

The partitions end with the last tick of the latest landed account snapshot's day: a tick after
it would only repeat that snapshot, so the UI does not list months of "missing" ticks after a
demo, and "Materialize all" does not backfill stale data. The day is read from the landing file
names when the definitions load (a later day appears when they load again).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from pathlib import Path

import dagster as dg

from cswf.calendar import PARTITION_FORMAT, TickCalendar
from cswf.ingest.contract import ACCOUNTS
from cswf.ingest.snapshots import landing_files

# accounts/accounts_2026-08-28.parquet: the contract's naming convention (data-contract.md).
_SNAPSHOT_NAME = re.compile(rf"^{ACCOUNTS.name}_(\d{{4}}-\d{{2}}-\d{{2}})$")


def latest_snapshot_day(landing_dir: Path) -> date | None:
    """The latest day named by an account snapshot file (`accounts_YYYY-MM-DD.csv|parquet`).

    None without such files. Files named otherwise still load; they just do not move the end.
    """
    days = []
    for path in landing_files(landing_dir):
        found = _SNAPSHOT_NAME.match(path.stem)
        if path.parent.name == ACCOUNTS.name and found:
            try:
                days.append(date.fromisoformat(found.group(1)))
            except ValueError:  # accounts_2026-02-31: not a day
                continue
    return max(days, default=None)


def last_tick(calendar: TickCalendar, through: date) -> datetime:
    """The last tick of day `through` (the first tick when that day is before it)."""
    return calendar.latest(datetime.combine(through, time.max)) or calendar.first


def tick_partitions(
    calendar: TickCalendar, through: date | None = None
) -> dg.TimeWindowPartitionsDefinition:
    """A partition per tick up to the last tick of day `through`; its key is the tick's as_of.

    Dagster also stops at the clock: `end_offset=1` makes the tick that starts now runnable now
    (a schedule firing at 03:00 evaluates as of 03:00), and no later tick exists. Without
    `through` (no snapshot landed yet) the partitions follow the clock alone.
    """
    end = calendar.next(last_tick(calendar, through)) if through is not None else None
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=calendar.cron, start=calendar.first, fmt=PARTITION_FORMAT, timezone="UTC",
        end_offset=1, end=end,
    )
