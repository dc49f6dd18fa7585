"""Declared SQL models: dbt-style `ref()` / `source()`, YAML docs and data tests, shipped in the
package and overridable by a project's own `sql/` folder.

What the Dagster layer needs, with `sql_dir` the project's SQL folder (`settings.sql_path`):

- `relation_names(sql_dir)`: every model and landing table;
- `describe(name, sql_dir)` -> `RelationDoc`: description, columns, descriptions, DuckDB types;
- `declared_tests(name, sql_dir)` -> `DataTest`s (name, description, severity), not run;
- `run_data_tests(con, name, sql_dir=..., where=..., params=..., only=...)` ->
  `DataTestResult`s (passed, failing count, sample rows); `run_data_test` runs one.
"""

from cswf.sqlmodels.catalog import Catalog, Model, load_catalog
from cswf.sqlmodels.datatests import (
    DataTest,
    DataTestResult,
    declared_tests,
    run_data_test,
    run_data_tests,
)
from cswf.sqlmodels.describe import (
    ColumnDoc,
    RelationDoc,
    actual_types,
    all_doc_problems,
    describe,
    doc_problems,
    relation_names,
)
from cswf.sqlmodels.errors import ModelError

__all__ = [
    "Catalog",
    "ColumnDoc",
    "DataTest",
    "DataTestResult",
    "Model",
    "ModelError",
    "RelationDoc",
    "actual_types",
    "all_doc_problems",
    "declared_tests",
    "describe",
    "doc_problems",
    "load_catalog",
    "relation_names",
    "run_data_test",
    "run_data_tests",
]
