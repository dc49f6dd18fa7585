"""Finding the landing files to load: one scan shared by every landing folder.

Lists a folder's visible CSV/Parquet files, reads each new or changed one (by SHA-256 against
the bookkeeping), and says which are unchanged or unreadable. Files are read one at a time, as
the caller asks for them, so a long history never sits in memory whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from cswf.ingest.bookkeeping import already_handled, forget_rejections, seen_files
from cswf.ingest.contract import FILE_SUFFIXES
from cswf.ingest.validate import one_line


@dataclass(frozen=True)
class Landed:
    """A new or changed file's content; `fresh` when no earlier content of it was handled."""

    path: Path
    rel: str  # path relative to the landing dir: how tables and reports name the file
    sha: str
    data: bytes
    fresh: bool


@dataclass(frozen=True)
class Skipped:
    """A file with nothing to load now: unchanged since it was handled, or unreadable."""

    rel: str
    problem: str | None = None  # None: unchanged


def visible_files(folder: Path) -> list[Path]:
    """The CSV/Parquet files of a folder, sorted; hidden files and other extensions ignored."""
    if not folder.is_dir():
        return []
    return sorted(
        path for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in FILE_SUFFIXES and not path.name.startswith(".")
    )


def scan(
    con: duckdb.DuckDBPyConnection, landing_dir: Path, files: Iterable[Path],
    objects: Iterable[str],
) -> Iterator[Landed | Skipped]:
    """Each file in order: its content if new or changed, else why there is nothing to load.

    Rejections of files that are gone are forgotten first, so a file that comes back with the
    same content is looked at again.
    """
    files = list(files)
    seen = seen_files(con, objects)
    forget_rejections(con, seen.rejected_files - {p.relative_to(landing_dir).as_posix()
                                                   for p in files})
    for path in files:  # one pass over files, never rows
        rel = path.relative_to(landing_dir).as_posix()
        try:
            data = path.read_bytes()
        except OSError as err:  # removed or unreadable while we list: try again next run
            yield Skipped(rel, f"{rel}: could not read file: {one_line(err)}")
            continue
        sha = hashlib.sha256(data).hexdigest()
        if already_handled(con, seen, rel, sha):
            yield Skipped(rel)
        else:
            yield Landed(path, rel, sha, data, seen.is_fresh(rel))
