"""Local time for the safety rules: quiet hours and the frequency cap's "day".

All stored times are naive UTC. Local wall times are turned into instants with zoneinfo, so a
window that starts at 08:00 local is 08:00 on both sides of a daylight-saving change. A wall
time that does not exist (spring forward) resolves to the instant just after the gap; one that
exists twice (fall back) to its first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from cswf.delivery.config import QuietHours

TS = pl.Datetime("us")
ZONE_SCHEMA: dict[str, pl.DataType] = {
    "time_zone": pl.String(),
    "local_date": pl.Date(),
    "day_start": TS,  # local midnight of `now`'s day, as UTC
    "day_end": TS,  # the next local midnight, as UTC (23 or 25 hours later on DST days)
    "quiet_until": TS,  # null: `now` is outside quiet hours; else the next allowed instant
}


@lru_cache(maxsize=512)
def zone_or_none(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _instant(day: date, wall: time, zone: ZoneInfo, fold: int = 0) -> datetime:
    """The UTC instant of a local wall time. fold=0 (PEP 495) reads a nonexistent wall time
    with the offset before the gap, i.e. the same distance past it (02:30 → 03:30 on a spring-
    forward night), and a repeated one as its first occurrence."""
    local = datetime.combine(day, wall, tzinfo=zone).replace(fold=fold)
    return local.astimezone(UTC).replace(tzinfo=None)


def quiet_until(now: datetime, zone: ZoneInfo, quiet: QuietHours | None) -> datetime | None:
    """When the quiet hours around `now` end (naive UTC), or None if `now` is not quiet."""
    if quiet is None:
        return None
    local = datetime.fromtimestamp(now.replace(tzinfo=UTC).timestamp(), zone)
    if not quiet.contains(local.time()):
        return None
    day = local.date() if local.time() < quiet.end else local.date() + timedelta(days=1)
    until = _instant(day, quiet.end, zone)
    # Inside the repeated hour of a fall-back night the first occurrence may already be past.
    return until if until > now else _instant(day, quiet.end, zone, fold=1)


def zone_windows(zones: Iterable[str], now: datetime, quiet: QuietHours | None) -> pl.DataFrame:
    """One row per zone: `now`'s local day as UTC bounds, and the end of quiet hours if any."""
    rows = []
    for name in sorted(set(zones)):
        zone = zone_or_none(name)
        if zone is None:
            raise ValueError(f"unknown time zone {name!r}")
        local_date = datetime.fromtimestamp(now.replace(tzinfo=UTC).timestamp(), zone).date()
        rows.append({
            "time_zone": name,
            "local_date": local_date,
            "day_start": _instant(local_date, time(0), zone),
            "day_end": _instant(local_date + timedelta(days=1), time(0), zone),
            "quiet_until": quiet_until(now, zone, quiet),
        })
    return pl.DataFrame(rows, schema=ZONE_SCHEMA)
