"""Deploy requests dropped as files in the landing folder: `cswf deploy` for bulk and for tools.

Files in `<landing>/deploy_requests/` (CSV or Parquet: workflow, participant_id, optional
requested_by and requested_at) are stored in `deploy_requests` by the same function as the CLI's
requests, so the next tick honours them. Each file is loaded once, by SHA-256, with the
snapshots' bookkeeping (`ingested_files`, `ingest_rejections`); a bad file loads no request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from cswf.ingest.bookkeeping import record_loaded, record_rejections
from cswf.ingest.deploys import store_requests
from cswf.ingest.files import Skipped, scan, visible_files
from cswf.ingest.validate import (
    Rule,
    missing_columns,
    one_line,
    read_landing,
    sql_list,
    tagged,
    value_problems,
)
from cswf.store.tables import ensure_deploy_requests, ensure_ingest_bookkeeping
from cswf.store.transaction import transaction

FOLDER = "deploy_requests"  # sub-folder of the landing dir; also the files' `object`
REQUIRED = ("workflow", "participant_id")
OPTIONAL = ("requested_by", "requested_at")
_FRAME = "_cswf_deploy_file"
# A text time that ends in a UTC offset (`Z`, `+02:00`, `-0500`): converted to UTC, not dropped.
_OFFSET = r"\d[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)$"


@dataclass
class DeployFileReport:
    """What one run did with the deploy-request files (paths relative to the landing dir)."""

    files_loaded: list[str] = field(default_factory=list)
    files_skipped_unchanged: list[str] = field(default_factory=list)
    files_rejected: list[tuple[str, str]] = field(default_factory=list)
    rows_loaded: int = 0
    requests_stored: int = 0  # new rows in deploy_requests (a request already stored is not)


def deploy_request_files(landing_dir: Path) -> list[Path]:
    """The files the ingest looks at, sorted; hidden files and other extensions are ignored."""
    return visible_files(landing_dir / FOLDER)


def ingest_deploy_requests(
    con: duckdb.DuckDBPyConnection,
    landing_dir: Path,
    now: datetime,
    known_workflows: Sequence[str] | None = None,
) -> DeployFileReport:
    """Store the requests of new and changed files; a row without requested_at is made `now`.

    `now` is the caller's time of the ingest (naive UTC; an aware time is converted). With
    `known_workflows`, a row naming another workflow rejects its file.
    """
    if now.tzinfo is not None:
        now = now.astimezone(UTC).replace(tzinfo=None)
    ensure_ingest_bookkeeping(con)
    ensure_deploy_requests(con)
    report = DeployFileReport()
    for found in scan(con, landing_dir, deploy_request_files(landing_dir), [FOLDER]):
        if isinstance(found, Skipped):
            if found.problem:
                report.files_rejected.append((found.rel, found.problem))
            else:
                report.files_skipped_unchanged.append(found.rel)
            continue
        rel, sha = found.rel, found.sha
        reasons, requests = _requests(con, rel, found.data, found.path.suffix.lower(), now,
                                      known_workflows)
        if reasons:
            record_rejections(con, FOLDER, [(rel, sha, reasons)])
            report.files_rejected.extend((rel, reason) for reason in reasons)
            continue
        report.requests_stored += _store(con, rel, sha, requests, fresh=found.fresh)
        report.files_loaded.append(rel)
        report.rows_loaded += requests.height
    return report


def _store(
    con: duckdb.DuckDBPyConnection, rel: str, sha: str, requests: pl.DataFrame, fresh: bool
) -> int:
    """The file's requests and its `ingested_files` entry land together or not at all."""
    with transaction(con):
        stored = store_requests(con, requests)
        record_loaded(con, FOLDER, [(rel, sha, requests.height)], [] if fresh else [rel])
    return stored


def _requests(
    con: duckdb.DuckDBPyConnection,
    rel: str,
    data: bytes,
    suffix: str,
    now: datetime,
    known: Sequence[str] | None,
) -> tuple[list[str], pl.DataFrame]:
    """(rejection reasons, the file's requests): every row is checked before any is kept."""
    try:
        frame = read_landing(data, suffix)
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        return [f"{rel}: could not read file: {one_line(err)}"], pl.DataFrame()
    missing = [name for name in REQUIRED if name not in frame.columns]
    if missing:
        return [missing_columns(rel, missing, frame.columns)], pl.DataFrame()
    columns = [c for c in (*REQUIRED, *OPTIONAL) if c in frame.columns]
    frame = tagged(_utc(frame), rel, columns)
    at = _timestamp(frame) if "requested_at" in columns else "NULL::TIMESTAMP"
    con.register(_FRAME, frame)
    try:
        problems = value_problems(con, _FRAME, _rules(columns, at, known))
        if problems:
            return problems[rel], pl.DataFrame()
        by = "requested_by" if "requested_by" in columns else "NULL"
        return [], con.sql(
            f"SELECT trim(CAST(workflow AS VARCHAR)) AS workflow, "
            f"trim(CAST(participant_id AS VARCHAR)) AS participant_id, "
            f"coalesce(nullif(trim(CAST({by} AS VARCHAR)), ''), $rel) AS requested_by, "
            f"coalesce({at}, $now) AS requested_at FROM {_FRAME}",
            params={"rel": rel, "now": now},
        ).pl()
    except duckdb.Error as err:
        return [f"{rel}: {one_line(err)}"], pl.DataFrame()
    finally:
        con.unregister(_FRAME)


def _utc(frame: pl.DataFrame) -> pl.DataFrame:
    """A Parquet time with a zone becomes naive UTC, as every time in the warehouse."""
    dtype = frame.schema.get("requested_at")
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        at = pl.col("requested_at").dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return frame.with_columns(at)
    return frame


def _timestamp(frame: pl.DataFrame) -> str:
    """SQL for requested_at as naive UTC: a text offset is applied, never silently dropped."""
    if frame.schema["requested_at"] != pl.String:
        return 'TRY_CAST("requested_at" AS TIMESTAMP)'
    text = 'trim("requested_at")'
    return (f"CASE WHEN regexp_matches({text}, '{_OFFSET}') "
            f"THEN timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ)) "
            f"ELSE TRY_CAST({text} AS TIMESTAMP) END")


def _rules(columns: list[str], at: str, known: Sequence[str] | None) -> list[Rule]:
    """Workflow and participant present, the time readable, the workflow known (if given)."""
    rules = [Rule(name, f'"{name}" IS NULL OR trim(CAST("{name}" AS VARCHAR)) = \'\'',
                  "required value is empty") for name in REQUIRED]
    if "requested_at" in columns:
        rules.append(Rule("requested_at", f'"requested_at" IS NOT NULL AND {at} IS NULL',
                          "could not convert '{value}' to TIMESTAMP"))
    if known is not None:
        names = sorted(set(known))
        name = "trim(CAST(workflow AS VARCHAR))"
        unknown = f"{name} NOT IN {sql_list(names)}" if names else "true"
        rules.append(Rule("workflow", f"{name} <> '' AND {unknown}",
                          f"'{{value}}' is not a known workflow "
                          f"(known: {', '.join(names) or 'none'})"))
    return rules
