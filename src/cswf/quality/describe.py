"""What any model or table is, column by column: description and DuckDB type.

One answer for the fact and report models (their YAML), the landing tables (the data contract)
and the declared source tables, so the Dagster layer, `cswf validate` and the docs test read
the same thing. `actual_types` builds a model on empty tables to learn the types it really
gives; `doc_problems` is where the two must agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from cswf.ingest import contract
from cswf.sqlmodels.catalog import Catalog, Model, load_catalog
from cswf.sqlmodels.errors import ModelError
from cswf.sqlmodels.layers import PACKAGE_SQL
from cswf.sqlmodels.properties import ColumnsFrom, canonical_type
from cswf.sqlmodels.sources import SourceTable, load_sources

SOURCE_FILE = "source_file"
CONTRACT_FILE = Path(contract.__file__)


@dataclass(frozen=True)
class ColumnDoc:
    name: str
    description: str
    data_type: str | None  # DuckDB's spelling (INTEGER, VARCHAR[], ...); None: not declared


@dataclass(frozen=True)
class RelationDoc:
    """A model or table as documented: `kind` is 'fact model', 'report', 'landing table' or
    'source table'; `path` is the file that documents it (its YAML, or ingest/contract.py),
    `sql` a model's SQL file."""

    name: str
    kind: str
    description: str
    columns: tuple[ColumnDoc, ...]
    path: Path | None
    sql: Path | None = None  # a model's SQL file

    @property
    def types(self) -> dict[str, str | None]:
        return {c.name: c.data_type for c in self.columns}

    @property
    def descriptions(self) -> dict[str, str]:
        return {c.name: c.description for c in self.columns}


def catalogs(sql_dir: Path | None) -> tuple[Catalog, Catalog]:
    """The fact and report models; `sql_dir` is a project's SQL folder (None: the package's)."""
    folder = None if sql_dir is None else sql_dir
    return (load_catalog("facts", None if folder is None else folder / "facts"),
            load_catalog("reports", None if folder is None else folder / "reports"))


def relation_names(sql_dir: Path | None = None) -> list[str]:
    """Every model and landing table that can be described and tested."""
    facts, reports = catalogs(sql_dir)
    landing = [obj.table for obj in (*contract.OBJECTS.values(), contract.EVENTS)]
    return [*facts.order, *reports.order, *landing]


def describe(name: str, sql_dir: Path | None = None) -> RelationDoc:
    """The documented columns of a fact model, report, landing table or source table."""
    facts, reports = catalogs(sql_dir)
    for catalog in (facts, reports):
        if name in catalog.models:
            return _describe_model(catalog, catalog.models[name])
    tables = {t: table for (_, t), table in load_sources(sql_dir).items()}
    if name in tables:
        return _describe_table(tables[name])
    raise ModelError(f"{sql_dir or PACKAGE_SQL}: '{name}' is no model, landing table or "
                     "source table")


def _describe_model(catalog: Catalog, model: Model) -> RelationDoc:
    kind = f"{catalog.kind} model" if catalog.stage == "facts" else catalog.kind
    decl = model.decl
    if decl is None:
        return RelationDoc(model.name, kind, "", (), None, model.path)
    columns = [ColumnDoc(c.name, c.description, c.data_type) for c in decl.columns]
    for inherited in decl.columns_from:
        columns += _inherited(catalog, inherited, decl.path)
    for extension in model.extensions:
        extra = _describe_model(catalog, catalog.models[extension]).columns
        columns += [c for c in extra if c.name not in ("as_of", "participant_id")]
    return RelationDoc(model.name, kind, decl.description, tuple(columns), decl.path, model.path)


def _inherited(catalog: Catalog, inherited: ColumnsFrom, path: Path) -> list[ColumnDoc]:
    if inherited.model is not None:
        if inherited.model not in catalog.models:
            raise ModelError(f"{path}: columns_from: no {catalog.kind} model "
                             f"'{inherited.model}'")
        base = _describe_model(catalog, catalog.models[inherited.model])
        what = f"The {inherited.prefix.rstrip('.')}'s" if inherited.prefix else "From"
    else:
        key = inherited.source
        if key not in catalog.sources:
            raise ModelError(f"{path}: columns_from: no source table '{'.'.join(key or ())}'")
        base = _describe_table(catalog.sources[key])
        what = ""
    return [
        ColumnDoc(inherited.prefix + c.name,
                  f"{what} {c.description[:1].lower()}{c.description[1:]}".strip()
                  if what else c.description, c.data_type)
        for c in base.columns
        if c.name not in inherited.exclude
    ]


