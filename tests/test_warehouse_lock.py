"""A working database held by another process: one line naming it and what to do, and a bounded
`--wait` that goes on once the holder lets go."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
from test_crashes import SRC, received
from test_delivery_servers import SmtpRecorder, smtp_server
from test_run_ticks import new_project
from typer.testing import CliRunner

from cswf import project as stages
from cswf.cli import app
from cswf.demo.generate import generate_book
from cswf.settings import load_settings
from cswf.store.lock import Holder, holder_of, retry_while_locked
from cswf.store.warehouse import WarehouseLocked, connect

runner = CliRunner()
HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold(path: Path, seconds: float, *, write: bool = False) -> subprocess.Popen[str]:
    """Another process (a BI reader, as the old README advised) holding `path` read-only, or
    (`write`) a run holding it to write."""
    hold = HOLD.replace("read_only=True", "read_only=False") if write else HOLD
    process = subprocess.Popen([sys.executable, "-c", hold, str(path), str(seconds)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "holding"
    return process


@pytest.fixture()
def database(tmp_path: Path) -> Path:
    path = tmp_path / "cswf.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    return path


def test_the_lock_error_names_the_holder() -> None:
    error = duckdb.IOException(
        'IO Error: Could not set lock on file "/x/cswf.duckdb": Conflicting lock is held in '
        "/usr/bin/python3.11 (PID 4000000). See also https://duckdb.org/docs")
    assert holder_of(error) == Holder(4_000_000, "python3.11")  # no such process: its program
    assert holder_of(duckdb.IOException("IO Error: disk full")) is None


def test_a_held_database_is_one_line_naming_the_process(database: Path) -> None:
    holder = _hold(database, 30)
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseLocked) as caught:
            connect(database)
        assert time.monotonic() - started < 1  # no silent retrying without --wait
        assert caught.value.holder.pid == holder.pid
        assert f"PID {holder.pid} (-c " in str(caught.value) or \
            f"PID {holder.pid} (python" in str(caught.value)
        (database.parent / "cswf.yaml").write_text(f"database: {database}\n")
        result = runner.invoke(app, ["reports", "--root", str(database.parent)])
        assert result.exit_code == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"error: {database}: the database is in use by PID "
                                   f"{holder.pid}")
        assert "`cswf --wait SECONDS <command>`" in lines[0]
        assert "Traceback" not in result.output
    finally:
        holder.kill()
        holder.wait()


def test_wait_is_bounded_and_goes_on_when_the_holder_lets_go(database: Path) -> None:
    holder = _hold(database, 1.0)
    heard: list[str] = []
    try:
        started = time.monotonic()
        con = connect(database, wait=20, on_wait=heard.append)
        waited = time.monotonic() - started
        con.close()
    finally:
        holder.wait()
    assert 0.5 < waited < 10
    assert heard[0].startswith(f"{database} is in use by PID {holder.pid}")
    assert "waiting up to 20s" in heard[0] and "is free after" in heard[1]


def test_wait_gives_up_after_its_time(database: Path) -> None:
    holder = _hold(database, 30)
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseLocked, match=r"is still in use by .* after waiting 1s"):
            retry_while_locked(database, lambda: duckdb.connect(str(database)), wait=1.2)
        assert 1.0 < time.monotonic() - started < 3
    finally:
        holder.kill()
        holder.wait()


def test_the_cli_waits_when_asked(database: Path) -> None:
    (database.parent / "cswf.yaml").write_text(
        f"database: {database}\nbi_dir: {database.parent / 'bi'}\n")
    holder = _hold(database, 1.0)
    try:
        result = runner.invoke(app, ["--wait", "30", "report", "--publish", "--root",
                                     str(database.parent)], env={"COLUMNS": "200"})
    finally:
        holder.wait()
    assert result.exit_code == 0, result.output
    assert f"is in use by PID {holder.pid}" in result.stderr
    assert "BI copy before any tick: 0 tables" in result.stdout
    assert oct(os.stat(database.parent / "bi").st_mode & 0o777) == "0o700"


def test_a_dagster_step_that_waits_for_the_lock_says_so_in_its_log(
    database: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from dagster_duckdb import DuckDBResource

    from cswf.defs.resources import open_warehouse

    holder = _hold(database, 2)
    try:
        with caplog.at_level("WARNING"), \
                open_warehouse(DuckDBResource(database=str(database))) as con:
            assert con.execute("SELECT x FROM t").fetchall() == [(1,)]
    finally:
        holder.wait()
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said and said[0].startswith(f"{database} is in use by PID {holder.pid}")
    assert "waiting up to 600s" in said[0]


def test_specs_are_checked_without_the_lifecycle_while_a_run_holds_the_database(
        database: Path) -> None:
    """A run's spec check reads the lifecycle of running workflows from the database if it can;
    held by another process it goes on (the tick checks again under its own lock) rather than
    failing the run: the second of two runs started together used to stop here."""
    (database.parent / "cswf.yaml").write_text(f"database: {database}\n")
    (database.parent / "workflow_specs").mkdir()
    holder = _hold(database, 30, write=True)
    try:
        assert stages.check_specs(load_settings(database.parent)).errors == []
    finally:
        holder.kill()
        holder.wait()


def test_two_runs_of_one_tick_at_once_write_it_once_and_deliver_each_email_once(
        tmp_path: Path) -> None:
    """Issue #10, scenario 9: two `cswf --wait 120 tick --as-of ...` processes started together on
    one database file. One writes the tick; the other waits for the database, then finds the
    tick `unchanged`. The outbox holds each action once, and delivery afterwards (twice) sends
    each email once to a real SMTP server."""
    landing = tmp_path / "book"
    generate_book(landing, accounts=12, days=35, start=date(2026, 5, 1), contacts=False)
    as_of = datetime(2026, 5, 31, 3)
    recorder = SmtpRecorder()
    with smtp_server(recorder) as port:
        root = new_project(tmp_path / "project", landing, port)
        command = [sys.executable, "-m", "cswf.cli", "--wait", "120", "tick", "--as-of",
                   as_of.isoformat(), "--root", str(root)]
        env = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "200"}
        runs = [subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE) for _ in range(2)]
        outputs = [run.communicate(timeout=300) for run in runs]
        for run, (_, err) in zip(runs, outputs, strict=True):
            assert run.returncode == 0, err
        summaries = sorted(re.sub(r" in [0-9.]+s:", ":", line) for out, _ in outputs
                           for line in out.splitlines() if " ticks in " in line)
        assert summaries == [
            "1 ticks: 0 written, 1 unchanged, 0 rewritten; 12 actions, 24 transitions",
            "1 ticks: 1 written, 0 unchanged, 0 rewritten; 12 actions, 24 transitions"]
        with duckdb.connect(str(root / "cswf.duckdb"), read_only=True) as con:
            assert con.sql("SELECT as_of FROM tick_log").fetchall() == [(as_of,)]
            assert con.sql("SELECT count(*), count(DISTINCT action_id) FROM actions_outbox"
                           ).fetchall() == [(12, 12)]
            (emails,), = con.sql("SELECT count(*) FROM actions_outbox "
                                 "WHERE action_type = 'email'").fetchall()
        assert emails > 0
        settings = load_settings(root)
        for hour in (7, 8):  # delivery afterwards, and once more
            with connect(settings.database_path) as con:
                stages.deliver_outbox(con, settings, datetime(2026, 5, 31, hour))
    assert len(recorder.messages) == emails == len(set(received(recorder)))
