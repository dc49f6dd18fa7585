"""Data tests: dbt's generic tests on a model's rows, declared in its YAML, run as SQL.

`declared_tests` lists a model's or landing table's tests without running them (a name and a
sentence each: what an asset check shows); `run_data_tests` runs them on the relation of that
name in a connection (or another, e.g. a registered frame), optionally filtered (a fact test runs
per tick: `where="as_of = $as_of"`). Landing tables get their tests from the data contract:
not_null on key columns (error) and on required ones (warn: the contract lets a required value
be empty), one row per key, accepted values of enumerated columns (warn: the project's value
sets; the ingest flags and keeps a row outside them, and flagged rows never block). A model's
accepted_values test on such a column follows the same value set, as a warning.

The failing count is dbt's: the rows of the test's failure query (NULL rows for not_null,
duplicated values or combinations for unique, distinct bad values for accepted_values).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb

from cswf.ingest.contract import EVENTS, OBJECTS, LandingObject
from cswf.quality.describe import CONTRACT_FILE, catalogs
from cswf.sqlmodels.catalog import KEY
from cswf.sqlmodels.errors import ModelError
from cswf.sqlmodels.properties import TestDecl, Value
from cswf.sqlmodels.render import quote

SAMPLE_ROWS = 5
_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")


@dataclass(frozen=True)
class DataTest:
    """One declared test. `name` is unique per model and safe as a Dagster check name."""

    name: str
    kind: str  # not_null | unique | accepted_values | unique_combination_of_columns
    model: str
    column: str | None  # the tested column (None for a model-level test)
    columns: tuple[str, ...]  # the tested column, or the combination
    values: tuple[Value, ...]  # accepted_values
    severity: str  # "error" | "warn" (dbt's config: severity)
    where: str | None  # dbt's config: where
    description: str
    declared_in: str  # "<file>: <key>"


@dataclass(frozen=True)
class DataTestResult:
    test: DataTest
    passed: bool
    failing: int
    samples: tuple[dict[str, object], ...]  # a few failing rows
    error: str | None = None  # the test could not run (missing table or column, bad filter)

    @property
    def name(self) -> str:
        return self.test.name

    @property
    def model(self) -> str:
        return self.test.model

    @property
    def column(self) -> str | None:
        return self.test.column


def declared_tests(name: str, sql_dir: Path | None = None,
                   objects: Mapping[str, LandingObject] | None = None) -> list[DataTest]:
    """The tests of a fact model, report or landing table, in declaration order; a landing
    table's from `objects` (a project's value sets: `Settings.landing_objects()`)."""
    landing = {obj.table: obj for obj in (*(objects or OBJECTS).values(), EVENTS)}
    if name in landing:
        return _named(name, _landing_tests(landing[name]))
    for catalog in catalogs(sql_dir):
        if name in catalog.models:
            model = catalog.models[name]
            decls = _model_tests(model.decl)
            for extension in model.extensions:  # their columns are this model's now
                decls += [t for t in _model_tests(catalog.models[extension].decl)
                          if not set(t.columns) <= set(KEY)]
            return _named(name, _follow_value_sets(decls, objects or OBJECTS))
    raise ModelError(f"{sql_dir or 'cswf/sql'}: '{name}' is no model or landing table")


def run_data_tests(
    con: duckdb.DuckDBPyConnection,
    name: str,
    *,
    sql_dir: Path | None = None,
    where: str | None = None,
    params: Mapping[str, object] | None = None,
    relation: str | None = None,
    only: Sequence[str] | None = None,
    samples: int = SAMPLE_ROWS,
    objects: Mapping[str, LandingObject] | None = None,
) -> list[DataTestResult]:
    """Run `name`'s declared tests (or `only` those, by test name) on the relation `name` (or
    `relation`), each restricted by `where` (SQL, `$name` placeholders from `params`)."""
    tests = declared_tests(name, sql_dir, objects)
    if only is not None:
        unknown = sorted(set(only) - {t.name for t in tests})
        if unknown:
            raise ModelError(f"{name}: no data test '{unknown[0]}' "
                             f"(declared: {', '.join(t.name for t in tests)})")
        tests = [t for t in tests if t.name in set(only)]
    return [run_data_test(con, t, where=where, params=params, relation=relation,
                          samples=samples, key=_key(tests)) for t in tests]


def run_data_test(
    con: duckdb.DuckDBPyConnection,
    test: DataTest,
    *,
    where: str | None = None,
    params: Mapping[str, object] | None = None,
    relation: str | None = None,
    samples: int = SAMPLE_ROWS,
    key: Sequence[str] = (),
) -> DataTestResult:
    """One test; `key` names the columns shown beside a NULL in not_null samples."""
    filters = [f"({w})" for w in (test.where, where) if w]
    query = _failures(test, quote(relation or test.model), " AND ".join(filters) or "TRUE", key)
    try:
        cursor = con.execute(
            f"SELECT count(*) OVER () AS _cswf_failing, * FROM ({query}) LIMIT {int(samples)}"
            if samples > 0 else f"SELECT count(*) AS _cswf_failing FROM ({query})",
            dict(params) if params else None,
        )
        columns = [d[0] for d in cursor.description or ()]
        rows = cursor.fetchall()
    except duckdb.Error as err:
        message = str(err).splitlines()[0]
        return DataTestResult(test, False, 0, (), f"{test.name}: {message}")
    failing = int(rows[0][0]) if rows else 0
    shown = tuple(dict(zip(columns[1:], row[1:], strict=True)) for row in rows) if samples else ()
    return DataTestResult(test, failing == 0, failing, shown if failing else ())


def _failures(test: DataTest, relation: str, where: str, key: Sequence[str]) -> str:
    """dbt's failure query of each generic test, with an order so samples are stable."""
    cols = [quote(c) for c in test.columns]
    if test.kind == "not_null":
        shown = ", ".join(quote(c) for c in dict.fromkeys((*key, *test.columns)))
        return (f"SELECT {shown} FROM {relation} WHERE {where} AND {cols[0]} IS NULL "
                f"ORDER BY ALL")
    if test.kind == "unique":
        return (f"SELECT {cols[0]} AS value, count(*) AS n_records FROM {relation} "
                f"WHERE {where} AND {cols[0]} IS NOT NULL GROUP BY 1 HAVING count(*) > 1 "
                f"ORDER BY 2 DESC, 1")
    if test.kind == "accepted_values":
        allowed = ", ".join(_literal(v) for v in test.values)
        return (f"SELECT {cols[0]} AS value, count(*) AS n_records FROM {relation} "
                f"WHERE {where} AND {cols[0]} IS NOT NULL AND {cols[0]} NOT IN ({allowed}) "
                f"GROUP BY 1 ORDER BY 2 DESC, 1")
    grouped = ", ".join(cols)
    return (f"SELECT {grouped}, count(*) AS n_records FROM {relation} WHERE {where} "
            f"GROUP BY ALL HAVING count(*) > 1 ORDER BY n_records DESC, {grouped}")


