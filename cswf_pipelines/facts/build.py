"""Build account facts for a set of ticks from the SQL models in `sql/facts/`.

Each `<name>.sql` file is one SELECT that defines the relation `<name>`; a file depends on the
models whose names it mentions, so adding a field is adding a file. Every model computes all ticks
at once (the `ticks` temp table), which makes a 720-tick backfill about as cheap as one tick.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import duckdb
import polars as pl

from cswf_pipelines.facts.contract import OBJECTS
from cswf_pipelines.facts.ingest import ensure_tables

FINAL_MODEL = "account_facts"
TICKS_TABLE = "ticks"
_TICKS_FRAME = "_cswf_ticks_frame"
_PROBE = "_cswf_model_probe"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_RESERVED = {
    TICKS_TABLE,
    *(o.table for o in OBJECTS.values()),
    "ingested_files",
    "ingest_rejections",
}


class FactModelError(RuntimeError):
    """A fact model could not be loaded or run; the message names the SQL file."""


@dataclass(frozen=True)
class FactModel:
    name: str
    path: Path
    sql: str
    depends_on: frozenset[str]


def load_models(sql_dir: Path) -> list[FactModel]:
    """The model files of `sql_dir`, ordered so every model comes after the ones it reads."""
    paths = sorted(sql_dir.glob("*.sql"))
    names = {p.stem.lower(): p for p in paths}
    for name, path in names.items():
        if not _NAME.match(name) or name in _RESERVED:
            raise FactModelError(f"{path}: '{path.stem}' cannot be a model name")
    if FINAL_MODEL not in names:
        raise FactModelError(f"{sql_dir}: no {FINAL_MODEL}.sql model")
    models = {}
    for name, path in names.items():
        sql = _trim(path.read_text())
        code = _COMMENTS.sub(" ", sql)
        deps = frozenset(
            other
            for other in names
            if other != name and re.search(rf"\b{other}\b", code, re.IGNORECASE)
        )
        models[name] = FactModel(name, path, sql, deps)
    try:
        order = list(
            TopologicalSorter({n: sorted(m.depends_on) for n, m in models.items()}).static_order()
        )
    except CycleError as err:
        cycle = " -> ".join(str(models[n].path) for n in err.args[1])
        raise FactModelError(f"fact models reference each other in a cycle: {cycle}") from err
    return [models[name] for name in order]


def _trim(sql: str) -> str:
    """Drop trailing comment lines and semicolons, so the SELECT can be wrapped in a statement."""
    lines = sql.rstrip().splitlines()
    while lines and (not lines[-1].strip() or lines[-1].strip().startswith("--")):
        lines.pop()
    return "\n".join(lines).rstrip().rstrip(";").rstrip()


def build_facts(
    con: duckdb.DuckDBPyConnection, ticks: Sequence[datetime], sql_dir: Path
) -> pl.DataFrame:
    """Facts for every (tick, account), sorted by as_of then participant_id.

    Each model becomes a temp view, so DuckDB plans the whole chain as one query (it measured
    faster than materializing each model); the views and the ticks table are dropped afterwards.
    """
    models = load_models(sql_dir)
    _require_raw_tables(con)
    _load_ticks(con, ticks)
    *inputs, final = models
    try:
        for model in inputs:
            _run(con, model, f'CREATE OR REPLACE TEMP VIEW "{model.name}" AS {model.sql}')
        try:
            frame = con.sql(f"SELECT * FROM (\n{final.sql}\n)").pl()
        except duckdb.Error as err:
            raise _blame(con, inputs, final, err) from err
        return frame.sort("as_of", "participant_id")  # cheaper in Polars than ORDER BY here
    finally:
        for model in reversed(inputs):
            con.execute(f'DROP VIEW IF EXISTS temp."{model.name}"').fetchall()
        con.execute(f"DROP TABLE IF EXISTS temp.{TICKS_TABLE}").fetchall()


def fact_schema(sql_dir: Path) -> dict[str, pl.DataType]:
    """Columns and Polars types of the facts, found by building the models on empty tables."""
    con = duckdb.connect(":memory:")
    try:
        ensure_tables(con)
        frame = build_facts(con, [], sql_dir)
    finally:
        con.close()
    return dict(frame.schema)


def _require_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    tables = {n for (n,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    missing = [o.table for o in OBJECTS.values() if o.table not in tables]
    if missing:
        raise FactModelError(f"{', '.join(missing)} missing: ingest the landing files first")


def _naive_utc(tick: datetime | date) -> datetime:
    """Ticks are naive UTC; aware ones are converted, plain dates mean midnight."""
    if not isinstance(tick, datetime):
        return datetime.combine(tick, time())
    if tick.tzinfo is not None:
        return tick.astimezone(UTC).replace(tzinfo=None)
    return tick


def _load_ticks(con: duckdb.DuckDBPyConnection, ticks: Sequence[datetime]) -> None:
    frame = pl.DataFrame(
        {"as_of": [_naive_utc(t) for t in ticks]}, schema={"as_of": pl.Datetime("us")}
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE {TICKS_TABLE} (as_of TIMESTAMP)").fetchall()
    con.register(_TICKS_FRAME, frame)
    try:
        con.execute(
            f"INSERT INTO {TICKS_TABLE} SELECT DISTINCT as_of FROM {_TICKS_FRAME}"
        ).fetchall()
    finally:
        con.unregister(_TICKS_FRAME)


def _run(con: duckdb.DuckDBPyConnection, model: FactModel, statement: str) -> None:
    try:
        con.execute(statement).fetchall()
    except duckdb.Error as err:
        raise FactModelError(f"{model.path}: {err}") from err


def _blame(
    con: duckdb.DuckDBPyConnection, inputs: list[FactModel], final: FactModel, err: duckdb.Error
) -> FactModelError:
    """Run-time errors surface in the final query: evaluate the models in order to find the file."""
    for model in inputs:
        try:
            _run(
                con, model, f'CREATE OR REPLACE TEMP TABLE {_PROBE} AS SELECT * FROM "{model.name}"'
            )
        except FactModelError as model_err:
            return model_err
        finally:
            con.execute(f"DROP TABLE IF EXISTS temp.{_PROBE}").fetchall()
    return FactModelError(f"{final.path}: {err}")
