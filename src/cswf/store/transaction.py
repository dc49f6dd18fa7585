"""One helper for every multi-statement write: all of it commits, or none of it does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT, rolled back when the block raises (a crash leaves the old rows)."""
    con.execute("BEGIN").fetchall()
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK").fetchall()
        raise
    con.execute("COMMIT").fetchall()
