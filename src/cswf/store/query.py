"""Small query results as Polars frames, at the cost of the query alone.

`con.sql(...).pl()` first builds a relation, which parses and binds the statement to describe it
(about 1.5 ms in DuckDB 2.0's Python layer), then runs it. Delivery and the demo's audience run a
dozen small queries per delivery run, hundreds of runs a quarter, so that description cost more
than many of the queries. `query_frame` runs the statement once and reads its Arrow result. DuckDB
warns that an Arrow result of a DB-API call is copied once more: for the few thousand rows of a
delivery run's queries that copy is nothing; the engine's frames (facts, a tick's state) keep
`con.sql(...).pl()`. Unlike `.pl()`, duplicate column names are an error, not renamed.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import polars as pl

warnings.filterwarnings("ignore", message="Arrow output on a DB-API result",
                        category=UserWarning, module=__name__)


def query_frame(con: duckdb.DuckDBPyConnection, sql: str,
                params: Mapping[str, Any] | Sequence[Any] | None = None) -> pl.DataFrame:
    """The rows of one small query, as `con.sql(sql, params=params).pl()` returns them."""
    return pl.from_arrow(con.execute(sql, params).to_arrow_table())  # type: ignore[return-value]
