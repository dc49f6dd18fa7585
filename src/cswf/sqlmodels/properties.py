"""A model's YAML beside its SQL, in dbt's properties format: docs, types and data tests.

Only what cswf uses is read; dbt keys it does not need (`tags`, `constraints`, `quote`, ...) are
left alone, so a data team's file stays a dbt file. cswf's own settings live where dbt keeps
custom keys, under `config: {meta: {cswf: ...}}`. Every mistake is one `ModelError` naming the
file and the key path (`models[0].columns[3].data_tests[1]`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import yaml

from cswf.sqlmodels.errors import ModelError

Value = str | int | float | bool
# test kind -> the argument it needs (dbt's names); dbt_utils' test may be written with its prefix
TEST_ARGUMENTS: dict[str, str | None] = {
    "not_null": None,
    "unique": None,
    "accepted_values": "values",
    "unique_combination_of_columns": "combination_of_columns",
}
COLUMN_TESTS = ("not_null", "unique", "accepted_values")
MODEL_TESTS = ("unique_combination_of_columns",)
SEVERITIES = ("error", "warn")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class TestDecl:
    """A data test as declared: the kind, its arguments and its dbt config (`severity`, `where`)."""

    kind: str
    columns: tuple[str, ...]  # the tested column, or the combination
    values: tuple[Value, ...] = ()
    severity: str = "error"
    where: str | None = None
    name: str | None = None  # dbt's optional explicit test name
    declared_in: str = ""  # "file: key" for messages


@dataclass(frozen=True)
class ColumnDecl:
    name: str
    description: str
    data_type: str | None
    tests: tuple[TestDecl, ...]


@dataclass(frozen=True)
class ColumnsFrom:
    """Columns documented elsewhere, repeated here: `model` (with a name `prefix`) or a
    `source` table (`landing.raw_accounts`), less `exclude`. contact_facts uses it for its
    `account.` fields, so a field added to account_facts is documented there once."""

    model: str | None
    source: tuple[str, str] | None
    prefix: str
    exclude: tuple[str, ...]


@dataclass(frozen=True)
class ModelDecl:
    """What a model's YAML says about it."""

    name: str
    path: Path
    description: str
    columns: tuple[ColumnDecl, ...]
    tests: tuple[TestDecl, ...]
    columns_from: tuple[ColumnsFrom, ...] = ()
    extends: str | None = None  # a fact model whose rows this model adds fields to
    params: tuple[str, ...] = ()  # a report run per call with these parameters, never stored