def _describe_table(table: SourceTable) -> RelationDoc:
    obj = table.landing
    if obj is not None:
        columns = [ColumnDoc(c.name, c.description, canonical_type(c.dtype, CONTRACT_FILE,
                                                                  f"{obj.name}.{c.name}"))
                   for c in obj.columns]
        columns.append(ColumnDoc(SOURCE_FILE, "Landing file the row came from, relative to the "
                                 "landing folder", "VARCHAR"))
        return RelationDoc(table.name, "landing table", table.description, tuple(columns),
                           CONTRACT_FILE)
    decl = table.decl
    columns = [ColumnDoc(c.name, c.description, c.data_type) for c in decl.columns] if decl else []
    return RelationDoc(table.name, "source table", table.description, tuple(columns),
                       decl.path if decl else None)


def actual_types(name: str, sql_dir: Path | None = None) -> dict[str, str]:
    """Columns and DuckDB types a model really gives, found by building it on empty tables
    (landing tables: the contract's DDL)."""
    from cswf.facts.models import fact_types

    facts, reports = catalogs(sql_dir)
    if name in facts.models:
        return fact_types(None if sql_dir is None else sql_dir / "facts", name)
    con = duckdb.connect(":memory:")
    try:
        _empty_warehouse(con, sql_dir)
        if name in reports.models:
            return _report_types(con, reports, name)
        return _types(con.sql(f'SELECT * FROM "{name}" LIMIT 0'))
    finally:
        con.close()


def doc_problems(name: str, sql_dir: Path | None = None) -> list[str]:
    """Where a model's YAML and its columns disagree: an undocumented column, a documented
    column the model does not give, a missing or wrong data_type; one line each."""
    doc = describe(name, sql_dir)
    where = doc.path or doc.sql or name
    if not doc.columns:
        return [f"{where}: {name} has no documented columns (a YAML beside its SQL)"]
    actual = actual_types(name, sql_dir)
    documented = doc.types
    problems = [f"{where}: {name}.{column}: not documented ({kind})"
                for column, kind in actual.items() if column not in documented]
    problems += [f"{where}: {name}.{column}: documented, but {name} has no such column"
                 for column in documented if column not in actual]
    for column, kind in documented.items():
        if column in actual and kind is None:
            problems.append(f"{where}: {name}.{column}: no data_type (it is {actual[column]})")
        elif column in actual and kind != actual[column]:
            problems.append(f"{where}: {name}.{column}: data_type {kind}, but {name} gives "
                            f"{actual[column]}")
    return problems


def all_doc_problems(sql_dir: Path | None = None) -> list[str]:
    """`doc_problems` of every fact model and report (what `cswf validate` could print)."""
    facts, reports = catalogs(sql_dir)
    return [line for name in (*facts.order, *reports.order) for line in doc_problems(name, sql_dir)]


def _types(relation: duckdb.DuckDBPyRelation) -> dict[str, str]:
    return {n: str(t) for n, t in zip(relation.columns, relation.types, strict=True)}


def _empty_warehouse(con: duckdb.DuckDBPyConnection, sql_dir: Path | None) -> None:
    """Every table a model may read, empty: landing, engine, delivery, stored account facts."""
    from cswf.facts.models import FINAL_MODEL, fact_types
    from cswf.ingest.snapshots import ensure_tables
    from cswf.store.tables import (
        ensure_delivery_tables,
        ensure_deploy_requests,
        ensure_engine_tables,
    )

    ensure_tables(con)
    ensure_engine_tables(con)
    ensure_delivery_tables(con)
    ensure_deploy_requests(con)
    facts = fact_types(None if sql_dir is None else sql_dir / "facts", FINAL_MODEL)
    columns = ", ".join(f'"{n}" {t}' for n, t in facts.items())
    con.execute(f"CREATE TABLE IF NOT EXISTS {FINAL_MODEL} ({columns})").fetchall()


def _report_types(con: duckdb.DuckDBPyConnection, reports: Catalog, name: str) -> dict[str, str]:
    for model in reports.chain(name):
        params = {p: None for p in (model.decl.params if model.decl else ())}
        try:
            if model.name == name:
                return _types(con.sql(f"SELECT * FROM (\n{model.sql}\n) LIMIT 0",
                                      params=params or None))
            con.execute(f'CREATE TEMP VIEW "{model.name}" AS {model.sql}').fetchall()
        except duckdb.Error as err:
            raise ModelError(f"{model.path}: {err}") from err
    raise AssertionError("unreachable: chain ends with the model")
