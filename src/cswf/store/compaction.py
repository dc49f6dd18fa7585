"""Row groups merged by a compaction, not by every tick's commit.

DuckDB stores a table in row groups of 122,880 rows. A tick's bulk insert writes its full row
groups straight to the file and ends with a partial one; at the next checkpoint (the commit
that fills the log past 16 MiB, or the connection's close) DuckDB merges partial row groups,
rewriting and compressing again the rows of the tick just written: at 1M accounts, 0.8–1.2 s
of a steady tick's commit, 1.0–2.2 s at a busy or first tick's close. cswf's connections
therefore defer those merges (`defer_merges`: a DuckDB setting of the whole database instance,
so every connection to the file in the process defers them; other processes merge as DuckDB
does), and `compact` runs them for every table at once, off the tick's path: `cswf compact`,
or the `compact_job` on its weekly schedule. Until then a table holds more partial row groups
(read as fast; compressed a little less), and row groups the rows a re-run or a re-ingest
deleted only in part keep their space.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from time import perf_counter

import duckdb

# What `cswf compact` and the compact_job say of a database that is not there (connecting
# would make an empty one): what is wrong, what to do.
NO_DATABASE = ("no database to compact", "check `database` in cswf.yaml, or run a tick first")

# Merges DuckDB may schedule in one checkpoint (its default is 100, each merging up to three
# row groups): a compaction merges as many as the tables need.
MERGES_PER_COMPACTION = 1_000_000


def defer_merges(con: duckdb.DuckDBPyConnection) -> None:
    """Checkpoints of this database (every connection to it in this process) write what
    changed without merging row groups."""
    con.execute("SET max_vacuum_tasks = 0").fetchall()


@dataclass(frozen=True)
class Compaction:
    """What a compaction did: row groups before and after, table by table, and its seconds."""

    row_groups_before: dict[str, int]
    row_groups_after: dict[str, int]
    seconds: float

    @property
    def before(self) -> int:
        return sum(self.row_groups_before.values())

    @property
    def after(self) -> int:
        return sum(self.row_groups_after.values())

    def line(self) -> str:
        tables = len(self.row_groups_before)
        return (f"compacted {tables} table{'s' if tables != 1 else ''}: {self.before} row groups "
                f"→ {self.after} ({self.seconds:.1f} s)")


def row_groups(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row groups per table of the main schema (tables without rows: none), but the
    compactions' own log."""
    tables = [name for (name,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND NOT temporary AND table_name <> 'compactions' "
        "ORDER BY table_name").fetchall()]
    counts = {}
    for table in tables:
        (count,) = con.execute(
            "SELECT count(DISTINCT row_group_id) FROM pragma_storage_info($t)", {"t": table}
        ).fetchall()[0]
        counts[table] = int(count)
    return counts


def compact(con: duckdb.DuckDBPyConnection, at: datetime) -> Compaction:
    """Merge the partial row groups of every table (and drop the deleted rows of those it
    merges, their space free for reuse inside the file) in one checkpoint; then defer merges
    again. A checkpoint only runs when something changed, so the compaction records itself
    first (`compactions`: when, and the row groups before)."""
    started = perf_counter()
    con.execute("CREATE TABLE IF NOT EXISTS compactions (compacted_at TIMESTAMP, "
                "row_groups_before BIGINT)").fetchall()
    before = row_groups(con)
    con.execute(f"SET max_vacuum_tasks = {MERGES_PER_COMPACTION}").fetchall()
    try:
        con.execute("INSERT INTO compactions VALUES ($at, $n)",
                    {"at": at, "n": sum(before.values())}).fetchall()
        con.execute("CHECKPOINT").fetchall()
    finally:
        defer_merges(con)
    return Compaction(before, row_groups(con), perf_counter() - started)
