"""Load landing files into typed raw tables, idempotently, rejecting bad files with a reason.

Each file is validated as a whole before anything is written: a file either loads completely
(replacing the rows of its previous version) or is recorded in `ingest_rejections`, so bad input
never half-loads and never silently disappears.

Files are handled in batches (one object, up to `BATCH_ROWS` rows): the files of a batch that
share a schema are checked by one SQL scan and inserted by one statement, and the batch is
written in one transaction. A per-file statement costs more than the rows it moves, so this is
what makes a first load of a long history fast. Should a batch write fail, its files are retried
one by one, so the error is pinned on the file that caused it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from cswf.ingest.bookkeeping import Flag, record_flags, record_loaded, record_rejections
from cswf.ingest.contract import EVENTS, OBJECTS, LandingObject
from cswf.ingest.doubles import doubled_keys
from cswf.ingest.files import Skipped, scan, visible_files
from cswf.ingest.validate import (
    FILE,
    column_rules,
    flagged_rows,
    missing_columns,
    one_line,
    read_landing,
    tagged,
    typed,
    value_problems,
)
from cswf.store.tables import ensure_ingest_bookkeeping

_FRAME = "_cswf_landing_frame"
BATCH_ROWS = 500_000  # rows of one object read before they are written: bounds memory

Outcome = tuple[list[str], int]  # (rejection reasons, rows loaded)


@dataclass
class IngestReport:
    """What one ingest run did; source files are relative to the landing dir."""

    files_loaded: list[str] = field(default_factory=list)
    files_skipped_unchanged: list[str] = field(default_factory=list)
    files_rejected: list[tuple[str, str]] = field(default_factory=list)
    rows_loaded: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OBJECTS, 0))
    # Rows loaded but flagged (an unknown tier, an extra field that does not convert), one
    # line each: file, row, column and what to do.
    rows_flagged: list[str] = field(default_factory=list)
    # Keys loaded more than once (this run's files with each other or with earlier files), one
    # line each: key, files and rows, what it blocks and what to do. They block ticks.
    duplicate_keys: list[str] = field(default_factory=list)


@dataclass
class _Landed:
    """A new or changed file, read (or the reason it could not be)."""

    rel: str
    sha: str
    fresh: bool
    frame: pl.DataFrame | None = None
    problem: str | None = None

    @property
    def height(self) -> int:
        return 0 if self.frame is None else self.frame.height


def ensure_tables(
    con: duckdb.DuckDBPyConnection, objects: Mapping[str, LandingObject] = OBJECTS
) -> None:
    """Create the raw and bookkeeping tables if missing (the schema comes from the contract,
    `objects`: with a project's extra columns, `Settings.landing_objects()`).

    A warehouse made under an older contract gets the columns added since (NULL in old rows),
    so an optional contract column or a newly declared extra field never needs a rebuild.
    """
    for obj in (*objects.values(), EVENTS):
        con.execute(obj.ddl()).fetchall()
    ensure_ingest_bookkeeping(con)
    existing = set(
        con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() "
            "WHERE schema_name = current_schema() AND database_name = current_database()"
        ).fetchall()
    )
    for obj in (*objects.values(), EVENTS):
        for column in obj.columns:
            if (obj.table, column.name) not in existing:
                con.execute(
                    f'ALTER TABLE {obj.table} ADD COLUMN "{column.name}" {column.dtype}'
                ).fetchall()


def landing_files(landing_dir: Path) -> list[Path]:
    """Every landing file the ingest would look at, sorted; hidden files are ignored."""
    return sorted(path for name in OBJECTS for path in visible_files(landing_dir / name))


def ingest_landing(
    con: duckdb.DuckDBPyConnection, landing_dir: Path,
    objects: Mapping[str, LandingObject] = OBJECTS,
) -> IngestReport:
    """Load new and changed landing files; unchanged files are skipped, bad ones rejected,
    rows with a flagged value loaded and noted (`ingest_row_flags`)."""
    ensure_tables(con, objects)
    report = IngestReport()
    flags: list[Flag] = []
    doubles = report.duplicate_keys
    files = landing_files(landing_dir)
    outcomes: dict[str, Outcome] = {}
    batch: list[_Landed] = []
    batch_obj: LandingObject | None = None
    batch_rows = 0
    for found in scan(con, landing_dir, files, objects):
        obj = objects[found.rel.split("/")[0]]
        if batch and (obj is not batch_obj or batch_rows >= BATCH_ROWS):
            outcomes.update(_load_batch(con, batch_obj, batch, flags, doubles))
            batch, batch_rows = [], 0
        batch_obj = obj
        if isinstance(found, Skipped):
            if found.problem:
                outcomes[found.rel] = ([found.problem], 0)
            else:
                report.files_skipped_unchanged.append(found.rel)
            continue
        batch.append(_read(found.rel, found.sha, found.fresh, found.data,
                           found.path.suffix.lower()))
        batch_rows += batch[-1].height
    if batch:
        outcomes.update(_load_batch(con, batch_obj, batch, flags, doubles))
    for path in files:  # report in file order, whatever the batches
        rel = path.relative_to(landing_dir).as_posix()
        if rel not in outcomes:
            continue
        reasons, rows = outcomes[rel]
        if reasons:
            report.files_rejected.extend((rel, reason) for reason in reasons)
        else:
            report.files_loaded.append(rel)
            report.rows_loaded[path.parent.name] += rows
    report.rows_flagged = [f"{rel}: row {row}: column '{column}': {message}"
                           for rel, row, column, _, message in flags]
    return report


def _read(rel: str, sha: str, fresh: bool, data: bytes, suffix: str) -> _Landed:
    try:
        return _Landed(rel, sha, fresh, frame=read_landing(data, suffix))
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        return _Landed(rel, sha, fresh, problem=f"{rel}: could not read file: {one_line(err)}")


def _load_batch(
    con: duckdb.DuckDBPyConnection, obj: LandingObject, batch: list[_Landed], flags: list[Flag],
    doubles: list[str],
) -> dict[str, Outcome]:
    """Validate then load the files of one object; record the rejected ones (and add the
    flagged rows of the loaded ones to `flags`, the keys they doubled to `doubles`)."""
    outcomes: dict[str, Outcome] = {}
    readable = []
    for item in batch:
        if item.problem is not None:
            outcomes[item.rel] = ([item.problem], 0)
            continue
        assert item.frame is not None
        missing = [c.name for c in obj.columns if c.required and c.name not in item.frame.columns]
        if missing:
            outcomes[item.rel] = ([missing_columns(item.rel, missing, item.frame.columns)], 0)
        else:
            readable.append(item)
    try:
        outcomes.update(_check_and_write(con, obj, readable, flags, doubles))
    except duckdb.Error:
        for item in readable:  # pin the error on its file
            try:
                outcomes.update(_check_and_write(con, obj, [item], flags, doubles))
            except duckdb.Error as err:
                outcomes[item.rel] = ([f"{item.rel}: {one_line(err)}"], 0)
    shas = {item.rel: item.sha for item in batch}
    rejected = [(rel, shas[rel], reasons) for rel, (reasons, _) in outcomes.items() if reasons]
    record_rejections(con, obj.name, rejected)
    return outcomes


def _check_and_write(
    con: duckdb.DuckDBPyConnection, obj: LandingObject, items: list[_Landed], flags: list[Flag],
    doubles: list[str],
) -> dict[str, Outcome]:
    """Check the files' values, then write the good ones in one transaction.

    Files are grouped by their columns and types, so each group is one relation read by one
    SQL scan, with exactly the conversions a file alone would get. A group is handed to DuckDB
    once, as Arrow, and read by both the checks and the insert.
    """
    groups: dict[tuple[tuple[str, str], ...], list[_Landed]] = {}
    for item in items:
        assert item.frame is not None
        schema = item.frame.schema
        key = tuple((c.name, str(schema[c.name])) for c in obj.columns if c.name in schema)
        groups.setdefault(key, []).append(item)
    relations: list[tuple[list[str], str]] = []
    problems: dict[str, list[str]] = {}
    found: list[Flag] = []
    try:
        for i, (key, members) in enumerate(groups.items()):
            names, relation = [name for name, _ in key], f"{_FRAME}_{i}"
            frame = pl.concat([tagged(m.frame, m.rel, names) for m in members], rechunk=True)
            con.register(relation, frame.to_arrow())
            relations.append((names, relation))
            rules = [rule for c in obj.columns if c.name in names for rule in column_rules(c)]
            here = value_problems(con, relation, [rule for rule in rules if not rule.flag])
            problems.update(here)
            found += flagged_rows(con, relation, rules, sorted(here))
        good = [item for item in items if item.rel not in problems]
        _write(con, obj, good, relations, sorted(problems), found)
        flags += found
        doubles += doubled_keys(con, obj, [item.rel for item in good], relations,
                                sorted(problems))
    finally:
        for _, relation in relations:
            con.unregister(relation)
    return {
        item.rel: (problems[item.rel], 0) if item.rel in problems else ([], item.height)
        for item in items
    }


def _write(
    con: duckdb.DuckDBPyConnection,
    obj: LandingObject,
    good: list[_Landed],
    relations: list[tuple[list[str], str]],
    skip: list[str],
    flags: list[Flag],
) -> None:
    """Replace the good files' earlier rows (and row flags) and note them as loaded, in one
    transaction."""
    con.begin()
    try:
        stale = [item.rel for item in good if not item.fresh]
        if stale:
            con.execute(
                f"DELETE FROM {obj.table} WHERE list_contains(?, source_file)", [stale]
            ).fetchall()
        for names, relation in relations:
            _insert(con, obj, names, relation, skip)
        record_loaded(con, obj.name, [(i.rel, i.sha, i.height) for i in good], stale)
        record_flags(con, obj.name, stale, flags)
        con.commit()
    except BaseException:
        con.rollback()
        raise


def _insert(
    con: duckdb.DuckDBPyConnection,
    obj: LandingObject,
    names: list[str],
    relation: str,
    skip: list[str],
) -> None:
    """One INSERT for many files (but those in `skip`); columns a file lacks load as NULL."""
    targets = ", ".join(f'"{c.name}"' for c in obj.columns)
    values = ", ".join(typed(c) if c.name in names else f"NULL::{c.dtype}" for c in obj.columns)
    con.execute(
        f"INSERT INTO {obj.table} ({targets}, source_file) SELECT {values}, {FILE} "
        f"FROM {relation} WHERE NOT list_contains(?, {FILE})",
        [skip],
    ).fetchall()
