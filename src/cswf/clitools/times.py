"""One way to read a time on the command line, for every option that takes one.

Times are naive UTC everywhere in cswf (the tables' convention), so a time written with a `Z` or
an offset is converted to UTC, and one written without is taken as UTC already.
"""

from __future__ import annotations

import re
from copy import copy
from dataclasses import replace
from datetime import datetime
from typing import Any

from cswf.calendar import utc_naive

# A date, optionally a time (minutes, seconds, fractions) after `T`, a space or `-`, optionally
# `Z` or a UTC offset. The `-` separator is the tick's partition key (2026-07-01-03:00).
_TIME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T -](?P<clock>\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)"
    r"\s*(?P<zone>Z|z|[+-]\d{2}(?::?\d{2})?)?)?"
)
EXAMPLES = "2026-07-01, 2026-07-01T03:00, 2026-07-01 03:00:00 or 2026-07-01T03:00:00Z"


def parse_time(text: str) -> datetime:
    """`text` as naive UTC; ValueError with the reason when it is not a time."""
    value = text.strip()
    match = _TIME.fullmatch(value)
    if match is None:
        raise ValueError(f"'{text}' is not a time")
    clock = match["clock"] or "00:00"
    zone = match["zone"] or ""
    if zone in ("Z", "z"):
        zone = "+00:00"
    elif zone and len(zone) == 3:
        zone += ":00"
    try:
        moment = datetime.fromisoformat(f"{match['date']}T{clock}{zone}")
    except ValueError as exc:
        raise ValueError(f"'{text}' is not a time ({exc})") from exc
    return utc_naive(moment)


def read_times_one_way(command: Any) -> None:
    """Every datetime option of `command` (a typer command or group, and its subcommands)
    reads times with `parse_time`, whoever declared it and with whichever formats.

    Typer builds a parameter's coercion from its declaration (`type_descriptor`); a copy of the
    declaration with `parse_time` as its parser replaces it, so the function's own annotation
    is left as written.
    """
    for param in getattr(command, "params", []):
        desc = getattr(param, "type_descriptor", None)
        if desc is not None and desc.is_datetime and desc.parameter_info.parser is None:
            info = copy(desc.parameter_info)
            info.parser, info.formats = _parse_option_time, None
            param.type_descriptor = replace(desc, parameter_info=info)
            param.metavar = param.metavar or "TIME"
    for sub in getattr(command, "commands", {}).values():
        read_times_one_way(sub)


def _parse_option_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return utc_naive(value)
    try:
        return parse_time(str(value))
    except ValueError as exc:
        raise ValueError(f"{exc} — write it as {EXAMPLES} (UTC unless an offset is given)"
                         ) from None
