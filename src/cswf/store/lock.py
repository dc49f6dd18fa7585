"""Who holds the working database, in one line, and a bounded wait for it.

DuckDB lets one process write a database file, and a reader that is not read-only counts as a
writer. Its lock error names the holder's PID; this turns that into a sentence saying which
process it is and what to do, instead of a traceback.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import duckdb

T = TypeVar("T")
OnWait = Callable[[str], None]
_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")
# Between tries: short at first (a tick's reports take a second or two), never over 2 s.
FIRST_PAUSE, MAX_PAUSE = 0.1, 2.0


@dataclass(frozen=True)
class Holder:
    pid: int | None
    command: str  # the holder's command line when it can be read, else its program

    def __str__(self) -> str:
        if self.pid is None:
            return "another process"
        return f"PID {self.pid} ({self.command})" if self.command else f"PID {self.pid}"


class WarehouseLocked(RuntimeError):
    """Another process holds the database file; the message says which and what to do."""

    def __init__(self, path: Path, holder: Holder, waited: float) -> None:
        self.path, self.holder, self.waited = path, holder, waited
        still, after = ("still ", f" after waiting {waited:.0f}s") if waited else ("", "")
        super().__init__(
            f"{path} is {still}in use by {holder}{after}: one process at a time may open the "
            "working database. Let that process finish (or stop it), or wait for it"
        )


def holder_of(error: duckdb.Error) -> Holder | None:
    """The process named by a DuckDB lock error; None if `error` is not a lock error."""
    match = _HOLDER.search(str(error))
    if match is None:
        return Holder(None, "") if "Could not set lock on file" in str(error) else None
    pid = int(match["pid"])
    return Holder(pid, _command_line(pid) or Path(match["exe"]).name)


def _command_line(pid: int) -> str:
    """`cswf tick --as-of ...`, `duckdb data/cswf.duckdb`: what the person started (Linux)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    words = [w for w in raw.decode(errors="replace").split("\0") if w]
    if len(words) > 1 and Path(words[0]).name.startswith("python") and words[1] != "-c":
        words = words[1:]  # `python .../bin/cswf tick` reads better as `cswf tick`
    if words:
        words[0] = Path(words[0]).name
    text = " ".join(" ".join(words).split())  # one line, whatever the arguments held
    return text if len(text) <= 120 else text[:119] + "…"


def retry_while_locked(
    path: Path, attempt: Callable[[], T], *, wait: float = 0.0, on_wait: OnWait | None = None
) -> T:
    """`attempt()` (an open of `path`), retried while another process holds the file, for at most
    `wait` seconds; then WarehouseLocked. `on_wait` hears once that we wait, and for whom."""
    started = time.monotonic()
    pause = FIRST_PAUSE
    told = False
    while True:
        try:
            result = attempt()
        except duckdb.Error as exc:
            holder = holder_of(exc)
            if holder is None:
                raise
            waited = time.monotonic() - started
            if waited >= wait:
                raise WarehouseLocked(path, holder, waited if wait else 0.0) from None
            if on_wait is not None and not told:
                on_wait(f"{path} is in use by {holder}; waiting up to {wait:.0f}s for it")
                told = True
            time.sleep(min(pause, wait - waited))
            pause = min(pause * 2, MAX_PAUSE)
            continue
        if told and on_wait is not None:
            on_wait(f"{path} is free after {time.monotonic() - started:.1f}s; going on")
        return result
