"""The store's table definitions agree with the engine's frames, column for column."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from cswf.engine.frames import ACTION_SCHEMA, ENROLLMENT_SCHEMA, TRANSITION_SCHEMA
from cswf.store.tables import HISTORY, ensure_engine_tables
from cswf.store.transaction import transaction


@pytest.mark.parametrize(("table", "schema"), [
    (HISTORY, ENROLLMENT_SCHEMA), ("transitions", TRANSITION_SCHEMA),
    ("actions_outbox", ACTION_SCHEMA),
])
def test_engine_tables_hold_the_engine_frames(table: str, schema: dict) -> None:
    con = duckdb.connect()
    ensure_engine_tables(con)
    stored = con.sql(f"FROM {table}").pl().drop("valid_from", "valid_to", strict=False)
    assert dict(stored.schema) == {name: (pl.Datetime("us") if dtype == pl.Datetime else dtype)
                                   for name, dtype in schema.items()}


def test_a_transaction_that_raises_leaves_nothing() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(RuntimeError, match="boom"), transaction(con):
        con.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("boom")
    with transaction(con):
        con.execute("INSERT INTO t VALUES (2)")
    assert con.execute("SELECT list(x) FROM t").fetchall() == [([2],)]
