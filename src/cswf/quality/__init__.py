"""Data quality over every model and table: column docs and DuckDB types, and the declared data
tests (unique, not null, accepted values, ...) run against the warehouse. A layer on top: it reads
the landing contract, the SQL models and the store's tables alike.

What the Dagster layer needs, with `sql_dir` the project's SQL folder (`settings.sql_path`):

- `relation_names(sql_dir)`: every model and landing table;
- `describe(name, sql_dir)` -> `RelationDoc`: description, columns, descriptions, DuckDB types;
- `declared_tests(name, sql_dir)` -> `DataTest`s (name, description, severity), not run;
- `run_data_tests(con, name, sql_dir=..., where=..., params=..., only=...)` ->
  `DataTestResult`s (passed, failing count, sample rows); `run_data_test` runs one.
"""

from cswf.quality.datatests import (
    DataTest,
    DataTestResult,
    declared_tests,
    run_data_test,
    run_data_tests,
)
from cswf.quality.describe import (
    ColumnDoc,
    RelationDoc,
    actual_types,
    all_doc_problems,
    describe,
    doc_problems,
    relation_names,
)

__all__ = [
    "ColumnDoc",
    "DataTest",
    "DataTestResult",
    "RelationDoc",
    "actual_types",
    "all_doc_problems",
    "declared_tests",
    "describe",
    "doc_problems",
    "relation_names",
    "run_data_test",
    "run_data_tests",
]
