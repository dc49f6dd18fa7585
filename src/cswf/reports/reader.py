"""Reading the BI copy (never the working database): for notebooks, `cswf report` and the HTML
page.

Each read opens the copy read-only, reads and closes it, so a reader never holds the file a
publication replaces and always sees the newest one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from cswf.reports.publish import DATABASE_FILE, MANIFEST


class NoCopy(LookupError):
    """Nothing is published where the BI copy should be."""


class BICopy:
    """The published copy in `bi_dir`: `.reports()`, `.report(name)`, `.table(name)`."""

    def __init__(self, bi_dir: Path) -> None:
        self.bi_dir = Path(bi_dir)
        self.database = self.bi_dir / DATABASE_FILE

    def __repr__(self) -> str:
        return f"BICopy({str(self.database)!r})"

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection to the copy, closed after the block."""
        if not self.database.exists():
            raise NoCopy(f"no BI copy at {self.database} yet: it is published after every "
                         "reports build (a tick, `cswf reports`, or `cswf report --publish`)")
        con = duckdb.connect(str(self.database), read_only=True)
        try:
            yield con
        finally:
            con.close()

    def manifest(self) -> pl.DataFrame:
        """table_name, kind (report | table), rows, as_of: what the copy holds."""
        return self.sql(f"SELECT * FROM {MANIFEST} ORDER BY kind, table_name")

    def reports(self) -> list[str]:
        return self.manifest().filter(pl.col("kind") == "report")["table_name"].to_list()

    def tables(self) -> list[str]:
        return self.manifest()["table_name"].to_list()

    @property
    def as_of(self) -> datetime | None:
        """The tick the copy was published at."""
        frame = self.manifest()
        return frame["as_of"].max() if frame.height else None  # type: ignore[return-value]

    def report(self, name: str) -> pl.DataFrame:
        """A report table as a Polars frame (`.to_pandas()` for pandas)."""
        return self._read(name, self.reports(), "report")

    def table(self, name: str) -> pl.DataFrame:
        """Any published table (reports, enrollments, transitions, ...)."""
        return self._read(name, self.tables(), "table")

    def sql(self, query: str) -> pl.DataFrame:
        """Any read-only query over the copy."""
        with self.connect() as con:
            return con.sql(query).pl()

    def _read(self, name: str, known: list[str], kind: str) -> pl.DataFrame:
        if name not in known:
            raise KeyError(f"no {kind} '{name}' in {self.database}; {kind}s: {', '.join(known)}")
        return self.sql(f'SELECT * FROM "{name}"')