def _literal(value: Value) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + value.replace("'", "''") + "'"


def _model_tests(decl: object) -> list[TestDecl]:
    if decl is None:
        return []
    return [t for c in decl.columns for t in c.tests] + list(decl.tests)  # type: ignore[attr-defined]


def _landing_tests(obj: LandingObject) -> list[TestDecl]:
    """A landing table's tests, from the contract alone."""
    here = f"{CONTRACT_FILE}: {obj.name.upper()}"
    # A warning: the blocking check `unique_ids` stops the ticks that can see a duplicate, and
    # says where it is and what to do; this test names no file and would fail for every tick.
    tests = [TestDecl("unique_combination_of_columns", obj.key, severity="warn",
                      declared_in=f"{here}.key")]
    for c in obj.columns:
        where = f"{here}.{c.name}"
        if c.key or c.required:
            tests.append(TestDecl("not_null", (c.name,), severity="error" if c.key else "warn",
                                  declared_in=where))
        if c.allowed:  # a row outside the set was flagged at ingest: warn, never block
            tests.append(TestDecl("accepted_values", (c.name,), c.allowed, severity="warn",
                                  declared_in=where))
    return tests


def _follow_value_sets(decls: list[TestDecl],
                       objects: Mapping[str, LandingObject]) -> list[TestDecl]:
    """A model's accepted_values test that lists a contract column's values exactly (the
    shipped `tier: [enterprise, mid_market, smb]`) tests that column's value set instead, the
    project's `allowed_values` included, as a warning: a row outside it was flagged at ingest
    and kept, and flagged rows never block a tick."""
    sets = {(c.name, frozenset(c.allowed)): (obj, c.name)
            for obj in OBJECTS.values() for c in obj.columns if c.allowed}
    project = {(obj, c.name): c.allowed for obj in OBJECTS.values()
               for c in objects.get(obj.name, obj).columns if c.allowed}
    out = []
    for decl in decls:
        found = sets.get((decl.columns[0], frozenset(decl.values))) \
            if decl.kind == "accepted_values" else None
        if found is not None:
            decl = replace(decl, values=project.get(found, decl.values), severity="warn")
        out.append(decl)
    return out


def _named(model: str, decls: list[TestDecl]) -> list[DataTest]:
    tests: list[DataTest] = []
    taken: set[str] = set()
    for decl in decls:
        base = decl.name or _UNSAFE.sub("_", f"{decl.kind}_{model}_{'__'.join(decl.columns)}")
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        column = decl.columns[0] if decl.kind != "unique_combination_of_columns" else None
        tests.append(DataTest(name, decl.kind, model, column, decl.columns, decl.values,
                              decl.severity, decl.where, _describe(decl), decl.declared_in))
    return tests


def _describe(decl: TestDecl) -> str:
    column = decl.columns[0] if decl.columns else ""
    if decl.kind == "not_null":
        text = f"{column} is never NULL"
    elif decl.kind == "unique":
        text = f"{column} is unique"
    elif decl.kind == "accepted_values":
        text = f"{column} is one of {', '.join(map(str, decl.values))} (or NULL)"
    else:
        text = f"one row per ({', '.join(decl.columns)})"
    if decl.severity == "warn":
        text += " (warning only)"
    return text + (f", where {decl.where}" if decl.where else "")


def _key(tests: Sequence[DataTest]) -> tuple[str, ...]:
    """The columns that identify a row: the first one-row-per combination, else a unique
    column; shown beside a NULL so a failing row can be found."""
    for test in tests:
        if test.kind == "unique_combination_of_columns":
            return test.columns
    return next((t.columns for t in tests if t.kind == "unique"), ())
