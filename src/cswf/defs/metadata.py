"""What the assets report about their tables: DuckDB column types with descriptions, and previews
as table metadata (the UI renders them as tables, sortable, without "Show Markdown")."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import yaml

from cswf.defs.columns import COLUMN_DOCS

PREVIEW_ROWS = 10
CELL_WIDTH = 80  # characters of a preview cell; email bodies and JSON payloads are cut

log = logging.getLogger(__name__)


def _model_entry(sql_dir: Path, model: str) -> dict[str, Any]:
    """`model`'s entry in a dbt-style YAML under `sql_dir` (`models: [{name, description,
    columns: [{name, description}]}]`), preferring the file named after the model
    (`sql/facts/account_facts.yml`) over others that list it; {} when none does."""
    files = sorted(sql_dir.rglob("*.y*ml"), key=lambda p: (p.stem != model, p.as_posix()))
    for path in files:
        try:
            loaded = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            log.warning("%s: not read for descriptions: %s", path, str(exc).splitlines()[0])
            continue
        models = loaded.get("models") if isinstance(loaded, dict) else None
        for entry in models if isinstance(models, list) else []:
            if isinstance(entry, dict) and entry.get("name") == model:
                return entry
    return {}


def column_docs(sql_dir: Path, model: str) -> dict[str, str]:
    """Column descriptions of `model` from its YAML; {} when there is none."""
    columns = _model_entry(sql_dir, model).get("columns")
    return {
        str(c["name"]): str(c["description"])
        for c in (columns if isinstance(columns, list) else [])
        if isinstance(c, dict) and c.get("name") and c.get("description")
    }


def model_description(sql_dir: Path, model: str) -> str | None:
    """The model's description from its YAML, else the comment its SQL file starts with."""
    described = _model_entry(sql_dir, model).get("description")
    if described:
        return str(described).strip()
    for path in sorted(sql_dir.rglob(f"{model}.sql")):
        lines = []
        for line in path.read_text().splitlines():
            if not line.startswith("--"):
                break
            lines.append(line.removeprefix("--").strip())
        if lines:
            return " ".join(lines)
    return None


def column_schema(
    con: duckdb.DuckDBPyConnection, table: str, sql_dir: Path
) -> dg.TableSchema:
    """The table's columns with their DuckDB types; descriptions from the model's YAML, else from
    the docs (`columns.COLUMN_DOCS`)."""
    docs = {**COLUMN_DOCS.get(table, {}), **column_docs(sql_dir, table)}
    described = con.execute(f"DESCRIBE {table}").fetchall()
    return _schema([(name, str(kind), docs.get(name)) for name, kind, *_ in described])


# Dagster builds a record class's constructor on its first use and keeps the calling frame's
# local variables for good: the records below are therefore made in helpers that never hold a
# DuckDB connection, or the first caller's connection would live as long as the process.


def _schema(columns: Sequence[tuple[str, str, str | None]]) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name, kind, description=text) for name, kind, text in columns]
    )


def _table(names: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[Any]]
           ) -> dg.MetadataValue:
    return dg.MetadataValue.table(
        records=[dg.TableRecord({n: _cell(v) for n, v in zip(names, row, strict=True)})
                 for row in rows],
        schema=_schema([(name, kind, None) for name, kind in zip(names, types, strict=True)]),
    )


def counts_table(counts: dict[str, int]) -> dg.MetadataValue:
    """Rows per table, as a table."""
    return _table(["table", "rows"], ["VARCHAR", "BIGINT"], list(counts.items()))


def table_metadata(
    con: duckdb.DuckDBPyConnection, table: str, sql_dir: Path
) -> dict[str, dg.MetadataValue]:
    """The standard table metadata: its name in DuckDB and its column schema."""
    return {
        "dagster/table_name": dg.MetadataValue.text(table),
        "dagster/column_schema": dg.MetadataValue.table_schema(
            column_schema(con, table, sql_dir)
        ),
    }


def preview(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: Sequence[Any] = (),
    drop: Sequence[str] = (),
) -> dg.MetadataValue:
    """The first rows of a query as a table, with DuckDB's column types (`drop`: columns left
    out, e.g. long email bodies)."""
    relation = con.sql(sql, params=list(params) or None)
    kept = [c for c in relation.columns if c not in drop]
    relation = relation.select(*[duckdb.ColumnExpression(c) for c in kept]).limit(PREVIEW_ROWS)
    types = [str(kind) for kind in relation.types]
    return _table(kept, types, relation.fetchall())


def _cell(value: Any) -> str | int | float | bool | None:
    """A value a TableRecord holds: numbers and booleans as they are, the rest as short text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):
        text = value.isoformat(sep=" ", timespec="minutes")
    elif isinstance(value, date):
        text = value.isoformat()
    else:
        text = " ".join(str(value).split())
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "…"
