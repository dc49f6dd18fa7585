"""Which landing files were loaded or rejected, by path and SHA-256: what makes ingest idempotent.

Shared by every landing folder (snapshots, deploy requests): `ingested_files` holds the content
each file last loaded, `ingest_rejections` why its current content was refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import polars as pl

_LOADED = "_cswf_loaded_files"
_REJECTED = "_cswf_rejected_files"
_FLAGS = "_cswf_row_flags"
Flag = tuple[str, int, str, str | None, str]  # (source_file, row, column, value, message)


@dataclass(frozen=True)
class SeenFiles:
    """What earlier runs did with the files of some objects."""

    loaded: dict[str, str]  # source_file → sha256 of the content it loaded
    rejected: set[tuple[str, str]]  # (source_file, sha256) of refused contents

    @property
    def rejected_files(self) -> set[str]:
        return {name for name, _ in self.rejected}

    def is_fresh(self, rel: str) -> bool:
        """Never loaded nor rejected: nothing of it to replace (saves a delete per file)."""
        return rel not in self.loaded and rel not in self.rejected_files


def already_handled(con: duckdb.DuckDBPyConnection, seen: SeenFiles, rel: str, sha: str) -> bool:
    """This content was loaded, or rejected, before: nothing to do with it now."""
    if seen.loaded.get(rel) == sha:
        if rel in seen.rejected_files:
            forget_rejections(con, {rel})  # the file went back to its loaded content
        return True
    return (rel, sha) in seen.rejected


def seen_files(con: duckdb.DuckDBPyConnection, objects: Iterable[str]) -> SeenFiles:
    """Loaded and rejected files of these objects only: other folders keep their own books."""
    names = sorted(objects)
    loaded = con.execute(
        "SELECT source_file, sha256 FROM ingested_files WHERE list_contains(?, object)", [names]
    ).fetchall()
    rejected = con.execute(
        "SELECT source_file, sha256 FROM ingest_rejections WHERE list_contains(?, object)",
        [names],
    ).fetchall()
    return SeenFiles(dict(loaded), set(rejected))


def record_loaded(
    con: duckdb.DuckDBPyConnection, obj: str, files: list[tuple[str, str, int]], stale: list[str]
) -> None:
    """Note (source_file, sha256, rows) as loaded, replacing the entries of `stale` files.

    Runs inside the caller's transaction, so a file's rows and its entry land together.
    """
    if stale:
        for table in ("ingested_files", "ingest_rejections"):
            con.execute(
                f"DELETE FROM {table} WHERE list_contains(?, source_file)", [stale]
            ).fetchall()
    if not files:
        return
    frame = pl.DataFrame(
        files, schema={"source_file": pl.String, "sha256": pl.String, "row_count": pl.Int64},
        orient="row",
    )
    con.register(_LOADED, frame)
    try:
        con.execute(
            f"INSERT INTO ingested_files SELECT source_file, ?, sha256, row_count FROM {_LOADED}",
            [obj],
        ).fetchall()
    finally:
        con.unregister(_LOADED)


def record_flags(
    con: duckdb.DuckDBPyConnection, obj: str, files: list[str], flags: list[Flag]
) -> None:
    """Replace the row flags of `files` (just loaded) with `flags`, in the caller's
    transaction."""
    if files:
        con.execute(
            "DELETE FROM ingest_row_flags WHERE list_contains(?, source_file)", [files]
        ).fetchall()
    if not flags:
        return
    frame = pl.DataFrame(
        flags, orient="row", schema={"source_file": pl.String, "row_number": pl.Int64,
                                     "column_name": pl.String, "value": pl.String,
                                     "reason": pl.String})
    con.register(_FLAGS, frame)
    try:
        con.execute(
            f"INSERT INTO ingest_row_flags SELECT source_file, ?, row_number, column_name, "
            f"value, reason FROM {_FLAGS}", [obj]
        ).fetchall()
    finally:
        con.unregister(_FLAGS)


def record_rejections(
    con: duckdb.DuckDBPyConnection, obj: str, files: list[tuple[str, str, list[str]]]
) -> None:
    """Replace the earlier rejections of each (source_file, sha256, reasons), in one transaction.

    A rejected file's previously loaded rows stay as they were.
    """
    if not files:
        return
    frame = pl.DataFrame(
        [(rel, sha, reason) for rel, sha, reasons in files for reason in reasons],
        schema={"source_file": pl.String, "sha256": pl.String, "reason": pl.String},
        orient="row",
    )
    con.register(_REJECTED, frame)
    con.begin()
    try:
        con.execute(
            "DELETE FROM ingest_rejections WHERE list_contains(?, source_file)",
            [[rel for rel, _, _ in files]],
        ).fetchall()
        con.execute(
            f"INSERT INTO ingest_rejections SELECT source_file, ?, sha256, reason FROM {_REJECTED}",
            [obj],
        ).fetchall()
        con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:
        con.unregister(_REJECTED)


def forget_rejections(con: duckdb.DuckDBPyConnection, files: set[str]) -> None:
    """A rejection describes a file as it is now: once fixed or removed it no longer blocks."""
    if files:
        con.execute(
            "DELETE FROM ingest_rejections WHERE list_contains(?, source_file)", [sorted(files)]
        ).fetchall()
