"""Materialize the report tables: the declared models in `sql/reports/`, for BI tools.

A report reads the engine's tables with `{{ source('cswf', '<table>') }}` and other reports with
`{{ ref('<report>') }}`, so it is built after them. A report whose YAML declares parameters
(`config: {meta: {cswf: {params: [as_of]}}}`, e.g. `action_insights`) is not stored here: it is
run per call with its parameters (`run_report`). A project's `sql/reports/` adds and overrides
reports like fact models.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb
import polars as pl

from cswf.sqlmodels.catalog import Catalog, Model, load_catalog
from cswf.sqlmodels.errors import ModelError

REPORTS_FOLDER = "reports"


class ReportError(ModelError, ValueError):
    """A report could not be loaded or built; the message names its file."""


def report_catalog(sql_dir: Path | None) -> Catalog:
    """Every report: the package's, with `sql_dir` (a project's SQL folder) on top."""
    try:
        return load_catalog(REPORTS_FOLDER, None if sql_dir is None else sql_dir / REPORTS_FOLDER)
    except ReportError:
        raise
    except ModelError as err:
        raise ReportError(str(err)) from err


def is_stored(model: Model) -> bool:
    """Stored as a table by build_reports: every report without parameters."""
    return not (model.decl and model.decl.params)


def report_files(sql_dir: Path | None) -> list[Path]:
    """The SQL file of every stored report, by name."""
    catalog = report_catalog(sql_dir)
    return [m.path for _, m in sorted(catalog.models.items()) if is_stored(m)]


def build_reports(con: duckdb.DuckDBPyConnection, sql_dir: Path | None) -> dict[str, int]:
    """(Re)create every stored report table, each after the reports it refs; returns its row
    count by name."""
    catalog = report_catalog(sql_dir)
    done: dict[str, int] = {}
    for name in catalog.order:
        model = catalog.models[name]
        if not is_stored(model):
            continue
        for other in model.depends_on:
            if not is_stored(catalog.models[other]):
                raise ReportError(f"{model.path}: ref('{other}') is a report with parameters, "
                                  "which is never stored: a stored report cannot read it")
        try:
            con.execute(f'CREATE OR REPLACE TABLE "{name}" AS {model.sql}').fetchall()
        except duckdb.Error as exc:
            raise ReportError(f"{model.path}: {exc}") from exc
        done[name] = con.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0]
    return done


def report_sql(name: str, sql_dir: Path | None = None) -> str:
    """The rendered SELECT of one report (with its `$parameters` left for DuckDB)."""
    return report_catalog(sql_dir).get(name).sql


def run_report(
    con: duckdb.DuckDBPyConnection,
    name: str,
    params: Mapping[str, object] | None = None,
    sql_dir: Path | None = None,
) -> pl.DataFrame:
    """One report, computed now with `params` (exactly the ones its YAML declares)."""
    model = report_catalog(sql_dir).get(name)
    declared = set(model.decl.params) if model.decl else set()
    given = set(params or {})
    if given != declared:
        raise ReportError(f"{model.path}: report '{name}' takes parameters "
                          f"{sorted(declared)}, not {sorted(given)}")
    try:
        return con.sql(model.sql, params=dict(params or {}) or None).pl()
    except duckdb.Error as exc:
        raise ReportError(f"{model.path}: {exc}") from exc
