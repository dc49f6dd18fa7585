"""The tick calendar: when ticks happen. Plain Python (cron via croniter), so the CLI, the engine
and the Dagster layer share one definition and none of them needs Dagster to know it.

Times are naive UTC throughout (the tables' convention). A tick's `as_of` is a cron time at or
after the calendar's start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import CroniterBadDateError, croniter

PARTITION_FORMAT = "%Y-%m-%d-%H:%M"  # a tick's key: its as_of (also the Dagster partition key)


def utc_naive(moment: datetime) -> datetime:
    """Aware → UTC without tzinfo; naive is taken as UTC already (the tables' convention)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def cron_problem(cron: str) -> str | None:
    """Why `cron` cannot schedule ticks, else None: not five cron fields (croniter also takes
    six, with seconds, which Dagster's schedules do not), or a date that never comes."""
    fields = cron.split()
    if not croniter.is_valid(cron) or (len(fields) != 5 and not cron.startswith("@")):
        return f"'{cron}' is not a cron expression"
    try:
        croniter(cron, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        return f"'{cron}' never fires (no such date)"
    return None


@dataclass(frozen=True)
class TickCalendar:
    """Ticks at every `cron` time (UTC) from `start` on."""

    cron: str
    start: datetime

    def __post_init__(self) -> None:
        problem = cron_problem(self.cron)
        if problem is not None:
            raise ValueError(f"tick_cron {problem} (five fields, e.g. '0 */3 * * *')")
        object.__setattr__(self, "start", utc_naive(self.start))

    @property
    def first(self) -> datetime:
        return self.start if croniter.match(self.cron, self.start) else self._after(self.start)

    def _after(self, moment: datetime) -> datetime:
        return croniter(self.cron, moment).get_next(datetime)

    def is_tick(self, as_of: datetime) -> bool:
        return as_of >= self.first and croniter.match(self.cron, as_of)

    def next(self, as_of: datetime) -> datetime:
        """The first tick strictly after `as_of`."""
        return max(self._after(as_of), self.first)

    def previous(self, as_of: datetime) -> datetime | None:
        """The last tick strictly before `as_of` (None before the first tick)."""
        before = croniter(self.cron, as_of).get_prev(datetime)
        return before if before >= self.first else None

    def latest(self, at: datetime) -> datetime | None:
        """The last tick at or before `at`."""
        return at if self.is_tick(at) else self.previous(at)

    def between(self, start: datetime, end: datetime) -> list[datetime]:
        """Every tick with start <= as_of <= end, in order (bounds need not be ticks)."""
        tick = max(start, self.first)
        if not croniter.match(self.cron, tick):
            tick = self._after(tick)
        ticks = []
        walk = croniter(self.cron, tick)
        while tick <= end:
            ticks.append(tick)
            tick = walk.get_next(datetime)
        return ticks


def as_of_of(key: str) -> datetime:
    return datetime.strptime(key, PARTITION_FORMAT)


def key_of(as_of: datetime) -> str:
    return as_of.strftime(PARTITION_FORMAT)
