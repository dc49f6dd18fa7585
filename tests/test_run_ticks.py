"""Scenario 6 of issue #10: the run's outcome depends on its inputs, not on the order of their
rows nor on how many threads Polars uses. The same small book (the crash tests' project, a
DuckDB file and a real SMTP server on 127.0.0.1) is run

- with every landing file's rows shuffled, and the stored facts' rows shuffled before the
  ticks read them, and
- in child processes with `POLARS_MAX_THREADS=1` and with 8 threads,

and every table of the database file (sorted `SELECT *`) and every email equal the plain run's.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
from test_crashes import END, NOW, SRC, START, make_project, received
from test_delivery_servers import SmtpRecorder, smtp_server

from cswf import project as stages
from cswf.demo.generate import generate_book
from cswf.settings import load_settings
from cswf.store.warehouse import connect

# The landing files themselves differ when their rows are shuffled: their bookkeeping is not
# compared, everything the engine derived from them is.
INPUT_TABLES = {"ingested_files"}

Dump = dict[str, list[tuple]]

# A child process running the stages in order, as `run_book` does in this process.
_CHILD = """
import sys
from datetime import datetime
from pathlib import Path

import polars as pl

from cswf import project
from cswf.settings import load_settings
from cswf.store.warehouse import connect

settings = load_settings(Path(sys.argv[1]))
start, end, now = (datetime.fromisoformat(a) for a in sys.argv[2:5])
ticks = project.ticks_in(settings, start, end)
with connect(settings.database_path) as con:
    project.ingest(con, settings, ticks[-1])
    project.store_facts(con, settings, ticks)
    project.run_ticks(con, settings, project.load_workflows(settings), ticks)
    project.deliver_outbox(con, settings, now)
print("threads", pl.thread_pool_size())
"""


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("book") / "landing"
    generate_book(folder, accounts=20, days=35, start=date(2026, 5, 1), contacts=False)
    return folder


def new_project(root: Path, landing: Path, port: int) -> Path:
    root.mkdir()
    return make_project(root, landing, port)


def run_book(root: Path, *, shuffle_facts: bool = False) -> None:
    settings = load_settings(root)
    ticks = stages.ticks_in(settings, START, END)
    with connect(settings.database_path) as con:
        stages.ingest(con, settings, ticks[-1])
        stages.store_facts(con, settings, ticks)
        if shuffle_facts:  # the ticks read the stored facts in another row order
            con.execute("CREATE TEMP TABLE shuffled AS SELECT * FROM account_facts")
            con.execute("DELETE FROM account_facts")
            con.execute("INSERT INTO account_facts SELECT * FROM shuffled "
                        "ORDER BY hash(participant_id, as_of) DESC")
        stages.run_ticks(con, settings, stages.load_workflows(settings), ticks)
        stages.deliver_outbox(con, settings, NOW)


def dump(root: Path, skip: set[str] = frozenset()) -> Dump:
    """Every table of the database file, sorted."""
    with duckdb.connect(str(root / "cswf.duckdb"), read_only=True) as con:
        tables = [t for t, in con.sql("SELECT table_name FROM information_schema.tables "
                                      "WHERE table_schema = 'main' ORDER BY 1").fetchall()]
        return {t: con.sql(f"FROM {t} ORDER BY ALL").fetchall()
                for t in tables if t not in skip}


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, landing: Path
          ) -> tuple[Dump, list[tuple[str, str]]]:
    """The run with the rows as the book wrote them, in this process (default threads)."""
    recorder = SmtpRecorder()
    with smtp_server(recorder) as port:
        root = make_project(tmp_path_factory.mktemp("plain"), landing, port)
        run_book(root)
    tables = dump(root)
    assert len(tables["actions_outbox"]) >= 30 and len(tables["transitions"]) >= 30
    assert len(recorder.messages) >= 20
    return tables, received(recorder)


def shuffled_copy(landing: Path, to: Path, seed: int) -> Path:
    """The landing folder with each file's rows in a random order."""
    shutil.copytree(landing, to)
    rng = random.Random(seed)
    files = sorted(to.rglob("*.parquet"))
    assert len(files) == 105
    for path in files:
        frame = pl.read_parquet(path)
        order = list(range(frame.height))
        rng.shuffle(order)
        frame[order].write_parquet(path)
    return to


def test_shuffled_landing_rows_and_facts_give_the_same_tables_and_emails(
        tmp_path: Path, landing: Path, smtp: tuple[SmtpRecorder, int], plain) -> None:
    recorder, port = smtp
    shuffled = shuffled_copy(landing, tmp_path / "landing", seed=6)
    first = pl.read_parquet(next((landing / "accounts").iterdir()))
    again = pl.read_parquet(next((shuffled / "accounts").iterdir()))
    assert first["account_id"].to_list() != again["account_id"].to_list()  # really shuffled
    assert sorted(first.rows()) == sorted(again.rows())
    root = new_project(tmp_path / "project", shuffled, port)
    run_book(root, shuffle_facts=True)
    tables, messages = plain
    assert dump(root, INPUT_TABLES) == {t: rows for t, rows in tables.items()
                                        if t not in INPUT_TABLES}
    assert received(recorder) == messages


def test_one_polars_thread_and_many_give_the_same_tables_and_emails(
        tmp_path: Path, landing: Path, smtp: tuple[SmtpRecorder, int], plain) -> None:
    recorder, port = smtp
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    children = {}
    for threads in (1, 8):
        root = new_project(tmp_path / f"threads{threads}", landing, port)
        children[threads] = (root, subprocess.Popen(
            [sys.executable, str(script), str(root), START.isoformat(), END.isoformat(),
             NOW.isoformat()],
            env={**os.environ, "PYTHONPATH": str(SRC), "POLARS_MAX_THREADS": str(threads)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    tables, messages = plain
    for threads, (root, child) in children.items():
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
        assert out.split() == ["threads", str(threads)]
        assert dump(root) == tables, f"POLARS_MAX_THREADS={threads}"
    # Both runs delivered to the one server: each email twice, once per run.
    assert received(recorder) == sorted(messages * 2)
