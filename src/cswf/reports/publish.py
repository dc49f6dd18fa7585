"""The BI copy: after every reports build, the reports and the tables a BI user needs are
published where readers can have them, so no reader ever opens the working database (a reader
there blocks the next tick, and DuckDB 1.x clients cannot read a 2.x file at all).

Two forms, each swapped in whole (a reader sees the old copy or the new one, never half):
- `<bi_dir>/cswf.duckdb`: one DuckDB file in a storage format every DuckDB 1.x client reads,
  written beside the old one and renamed over it (a reader holding the old file keeps reading it);
- `<bi_dir>/parquet/current/<table>.parquet`: a new numbered folder per publication, and the
  `current` link flipped to it; the last few folders are kept for readers still in them.
Both carry `bi_manifest` (table, kind, rows, as_of): what was published, as of which tick.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from cswf.store.durable import fsync

# The oldest storage format DuckDB 2.0 writes that every 1.x client reads: DuckDB 1.0 and 1.1
# wrote it, and later versions read it (a 2.0 file, header version 69, is refused by 1.5.x,
# which reads 64..68). Newer formats only add compression methods; these tables do not need them.
STORAGE_VERSION = "v1.0.0"
# The tables a BI user needs beside the reports (those in sql/reports/), when they exist.
BI_TABLES = ("enrollments", "transitions", "actions_outbox", "deliveries", "action_insights",
             "workflow_versions")
DATABASE_FILE = "cswf.duckdb"
PARQUET_FOLDER = "parquet"
CURRENT = "current"
MANIFEST = "bi_manifest"
KEEP_PARQUET_VERSIONS = 3
_ALIAS = "cswf_bi_publish"
PRIVATE_FILE, PRIVATE_FOLDER = 0o600, 0o700


@dataclass(frozen=True)
class Publication:
    """What one publish wrote: where, as of which tick, and the rows of each table."""

    database: Path
    parquet: Path
    as_of: datetime | None
    rows: dict[str, int]
    seconds: float

    def summary(self) -> str:
        when = f"as of {self.as_of:%Y-%m-%d %H:%M}" if self.as_of else "before any tick"
        return (f"BI copy {when}: {len(self.rows)} tables in {self.database} and "
                f"{self.parquet}/ ({self.seconds:.1f}s)")


def publish(con: duckdb.DuckDBPyConnection, bi_dir: Path, reports: Iterable[str]) -> Publication:
    """Publish the `reports` that exist, then the BI tables that exist, from the working
    database `con` (the pipeline's own connection: nobody else opens that file)."""
    started = time.perf_counter()
    present = _relations(con)
    reports = [n for n in reports if n in present]
    tables = [n for n in BI_TABLES if n in present and n not in reports]
    kinds = {**dict.fromkeys(reports, "report"), **dict.fromkeys(tables, "table")}
    names = list(kinds)
    as_of = _last_tick(con, present)
    _private_folder(bi_dir)
    rows = _write_database(con, bi_dir / DATABASE_FILE, kinds, as_of)
    manifest = _manifest(kinds, rows, as_of)
    current = _write_parquet(con, bi_dir / PARQUET_FOLDER, names, manifest)
    return Publication(bi_dir / DATABASE_FILE, current, as_of, rows,
                       time.perf_counter() - started)


def _relations(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Tables and views of the working database's main schema."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_catalog = current_database() AND table_schema = current_schema()"
    ).fetchall()
    return {name for (name,) in rows}


def _last_tick(con: duckdb.DuckDBPyConnection, present: set[str]) -> datetime | None:
    if "tick_log" not in present:
        return None
    return con.execute("SELECT max(as_of) FROM tick_log").fetchall()[0][0]


def _manifest(kinds: dict[str, str], rows: dict[str, int], as_of: datetime | None
              ) -> pl.DataFrame:
    return pl.DataFrame(
        {"table_name": list(kinds), "kind": list(kinds.values()),
         "rows": [rows[n] for n in kinds], "as_of": [as_of] * len(kinds)},
        schema={"table_name": pl.String, "kind": pl.String, "rows": pl.Int64,
                "as_of": pl.Datetime("us")},
    )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _write_database(con: duckdb.DuckDBPyConnection, path: Path, kinds: dict[str, str],
                    as_of: datetime | None) -> dict[str, int]:
    """Write every table into a new file beside `path`, then rename it over `path`."""
    # Only the holder of the working database publishes: what a crashed publication left is stale.
    _remove(*path.parent.glob(f".{path.name}.*.partial*"))
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    rows: dict[str, int] = {}
    con.execute(f"ATTACH {_literal(partial)} AS {_ALIAS} "
                f"(STORAGE_VERSION '{STORAGE_VERSION}')").fetchall()
    try:
        for name in kinds:
            con.execute(f"CREATE TABLE {_ALIAS}.{_quote(name)} AS "
                        f"SELECT * FROM {_quote(name)}").fetchall()
            rows[name] = con.execute(
                f"SELECT count(*) FROM {_ALIAS}.{_quote(name)}").fetchall()[0][0]
        manifest = _manifest(kinds, rows, as_of)  # noqa: F841 (read by DuckDB)
        con.execute(f"CREATE TABLE {_ALIAS}.{MANIFEST} AS SELECT * FROM manifest").fetchall()
    except BaseException:
        con.execute(f"DETACH {_ALIAS}").fetchall()
        _remove(partial, Path(f"{partial}.wal"))
        raise
    con.execute(f"DETACH {_ALIAS}").fetchall()  # checkpoints: the file is whole on disk
    os.chmod(partial, PRIVATE_FILE)
    # A client that opened the old copy for writing may have left a log; replayed onto the new
    # file it would corrupt it. Readers open the copy read-only (docs/bi.md).
    _remove(Path(f"{path}.wal"))
    os.replace(partial, path)
    fsync(path.parent)
    return rows


def _write_parquet(con: duckdb.DuckDBPyConnection, root: Path, names: list[str],
                   manifest: pl.DataFrame) -> Path:
    """A new numbered folder with one file per table, then `current` flipped to it."""
    _private_folder(root)
    versions = _versions(root)
    number = (int(versions[-1].name) + 1) if versions else 1
    folder = root / f"{number:06d}"
    for stale in root.glob(".*.partial"):
        shutil.rmtree(stale, ignore_errors=True)
    _remove(*root.glob(f".{CURRENT}.*"))
    partial = root / f".{folder.name}.partial"
    partial.mkdir(mode=PRIVATE_FOLDER)
    for name in names:
        target = partial / f"{name}.parquet"
        con.execute(f"COPY (SELECT * FROM {_quote(name)}) TO {_literal(target)} "
                    "(FORMAT parquet)").fetchall()
        os.chmod(target, PRIVATE_FILE)
    manifest.write_parquet(partial / f"{MANIFEST}.parquet")
    (partial / "manifest.json").write_text(json.dumps(
        manifest.with_columns(pl.col("as_of").dt.to_string("%Y-%m-%dT%H:%M:%S")).to_dicts(),
        indent=1))
    for extra in (f"{MANIFEST}.parquet", "manifest.json"):
        os.chmod(partial / extra, PRIVATE_FILE)
    os.replace(partial, folder)
    link = root / f".{CURRENT}.{os.getpid()}"
    link.symlink_to(folder.name)
    os.replace(link, root / CURRENT)  # atomic: `current` names the old folder or the new one
    fsync(root)
    for old in _versions(root)[:-KEEP_PARQUET_VERSIONS]:
        shutil.rmtree(old, ignore_errors=True)
    return root / CURRENT


def _versions(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()
                  and p.name.isdigit())


def _private_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, PRIVATE_FOLDER)


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)

