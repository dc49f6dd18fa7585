"""Keep the instance's SQLite event-log files open while a long range of ticks runs.

Dagster's default storage (SQLite files under DAGSTER_HOME: `history/runs/index.db` and one
`history/runs/<run id>.db` per run, in WAL mode) opens a connection for every event it stores and
closes it after. The last connection to close a WAL database checkpoints it, with its fsyncs, so
a 720-tick range paid a checkpoint per materialization (2,880 of them). While one idle connection
is held here, no event's connection is the last: SQLite checkpoints as the log grows instead, and
once more when this one closes. Nothing is read or written through it, and no transaction is
held, so Dagster's readers and writers never wait for it. Other storages are left alone.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    import dagster as dg

    from cswf.engine.tick import TickResult
    from cswf.project import OnTick
    from cswf.store.warehouse import WriteOutcome


class EventLogKeeper:
    """Idle connections to the index and, from the run's first tick on, to the run's own file."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str) -> None:
        runs = Path(instance.root_directory) / "history" / "runs"
        self._files = [runs / "index.db", runs / f"{run_id}.db"]
        self._held: dict[Path, sqlite3.Connection] = {}

    def hold(self) -> None:
        """Open an idle connection to each file that exists and is not held yet."""
        for path in self._files:
            if path not in self._held and path.is_file():
                con = sqlite3.connect(path, isolation_level=None)
                con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # opens the WAL
                self._held[path] = con

    def on_tick(self, then: OnTick | None) -> OnTick:
        """An `on_tick` that holds the run's file once it exists, then calls `then`."""

        def observe(outcome: WriteOutcome, result: TickResult) -> None:
            if len(self._held) < len(self._files):
                self.hold()
            if then is not None:
                then(outcome, result)

        return observe

    def release(self) -> None:
        for con in self._held.values():
            with closing(con):
                pass
        self._held.clear()


@contextmanager
def event_log_kept_open(instance: dg.DagsterInstance, run_id: str) -> Iterator[EventLogKeeper]:
    keeper = EventLogKeeper(instance, run_id)
    keeper.hold()
    try:
        yield keeper
    finally:
        keeper.release()
