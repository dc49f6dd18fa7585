"""`memory_limit` in cswf.yaml (or CSWF_MEMORY_LIMIT) reaches DuckDB wherever cswf opens the
working database: the Dagster steps' resource, the shard fan-out's own steps and the CLI."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from cswf import cli
from cswf.defs.resources import open_warehouse, warehouse_resource
from cswf.settings import load_settings
from cswf.store.warehouse import connect


def duckdb_says(limit: str) -> str:
    """How DuckDB reports a memory limit it was given (`286.1 MiB` for 300MB)."""
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{limit}'").fetchall()
    return con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]


def limit_of(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]


def test_the_setting_reaches_every_connection(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cswf.yaml").write_text(f"database: {tmp_path / 'w.duckdb'}\n"
                                        "memory_limit: 300MB\n")
    settings = load_settings(tmp_path)
    assert settings.memory_limit == "300MB"
    with open_warehouse(warehouse_resource(settings)) as con:  # every asset's step
        assert limit_of(con) == duckdb_says("300MB")
    monkeypatch.setenv("CSWF_MEMORY_LIMIT", "0.5GiB")  # the environment wins, as elsewhere
    settings = cli._settings(tmp_path)
    with cli.connect(settings.database_path) as con:  # the CLI's commands
        assert limit_of(con) == duckdb_says("0.5GiB")
    with connect(settings.database_path, memory_limit=settings.memory_limit) as con:
        assert limit_of(con) == duckdb_says("0.5GiB")  # the prepare and global steps'


def test_unset_leaves_duckdb_s_default(tmp_path: Path) -> None:
    (tmp_path / "cswf.yaml").write_text(f"database: {tmp_path / 'w.duckdb'}\n")
    settings = load_settings(tmp_path)
    assert settings.memory_limit is None
    default = limit_of(duckdb.connect())
    with open_warehouse(warehouse_resource(settings)) as con:
        assert limit_of(con) == default


def test_out_of_memory_says_which_setting_to_raise() -> None:
    from cswf.clitools.errors import explain

    error = explain(duckdb.OutOfMemoryException(
        "Out of Memory Error: failed to allocate data of size 16.0 MiB (120.0 MiB/128.0 MiB "
        "used)"))
    assert str(error).endswith("— give DuckDB more: raise memory_limit in cswf.yaml (or "
                               "CSWF_MEMORY_LIMIT), or unset it for DuckDB's default, 80% of "
                               "the machine's memory")
