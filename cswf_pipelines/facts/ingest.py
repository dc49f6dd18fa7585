"""Load landing files into typed raw tables, idempotently, rejecting bad files with a reason.

Each file is validated as a whole before anything is written: a file either loads completely
(replacing the rows of its previous version in one transaction) or is recorded in
`ingest_rejections`, so bad input never half-loads and never silently disappears.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from cswf_pipelines.facts.contract import (
    FILE_SUFFIXES,
    INGEST_REJECTIONS_DDL,
    INGESTED_FILES_DDL,
    OBJECTS,
    Column,
    LandingObject,
)

_FRAME = "_cswf_landing_frame"
_ROW = "__cswf_row"
MAX_EXAMPLES = 5
# Spellings a BOOLEAN column accepts (any case, surrounding spaces ignored); nothing else loads.
TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")


@dataclass
class IngestReport:
    """What one ingest run did; source files are relative to the landing dir."""

    files_loaded: list[str] = field(default_factory=list)
    files_skipped_unchanged: list[str] = field(default_factory=list)
    files_rejected: list[tuple[str, str]] = field(default_factory=list)
    rows_loaded: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OBJECTS, 0))


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw and bookkeeping tables if missing (the schema comes from the contract).

    A warehouse made under an older contract gets the columns added since (NULL in old rows),
    so an optional contract column never needs a rebuild.
    """
    for ddl in (*(o.ddl() for o in OBJECTS.values()), INGESTED_FILES_DDL, INGEST_REJECTIONS_DDL):
        con.execute(ddl).fetchall()
    existing = set(
        con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() "
            "WHERE schema_name = current_schema() AND database_name = current_database()"
        ).fetchall()
    )
    for obj in OBJECTS.values():
        for column in obj.columns:
            if (obj.table, column.name) not in existing:
                con.execute(
                    f'ALTER TABLE {obj.table} ADD COLUMN "{column.name}" {column.dtype}'
                ).fetchall()


def landing_files(landing_dir: Path) -> list[Path]:
    """Every landing file the ingest would look at, sorted; hidden files are ignored."""
    files = [
        path
        for name in OBJECTS
        if (landing_dir / name).is_dir()
        for path in (landing_dir / name).iterdir()
        if path.is_file() and path.suffix.lower() in FILE_SUFFIXES and not path.name.startswith(".")
    ]
    return sorted(files)


def ingest_landing(con: duckdb.DuckDBPyConnection, landing_dir: Path) -> IngestReport:
    """Load new and changed landing files; unchanged files are skipped, bad ones rejected."""
    ensure_tables(con)
    report = IngestReport()
    loaded = dict(con.execute("SELECT source_file, sha256 FROM ingested_files").fetchall())
    rejected = set(con.execute("SELECT source_file, sha256 FROM ingest_rejections").fetchall())
    rejected_files = {name for name, _ in rejected}
    files = landing_files(landing_dir)
    present = {path.relative_to(landing_dir).as_posix() for path in files}
    _forget_rejections(con, rejected_files - present)
    for path in files:
        rel = path.relative_to(landing_dir).as_posix()
        obj = OBJECTS[path.parent.name]
        try:
            data = path.read_bytes()
        except OSError as err:  # e.g. removed or unreadable while we list: try again next run
            report.files_rejected.append((rel, f"{rel}: could not read file: {_one_line(err)}"))
            continue
        sha = hashlib.sha256(data).hexdigest()
        if loaded.get(rel) == sha:
            if rel in rejected_files:
                _forget_rejections(con, {rel})  # the file went back to its loaded content
            report.files_skipped_unchanged.append(rel)
            continue
        if (rel, sha) in rejected:
            report.files_skipped_unchanged.append(rel)
            continue
        fresh = rel not in loaded and rel not in rejected_files
        reasons, rows = _load_file(con, obj, rel, sha, data, path.suffix.lower(), fresh)
        if reasons:
            _record_rejection(con, obj, rel, sha, reasons)
            report.files_rejected.extend((rel, reason) for reason in reasons)
        else:
            report.files_loaded.append(rel)
            report.rows_loaded[obj.name] += rows
    return report


def _read(data: bytes, suffix: str) -> pl.DataFrame:
    """CSV is read as text so the contract, not a type guess, decides what parses."""
    buffer = io.BytesIO(data)
    csv = suffix == ".csv"
    frame = pl.read_csv(buffer, infer_schema=False) if csv else pl.read_parquet(buffer)
    return frame.rename({c: c.strip().lower() for c in frame.columns})


def _load_file(
    con: duckdb.DuckDBPyConnection,
    obj: LandingObject,
    rel: str,
    sha: str,
    data: bytes,
    suffix: str,
    fresh: bool,
) -> tuple[list[str], int]:
    """Validate then load one file; returns (rejection reasons, rows loaded)."""
    try:
        frame = _read(data, suffix)
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        return [f"{rel}: could not read file: {_one_line(err)}"], 0
    missing = [c.name for c in obj.columns if c.required and c.name not in frame.columns]
    if missing:
        return [f"{rel}: missing required column '{name}'" for name in missing], 0
    present = [c for c in obj.columns if c.name in frame.columns]
    con.register(_FRAME, frame.with_row_index(_ROW, offset=1))
    try:
        reasons = _value_problems(con, rel, present)
        if reasons:
            return reasons, 0
        _replace_rows(con, obj, rel, sha, frame.columns, fresh)
        return [], frame.height
    except duckdb.Error as err:
        return [f"{rel}: {_one_line(err)}"], 0
    finally:
        con.unregister(_FRAME)


