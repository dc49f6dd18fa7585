"""The store's table definitions agree with the engine's frames, column for column."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from cswf.engine.frames import ACTION_SCHEMA, ENROLLMENT_SCHEMA, TRANSITION_SCHEMA
from cswf.store.tables import (
    HISTORY,
    delivery_tables_ready,
    ensure_delivery_tables,
    ensure_engine_tables,
)
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


def test_stored_facts_gain_and_lose_fields() -> None:
    """A field the facts gain becomes a column of account_facts (its type kept); one they lose
    stays, NULL in the ticks without it."""
    from datetime import datetime

    from cswf.store.warehouse import save_facts

    con = duckdb.connect(":memory:")
    first, second, third = (datetime(2026, 6, 1, h) for h in (0, 3, 6))
    save_facts(con, pl.DataFrame({"as_of": [first], "participant_id": ["a1"]}))
    save_facts(con, pl.DataFrame({"as_of": [second], "participant_id": ["a1"],
                                  "churn_risk": [0.8], "seats": [40]}))
    save_facts(con, pl.DataFrame({"as_of": [third], "participant_id": ["a1"], "seats": [12]}))
    assert con.sql("SELECT hour(as_of), churn_risk, seats FROM account_facts "
                   "ORDER BY 1").fetchall() == [(0, None, None), (3, 0.8, 40), (6, None, 12)]
    assert con.sql("SELECT data_type FROM information_schema.columns WHERE table_name = "
                   "'account_facts' AND column_name = 'seats'").fetchall() == [("BIGINT",)]


def test_rows_go_to_duckdb_as_string_views_and_come_back_the_same() -> None:
    # The default conversion to Arrow copies every string (large strings): a busy tick's
    # rows cost seconds and a gibibyte more. Views are read by DuckDB as they are.
    import pyarrow as pa

    from cswf.store.warehouse import arrow

    frame = pl.DataFrame({"id": ["a/1", "a very long value past the inline twelve bytes", None],
                          "n": [1, 2, 3]})
    rows = arrow(frame)
    assert rows.schema.field("id").type == pa.string_view()
    con = duckdb.connect(":memory:")
    assert con.sql("SELECT * FROM rows").pl().equals(frame)


def test_delivery_tables_rolled_back_are_made_again() -> None:
    """Tables made inside a transaction that rolls back are gone; the next check makes them
    again (only a delivery run, outside any transaction, remembers a connection's tables)."""
    con = duckdb.connect()
    with pytest.raises(RuntimeError), transaction(con):
        ensure_engine_tables(con)
        ensure_delivery_tables(con)
        raise RuntimeError("rolled back")
    count = "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'deliveries'"
    assert con.execute(count).fetchall() == [(0,)]
    ensure_engine_tables(con)
    assert con.execute(count).fetchall() == [(1,)]
    delivery_tables_ready(con)
    delivery_tables_ready(con)  # the second asks nothing
    assert con.execute(count).fetchall() == [(1,)]



def test_a_write_that_fails_in_duckdb_raises_its_own_error_and_restores_the_settings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The tick's rows are inserted in any order, one row group buffered (store/warehouse.py);
    a DuckDB error inside the write rolls back, surfaces as itself (not as 'transaction is
    aborted') and leaves DuckDB's settings as they were for whatever the connection does
    next."""
    from datetime import datetime

    from cswf.engine.frames import conform, empty
    from cswf.engine.tick import TickResult
    from cswf.store import warehouse

    at = datetime(2026, 7, 1)
    state = conform(pl.DataFrame({"workflow": ["w"], "participant_id": ["p"],
                                  "updated_at": [at]}), ENROLLMENT_SCHEMA)
    result = TickResult(at, 1, 1, state, empty(ACTION_SCHEMA), empty(TRANSITION_SCHEMA))
    con = duckdb.connect()
    ensure_engine_tables(con)

    def failing(con: duckdb.DuckDBPyConnection, *_: object) -> None:
        con.execute("SELECT CAST('not a number' AS INTEGER)").fetchall()

    monkeypatch.setattr(warehouse, "_write_history", failing)
    monkeypatch.setattr(warehouse, "BULK_ROWS", 1)  # (one row: written as a bulk write)
    with pytest.raises(duckdb.ConversionException, match="not a number"):
        warehouse.write_tick(con, result)
    assert con.execute("SELECT current_setting('preserve_insertion_order'), "
                       "current_setting('write_buffer_row_group_count'), "
                       "(SELECT count(*) FROM tick_log)").fetchall() == [(True, 5, 0)]


def test_the_tick_log_counts_entries_exits_and_completions() -> None:
    from datetime import datetime

    from cswf.engine.frames import conform, empty
    from cswf.engine.tick import TickResult
    from cswf.store.warehouse import write_tick

    at = datetime(2026, 7, 1)
    kinds = ["entered", "entered", "advanced", "exited", "completed", "completed", "completed",
             "objective_met"]
    transitions = conform(pl.DataFrame({
        "workflow": ["w"] * len(kinds), "participant_id": [f"p{k}" for k in range(len(kinds))],
        "transition": kinds, "tick": [at] * len(kinds)}), TRANSITION_SCHEMA)
    con = duckdb.connect()
    ensure_engine_tables(con)
    write_tick(con, TickResult(at, 8, 1, empty(ENROLLMENT_SCHEMA), empty(ACTION_SCHEMA),
                               transitions))
    assert con.sql("SELECT participants, entered, exited, completed FROM tick_log").fetchall() \
        == [(8, 2, 1, 3)]
