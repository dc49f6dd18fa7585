"""The BI copy: what a reports build publishes, in which format, swapped in whole, private; read
through the notebook API and `cswf report`."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import duckdb
import polars as pl
import pytest
from bi_project import LAST_TICK, built, cli, copy_of

import cswf
from cswf.reports.build import report_files
from cswf.reports.publish import BI_TABLES, KEEP_PARQUET_VERSIONS, publish
from cswf.settings import load_settings

DUCKDB_1_0_STORAGE = 64  # the header version DuckDB 1.0 and 1.1 write; 1.5.x reads 64..68


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built(tmp_path_factory)


def _header_version(path: Path) -> int:
    with path.open("rb") as handle:
        head = handle.read(20)
    assert head[8:12] == b"DUCK"
    return struct.unpack("<Q", head[12:20])[0]


def test_a_run_publishes_reports_and_bi_tables_as_of_its_last_tick(project: Path) -> None:
    copy = cswf.open(project)
    manifest = copy.manifest()
    reports = {p.stem for p in report_files(load_settings(project).sql_path)}
    assert set(copy.reports()) == reports
    assert {"enrollments", "transitions", "actions_outbox", "workflow_versions"} <= \
        set(copy.tables())
    assert set(copy.tables()) <= reports | set(BI_TABLES)
    assert str(copy.as_of) == LAST_TICK.replace("T", " ") + ":00"
    with duckdb.connect(str(project / "cswf.duckdb"), read_only=True) as working:
        for name, rows in manifest.select("table_name", "rows").iter_rows():
            assert working.sql(f"SELECT count(*) FROM {name}").fetchall()[0][0] == rows, name
    assert manifest.filter(pl.col("table_name") == "enrollments")["rows"][0] > 0


def test_the_copy_is_in_a_format_duckdb_1_reads_and_private(project: Path) -> None:
    bi = project / "bi"
    assert _header_version(bi / "cswf.duckdb") == DUCKDB_1_0_STORAGE
    assert _header_version(project / "cswf.duckdb") > 68  # the working file: DuckDB 2.x only
    assert os.stat(bi).st_mode & 0o777 == 0o700
    assert os.stat(bi / "cswf.duckdb").st_mode & 0o777 == 0o600
    current = (bi / "parquet" / "current").resolve()
    assert os.stat(current).st_mode & 0o777 == 0o700
    assert {oct(os.stat(f).st_mode & 0o777) for f in current.iterdir()} == {"0o600"}
    assert not [p for p in bi.iterdir() if p.name.startswith(".")]  # no partial files left


def test_parquet_holds_the_same_tables(project: Path) -> None:
    copy = cswf.open(project)
    folder = project / "bi" / "parquet" / "current"
    for name, rows in copy.manifest().select("table_name", "rows").iter_rows():
        assert pl.read_parquet(folder / f"{name}.parquet").height == rows, name
    assert pl.read_parquet(folder / "bi_manifest.parquet").height == copy.manifest().height


def test_each_publication_is_swapped_in_whole(project: Path, tmp_path: Path) -> None:
    """A reader of the old file keeps reading it; `current` flips; a few old folders stay."""
    root = copy_of(project, tmp_path)
    bi = root / "bi"
    old_inode = os.stat(bi / "cswf.duckdb").st_ino
    old_handle = (bi / "cswf.duckdb").open("rb")  # a reader in the middle of the old copy
    with duckdb.connect(str(root / "cswf.duckdb")) as con:
        con.execute("CREATE TABLE extra_report AS SELECT 42 AS answer")
        for _ in range(KEEP_PARQUET_VERSIONS + 1):
            published = publish(con, bi, ["workflow_summary", "extra_report"])
    assert published.rows["extra_report"] == 1
    assert os.stat(bi / "cswf.duckdb").st_ino != old_inode
    assert os.fstat(old_handle.fileno()).st_ino == old_inode
    assert old_handle.read(12)[8:12] == b"DUCK"  # still whole, though replaced
    old_handle.close()
    versions = sorted(p.name for p in (bi / "parquet").iterdir() if p.name != "current")
    assert len(versions) == KEEP_PARQUET_VERSIONS
    assert os.readlink(bi / "parquet" / "current") == versions[-1]
    assert cswf.open(root).report("extra_report")["answer"].to_list() == [42]


def test_the_notebook_api(project: Path) -> None:
    copy = cswf.open(project)
    summary = copy.report("workflow_summary")
    assert isinstance(summary, pl.DataFrame) and summary.height > 0
    assert copy.table("enrollments").height > 0
    with pytest.raises(KeyError, match=r"no report 'enrollments'.*workflow_summary"):
        copy.report("enrollments")  # a table, not a report
    assert copy.sql("SELECT count(*) AS n FROM transitions")["n"][0] > 0


def test_cswf_report_lists_and_prints(project: Path) -> None:
    listing = cli("report", "--root", str(project))
    assert "workflow_summary" in listing and "parquet/current/<table>.parquet" in listing
    printed = cli("report", "workflow_summary", "--rows", "3", "--root", str(project))
    assert "workflow_summary: 8 rows, as of 2026-06-09 21:00" in printed


def test_no_copy_yet_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "cswf.yaml").write_text("bi_dir: nowhere\n")
    from typer.testing import CliRunner

    from cswf.cli import app

    result = CliRunner().invoke(app, ["report", "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: no BI copy at {tmp_path / 'nowhere'}/cswf.duckdb")
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_delivery_publishes_action_insights(project: Path) -> None:
    """`cswf deliver` builds action_insights as the Dagster delivery job does, and publishes."""
    copy = cswf.open(project)
    assert "action_insights" in copy.tables()
    with duckdb.connect(str(project / "cswf.duckdb"), read_only=True) as working:
        assert working.sql("SELECT count(*) FROM action_insights").fetchall()[0][0] > 0


def test_a_tick_prints_how_many_tables_it_published(project: Path, tmp_path: Path) -> None:
    root = copy_of(project, tmp_path)
    out = cli("tick", "--as-of", LAST_TICK, "--root", str(root))
    published = cswf.open(root).tables()
    assert f"BI copy as of 2026-06-09 21:00: {len(published)} tables in " in out
