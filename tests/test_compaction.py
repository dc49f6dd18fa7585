"""Row groups: a tick's commit does not merge them, a compaction does (store/compaction.py),
from the CLI and from Dagster's compact_job, keeping every row."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource
from typer.testing import CliRunner

from cswf.cli import app
from cswf.defs.maintenance import COMPACT_JOB, compact_job
from cswf.store.compaction import compact, row_groups
from cswf.store.warehouse import connect

BULK = 130_000  # over one row group (122,880 rows): written as a full one and a partial one
AT = datetime(2026, 7, 1, 4)


def _bulk_inserts(con: duckdb.DuckDBPyConnection, times: int) -> None:
    """`times` bulk inserts into `t`, each committed on its own, as ticks are."""
    con.execute("CREATE TABLE IF NOT EXISTS t (id BIGINT, label VARCHAR)")
    for k in range(times):
        con.execute(f"INSERT INTO t SELECT {k * BULK} + i, 'row ' || i FROM range({BULK}) "
                    "AS r(i)").fetchall()
        con.execute("CHECKPOINT").fetchall()


def _contents(con: duckdb.DuckDBPyConnection) -> tuple:
    return con.execute("SELECT count(*), sum(id), count(DISTINCT label), min(id), max(id) "
                       "FROM t").fetchall()[0]


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """A working database whose table `t` holds four ticks' worth of bulk inserts."""
    path = tmp_path / "cswf.duckdb"
    with connect(path) as con:
        _bulk_inserts(con, 4)
    return path


def test_the_working_connection_leaves_partial_row_groups_to_the_compaction(
        database: Path) -> None:
    with connect(database) as con:
        deferred = row_groups(con)["t"]
        kept = _contents(con)
        done = compact(con, AT)
        assert done.row_groups_before["t"] == deferred
        assert done.row_groups_after["t"] < deferred
        assert _contents(con) == kept == (4 * BULK, sum(range(4 * BULK)), BULK, 0, 4 * BULK - 1)
        assert con.execute("SELECT * FROM compactions").fetchall() == [(AT, done.before)]
        # Later commits on the same connection defer merges again.
        _bulk_inserts(con, 1)
        assert row_groups(con)["t"] > done.row_groups_after["t"]


def test_a_plain_connection_merges_at_every_checkpoint(tmp_path: Path) -> None:
    """What the working connection avoids (so the test above can fail)."""
    with duckdb.connect(str(tmp_path / "plain.duckdb")) as con:
        _bulk_inserts(con, 4)
        merged = row_groups(con)["t"]
    with connect(tmp_path / "deferred.duckdb") as con:
        _bulk_inserts(con, 4)
        assert row_groups(con)["t"] > merged


def test_cswf_compact(database: Path) -> None:
    (database.parent / "cswf.yaml").write_text(
        f"database: {database}\nlanding_dir: {database.parent / 'landing'}\n")
    with connect(database) as con:
        before = sum(row_groups(con).values())
    said = CliRunner().invoke(app, ["compact", "--root", str(database.parent)],
                              terminal_width=200)
    assert said.exit_code == 0, said.output
    with duckdb.connect(str(database), read_only=True) as con:
        after = sum(row_groups(con).values())
        assert _contents(con)[0] == 4 * BULK
    assert after < before
    assert said.output.strip().startswith("compacted ")
    assert f"{before} row groups → {after} (" in said.output


def test_cswf_compact_without_a_database(tmp_path: Path) -> None:
    (tmp_path / "cswf.yaml").write_text(f"database: {tmp_path / 'none.duckdb'}\n")
    said = CliRunner().invoke(app, ["compact", "--root", str(tmp_path)], terminal_width=200)
    assert said.exit_code == 1
    assert said.output.strip().endswith(
        "none.duckdb: no database to compact — check `database` in cswf.yaml, or run a tick "
        "first")
    assert said.output.strip().startswith("error: ")
    assert not (tmp_path / "none.duckdb").exists()


def test_the_compact_job_without_a_database(tmp_path: Path) -> None:
    result = compact_job.execute_in_process(
        resources={"warehouse": DuckDBResource(database=str(tmp_path / "none.duckdb"))},
        raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "none.duckdb: no database to compact" in failure.step_failure_data.error.message
    assert not (tmp_path / "none.duckdb").exists()


def test_the_compact_job_in_dagster(database: Path) -> None:
    with connect(database) as con:
        before = sum(row_groups(con).values())
    result = compact_job.execute_in_process(
        resources={"warehouse": DuckDBResource(database=str(database))})
    assert result.success and compact_job.name == COMPACT_JOB
    (output,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_OUTPUT]
    shown = {k: v.value for k, v in output.step_output_data.metadata.items()}
    with connect(database) as con:
        after = sum(row_groups(con).values())
    assert shown == {"row groups before": before, "row groups after": after,
                     "seconds": shown["seconds"]}
    assert after < before