def read_yaml(path: Path) -> Any:
    """The parsed file. Parsing is cached by content (a build loads every model's YAML, and
    PyYAML is slow): a changed file is parsed again, an unchanged one is not. Callers do not
    mutate what they get."""
    try:
        return _parse(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ModelError(f"{path}: not valid YAML{where}: {problem}") from err


@lru_cache(maxsize=512)
def _parse(text: str) -> Any:
    return yaml.load(text, Loader=_LOADER)  # CSafeLoader (or SafeLoader): safe


def load_model_yaml(path: Path, name: str) -> ModelDecl:
    """The entry of `name` in `path`, which holds that one model (one YAML per model)."""
    data = read_yaml(path)
    if not isinstance(data, Mapping) or not isinstance(data.get("models"), list):
        raise ModelError(f"{path}: expected a mapping with a 'models' list")
    models = data["models"]
    if len(models) != 1:
        raise ModelError(f"{path}: models: expected exactly one model, '{name}'")
    entry = _mapping(models[0], path, "models[0]")
    if entry.get("name") != name:
        raise ModelError(f"{path}: models[0].name: '{entry.get('name')}' should be '{name}', "
                         "the name of the SQL file beside it")
    return parse_model(entry, path, "models[0]")


def parse_model(entry: Mapping[str, Any], path: Path, key: str) -> ModelDecl:
    name = str(entry["name"])
    columns = []
    for i, raw in enumerate(_list(entry.get("columns"), path, f"{key}.columns")):
        column = _mapping(raw, path, f"{key}.columns[{i}]")
        columns.append(_column(column, path, f"{key}.columns[{i}]"))
    seen: set[str] = set()
    for i, column in enumerate(columns):
        if column.name in seen:
            raise ModelError(f"{path}: {key}.columns[{i}].name: '{column.name}' is listed twice")
        seen.add(column.name)
    tests = tuple(
        _test(raw, path, f"{key}.{tests_key}[{i}]", column=None)
        for tests_key, raws in _tests_of(entry, path, key)
        for i, raw in enumerate(raws)
    )
    meta = _cswf_meta(entry, path, key)
    return ModelDecl(
        name=name,
        path=path,
        description=_text(entry.get("description", ""), path, f"{key}.description"),
        columns=tuple(columns),
        tests=tests,
        columns_from=tuple(
            _columns_from(raw, path, f"{key}.config.meta.cswf.columns_from[{i}]")
            for i, raw in enumerate(_list(meta.get("columns_from"), path,
                                          f"{key}.config.meta.cswf.columns_from"))
        ),
        extends=_optional_text(meta.get("extends"), path, f"{key}.config.meta.cswf.extends"),
        params=tuple(
            _text(p, path, f"{key}.config.meta.cswf.params[{i}]")
            for i, p in enumerate(_list(meta.get("params"), path, f"{key}.config.meta.cswf.params"))
        ),
    )


def canonical_type(data_type: str, path: Path, key: str) -> str:
    """DuckDB's own spelling of a type (`int` -> INTEGER), so YAML and DESCRIBE compare."""
    spelled = _duckdb_type(data_type)
    if spelled is None:
        raise ModelError(f"{path}: {key}: '{data_type}' is not a DuckDB type")
    return spelled


@lru_cache(maxsize=1024)
def _duckdb_type(data_type: str) -> str | None:
    try:
        return str(duckdb.sqltype(data_type))
    except (duckdb.Error, ValueError, TypeError):
        return None


def _column(column: Mapping[str, Any], path: Path, key: str) -> ColumnDecl:
    if not isinstance(column.get("name"), str) or not column["name"]:
        raise ModelError(f"{path}: {key}.name: expected the column's name")
    name = column["name"]
    data_type = column.get("data_type")
    if data_type is not None:
        data_type = canonical_type(_text(data_type, path, f"{key}.data_type"), path,
                                   f"{key}.data_type")
    tests = tuple(
        _test(raw, path, f"{key}.{tests_key}[{i}]", column=name)
        for tests_key, raws in _tests_of(column, path, key)
        for i, raw in enumerate(raws)
    )
    return ColumnDecl(name, _text(column.get("description", ""), path, f"{key}.description"),
                      data_type, tests)


def _tests_of(entry: Mapping[str, Any], path: Path, key: str) -> list[tuple[str, list[Any]]]:
    """`data_tests`, or `tests`, its older name that dbt still reads."""
    return [(k, _list(entry.get(k), path, f"{key}.{k}")) for k in ("data_tests", "tests")
            if k in entry]


def _test(raw: Any, path: Path, key: str, column: str | None) -> TestDecl:
    """`not_null` or `{accepted_values: {arguments: {values: [...]}, config: {...}}}`; dbt
    before 1.10.5 put the arguments at the top level, which is read too."""
    if isinstance(raw, str):
        kind, body = raw, {}
    elif isinstance(raw, Mapping) and len(raw) == 1:
        kind, body = next(iter(raw.items()))
        body = _mapping(body if body is not None else {}, path, f"{key}.{kind}")
    else:
        raise ModelError(f"{path}: {key}: expected a test name or a one-key mapping")
    kind = str(kind).removeprefix("dbt_utils.")
    if kind not in TEST_ARGUMENTS:
        known = ", ".join(sorted(TEST_ARGUMENTS))
        raise ModelError(f"{path}: {key}: unknown test '{kind}' (known: {known})")
    allowed = COLUMN_TESTS if column is not None else MODEL_TESTS
    if kind not in allowed:
        where = "a column's" if column is not None else "a model's"
        raise ModelError(f"{path}: {key}: '{kind}' is not {where} test "
                         f"(use one of: {', '.join(allowed)})")
    here = f"{key}.{kind}"
    arguments = dict(_mapping(body.get("arguments", {}), path, f"{here}.arguments"))
    arguments |= {k: v for k, v in body.items() if k not in ("arguments", "config", "name")}
    config = _mapping(body.get("config", {}), path, f"{here}.config")
    wanted = TEST_ARGUMENTS[kind]
    unknown = sorted(set(arguments) - {wanted, "quote"} - {None})
    if unknown:
        raise ModelError(f"{path}: {here}: unknown argument '{unknown[0]}'")
    columns: tuple[str, ...] = (column,) if column is not None else ()
    values: tuple[Value, ...] = ()
    if wanted == "values":
        values = tuple(_values(arguments.get("values"), path, f"{here}.values"))
    elif wanted == "combination_of_columns":
        names = _list(arguments.get("combination_of_columns"), path,
                      f"{here}.combination_of_columns")
        if not names:
            raise ModelError(f"{path}: {here}.combination_of_columns: expected column names")
        columns = tuple(_text(n, path, f"{here}.combination_of_columns") for n in names)
    severity = str(config.get("severity", "error")).lower()
    if severity not in SEVERITIES:
        raise ModelError(f"{path}: {here}.config.severity: '{severity}' is not error or warn")
    return TestDecl(
        kind=kind,
        columns=columns,
        values=values,
        severity=severity,
        where=_optional_text(config.get("where"), path, f"{here}.config.where"),
        name=_optional_text(body.get("name"), path, f"{here}.name"),
        declared_in=f"{path}: {key}",
    )


def _values(raw: Any, path: Path, key: str) -> list[Value]:
    values = _list(raw, path, key)
    if not values:
        raise ModelError(f"{path}: {key}: expected a list of values")
    for i, value in enumerate(values):
        if not isinstance(value, str | int | float | bool):
            raise ModelError(f"{path}: {key}[{i}]: expected a text, number or boolean")
    return values


def _columns_from(raw: Any, path: Path, key: str) -> ColumnsFrom:
    entry = _mapping(raw, path, key)
    model = _optional_text(entry.get("model"), path, f"{key}.model")
    source_text = _optional_text(entry.get("source"), path, f"{key}.source")
    if (model is None) == (source_text is None):
        raise ModelError(f"{path}: {key}: give either 'model' or 'source'")
    source = None
    if source_text is not None:
        parts = source_text.split(".")
        if len(parts) != 2:
            raise ModelError(f"{path}: {key}.source: expected '<source>.<table>'")
        source = (parts[0], parts[1])
    exclude = _list(entry.get("exclude"), path, f"{key}.exclude")
    return ColumnsFrom(model, source, str(entry.get("prefix", "")),
                       tuple(_text(e, path, f"{key}.exclude") for e in exclude))


def _cswf_meta(entry: Mapping[str, Any], path: Path, key: str) -> Mapping[str, Any]:
    config = _mapping(entry.get("config", {}), path, f"{key}.config")
    meta = _mapping(config.get("meta", {}), path, f"{key}.config.meta")
    cswf = _mapping(meta.get("cswf", {}), path, f"{key}.config.meta.cswf")
    unknown = sorted(set(cswf) - {"columns_from", "extends", "params"})
    if unknown:
        raise ModelError(f"{path}: {key}.config.meta.cswf.{unknown[0]}: unknown setting "
                         "(known: columns_from, extends, params)")
    return cswf


def _mapping(value: Any, path: Path, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ModelError(f"{path}: {key}: expected a mapping")
    return value


def _list(value: Any, path: Path, key: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ModelError(f"{path}: {key}: expected a list")
    return value


def _text(value: Any, path: Path, key: str) -> str:
    if not isinstance(value, str):
        raise ModelError(f"{path}: {key}: expected a text")
    return value


def _optional_text(value: Any, path: Path, key: str) -> str | None:
    return None if value is None else _text(value, path, key)
