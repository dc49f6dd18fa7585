"""What the pipeline writes is not world-readable: files 0600, folders 0700, whatever the
caller's umask (the database and its .wal, the BI copy, the CRM exports, the dry-run previews)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from test_delivery_servers import NOW, add_actions, email_row, make_config, task_row, webhook_row
from typer.testing import CliRunner

from cswf.cli import app
from cswf.delivery import deliver
from cswf.reports.publish import publish
from cswf.store import warehouse
from cswf.store.tables import ensure_engine_tables


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A caller whose umask lets everybody read (restored after the test)."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes(root: Path) -> dict[str, str]:
    """Every file and folder under `root` (itself included) → its permission bits, in octal."""
    found = {".": oct(os.stat(root).st_mode & 0o777)}
    for path in root.rglob("*"):
        if not path.is_symlink():
            found[str(path.relative_to(root))] = oct(os.stat(path).st_mode & 0o777)
    return found


def leaks(root: Path) -> dict[str, str]:
    """What under `root` has group or other bits."""
    return {p: m for p, m in modes(root).items() if int(m, 8) & 0o077}


def test_the_database_and_its_wal_are_private(tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "data" / "cswf.duckdb"
    con = warehouse.connect(path)  # sets the umask: DuckDB creates the .wal later, itself
    con.execute("SET checkpoint_threshold = '1GB'")  # keep the .wal
    ensure_engine_tables(con)
    con.execute("CREATE TABLE t AS SELECT 1 AS x")
    assert Path(f"{path}.wal").exists()
    assert leaks(tmp_path / "data") == {}, modes(tmp_path / "data")
    con.close()
    os.chmod(path, 0o644)  # left readable by an older version: fixed when opened
    warehouse.connect(path).close()
    assert modes(tmp_path / "data") == {".": "0o700", "cswf.duckdb": "0o600"}


def test_previews_exports_and_the_bi_copy_are_private_with_a_loose_umask(
    tmp_path: Path, loose_umask: None
) -> None:
    con = duckdb.connect()
    ensure_engine_tables(con)
    add_actions(con, [email_row(0, "ann@customer.test"), webhook_row(1), task_row(2)])
    preview = make_config(tmp_path, dry_run=True)
    assert deliver(con, {}, preview, NOW).outcomes["previewed"] == 3
    assert sorted(p.suffix for p in (tmp_path / "preview").iterdir()) == [".eml", ".json",
                                                                           ".json"]
    con = duckdb.connect()
    ensure_engine_tables(con)
    add_actions(con, [task_row(0)])
    assert deliver(con, {}, make_config(tmp_path), NOW).outcomes["sent"] == 1
    # A table with no rows gets no file (delivery/exports.py): only the tasks are exported.
    assert {p.name for p in (tmp_path / "exports").iterdir()} == {"crm_tasks.parquet"}
    publish(con, tmp_path / "bi", ["crm_tasks"])
    assert len(modes(tmp_path / "bi")) > 4
    assert leaks(tmp_path) == {}, modes(tmp_path)


def test_a_cswf_command_makes_everything_it_writes_private(tmp_path: Path,
                                                           loose_umask: None) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "cswf.yaml").write_text(
        "database: data/cswf.duckdb\ntick_start: '2026-05-31 00:00'\n"
        "delivery: {dry_run: true, dry_run_dir: data/outbox_preview, quiet_hours: null}\n")
    (root / "data").mkdir()
    with duckdb.connect(str(root / "data" / "cswf.duckdb")) as con:  # an outbox, by hand
        ensure_engine_tables(con)
        add_actions(con, [email_row(0, "ann@customer.test"), task_row(1)])
    assert oct(os.stat(root / "data" / "cswf.duckdb").st_mode & 0o777) == "0o644"
    result = CliRunner().invoke(app, ["deliver", "--now", "2026-06-02T14:00", "--root",
                                      str(root)])
    assert result.exit_code == 0, result.output
    assert os.umask(0o022) == 0o077  # the command set the process umask
    assert sorted(p.suffix for p in (root / "data" / "outbox_preview").iterdir()) == [
        ".eml", ".json"]
    os.chmod(root / "data", 0o700)  # made by the test above, before cswf ran
    assert leaks(root / "data") == {}, modes(root / "data")