def _typed(column: Column) -> str:
    """SQL that converts the raw value to the column's type, NULL when it does not convert.

    BOOLEAN is parsed from a fixed word list rather than DuckDB's cast, which also takes
    't', 'y' and friends: the contract names exactly what a flag may look like.
    """
    raw = f'"{column.name}"'
    if column.dtype == "BOOLEAN":
        text = f"lower(trim(CAST({raw} AS VARCHAR)))"
        return (
            f"CASE WHEN {text} IN {_sql_list(TRUE_WORDS)} THEN true "
            f"WHEN {text} IN {_sql_list(FALSE_WORDS)} THEN false END"
        )
    return f"TRY_CAST({raw} AS {column.dtype})"


def _sql_list(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _checks(column: Column) -> list[tuple[str, str]]:
    """(SQL predicate for a bad row, message template) for each rule on one column."""
    raw = f'"{column.name}"'
    typed = _typed(column)
    checks = []
    if column.dtype == "BOOLEAN":
        words = ", ".join((*TRUE_WORDS, *FALSE_WORDS))
        checks.append(
            (
                f"{raw} IS NOT NULL AND {typed} IS NULL",
                f"could not convert '{{value}}' to BOOLEAN (use one of {words}, any case)",
            )
        )
    elif column.dtype != "VARCHAR":
        checks.append(
            (
                f"{raw} IS NOT NULL AND {typed} IS NULL",
                f"could not convert '{{value}}' to {column.dtype}",
            )
        )
    if column.key:
        checks.append((f"{raw} IS NULL", "required key value is NULL"))
    if column.allowed:
        checks.append(
            (
                f"{typed} IS NOT NULL AND {typed} NOT IN {_sql_list(column.allowed)}",
                f"'{{value}}' is not one of {', '.join(column.allowed)}",
            )
        )
    return checks


def _value_problems(con: duckdb.DuckDBPyConnection, rel: str, columns: list[Column]) -> list[str]:
    """One scan that finds, per column and rule, the bad-row count, first bad row and value."""
    rules = [(column, pred, msg) for column in columns for pred, msg in _checks(column)]
    if not rules:
        return []
    any_bad = " OR ".join(f"({pred})" for _, pred, _ in rules)
    if not con.execute(f"SELECT count(*) FROM {_FRAME} WHERE {any_bad}").fetchall()[0][0]:
        return []  # the common case: one cheap pass, details only for bad files
    selects = []
    for i, (column, pred, _) in enumerate(rules):
        selects += [
            f"count(*) FILTER (WHERE {pred}) AS n{i}",
            f"min({_ROW}) FILTER (WHERE {pred}) AS r{i}",
            f'arg_min(CAST("{column.name}" AS VARCHAR), {_ROW}) FILTER (WHERE {pred}) AS v{i}',
        ]
    (row,) = con.execute(f"SELECT {', '.join(selects)} FROM {_FRAME}").fetchall()
    reasons = []
    for i, (column, _, msg) in enumerate(rules):
        count, first_row, value = row[3 * i : 3 * i + 3]
        if count:
            more = f" ({count - 1} more bad rows in this column)" if count > 1 else ""
            text = msg.format(value=value)
            reasons.append(f"{rel}: row {first_row}: column '{column.name}': {text}{more}")
    return reasons


def _replace_rows(
    con: duckdb.DuckDBPyConnection,
    obj: LandingObject,
    rel: str,
    sha: str,
    present: list[str],
    fresh: bool,
) -> None:
    """Swap the file's previous rows for the new ones in one transaction.

    A fresh file (never loaded nor rejected) has nothing to delete, which halves the statements
    of a first load of a long history.
    """
    targets = ", ".join(f'"{c.name}"' for c in obj.columns)
    values = ", ".join(_typed(c) if c.name in present else f"NULL::{c.dtype}" for c in obj.columns)
    con.begin()
    try:
        if not fresh:
            con.execute(f"DELETE FROM {obj.table} WHERE source_file = ?", [rel]).fetchall()
            con.execute("DELETE FROM ingested_files WHERE source_file = ?", [rel]).fetchall()
            con.execute("DELETE FROM ingest_rejections WHERE source_file = ?", [rel]).fetchall()
        con.execute(
            f"INSERT INTO {obj.table} ({targets}, source_file) SELECT {values}, ? FROM {_FRAME}",
            [rel],
        ).fetchall()
        con.execute(
            "INSERT INTO ingested_files SELECT ?, ?, ?, count(*) FROM " + _FRAME,
            [rel, obj.name, sha],
        ).fetchall()
        con.commit()
    except BaseException:
        con.rollback()
        raise


def _record_rejection(
    con: duckdb.DuckDBPyConnection, obj: LandingObject, rel: str, sha: str, reasons: list[str]
) -> None:
    """Replace the file's earlier rejections; its previously loaded rows stay as they were."""
    con.begin()
    try:
        con.execute("DELETE FROM ingest_rejections WHERE source_file = ?", [rel]).fetchall()
        con.executemany(
            "INSERT INTO ingest_rejections VALUES (?, ?, ?, ?)",
            [[rel, obj.name, sha, reason] for reason in reasons],
        )
        con.commit()
    except BaseException:
        con.rollback()
        raise


def _forget_rejections(con: duckdb.DuckDBPyConnection, files: set[str]) -> None:
    """A rejection describes a file as it is now: once fixed or removed it no longer blocks."""
    if files:
        con.execute(
            "DELETE FROM ingest_rejections WHERE list_contains(?, source_file)", [sorted(files)]
        ).fetchall()


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())
