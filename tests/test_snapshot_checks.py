"""Snapshot completeness and freshness: a short, header-only, missing or stale account snapshot
stops the tick with one sentence naming the file or day and the numbers; an accepted day
passes."""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
from test_cli_errors import make_project, one_error
from test_crashes import received
from test_delivery_servers import SmtpRecorder, smtp_server
from test_ingest import ACCOUNT_ROW, account_rows, write_csv, write_text
from test_run_ticks import dump, new_project, run_book

from cswf.clitools.errors import explain
from cswf.demo.generate import generate_book
from cswf.ingest import ingest_landing, snapshot_problems
from cswf.ingest.checks import incomplete_snapshots, stale_snapshots
from cswf.project import BlockedTick, require_clean_snapshots
from cswf.settings import Settings, Snapshots

HEADER = ",".join(ACCOUNT_ROW) + "\n"  # every column, no row


@pytest.fixture()
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(":memory:")


def land(landing: Path, day: str, accounts: int) -> None:
    rows = account_rows(*({"snapshot_date": day, "account_id": f"ACC-{i}"}
                          for i in range(accounts)))
    write_csv(landing, f"accounts/accounts_{day}.csv", rows)


def test_a_day_forty_percent_short_is_blocked(con, tmp_path: Path) -> None:
    land(tmp_path, "2026-05-01", 10)
    land(tmp_path, "2026-05-02", 6)
    land(tmp_path, "2026-05-03", 6)
    ingest_landing(con, tmp_path)

    assert snapshot_problems(con) == [
        "accounts/accounts_2026-05-02.csv: 6 account rows on 2026-05-02, 40% fewer than the 10 "
        "on 2026-05-01 (at most 20% fewer may pass)"]


def test_a_day_twenty_percent_short_passes(con, tmp_path: Path) -> None:
    land(tmp_path, "2026-05-01", 10)
    land(tmp_path, "2026-05-02", 8)
    ingest_landing(con, tmp_path)
    assert snapshot_problems(con) == []


def test_a_header_only_file_is_blocked(con, tmp_path: Path) -> None:
    land(tmp_path, "2026-05-01", 3)
    write_text(tmp_path, "accounts/accounts_2026-05-02.csv", HEADER)
    land(tmp_path, "2026-05-03", 3)
    ingest_landing(con, tmp_path)

    assert snapshot_problems(con) == [
        "accounts/accounts_2026-05-02.csv: a header and no rows (the account snapshot of "
        "2026-05-02)"]


def test_a_missing_day_is_blocked(con, tmp_path: Path) -> None:
    for day in ("2026-05-01", "2026-05-02", "2026-05-04"):
        land(tmp_path, day, 3)
    ingest_landing(con, tmp_path)

    assert snapshot_problems(con) == [
        "accounts: no snapshot for 2026-05-03 (landed: 2026-05-01 to 2026-05-04)"]


def test_a_stale_snapshot_is_blocked_at_the_tick(con, tmp_path: Path) -> None:
    land(tmp_path, "2026-05-01", 3)
    land(tmp_path, "2026-05-02", 3)
    ingest_landing(con, tmp_path)
    ticks = [datetime(2026, 5, 4, 21), datetime(2026, 5, 5, 3), datetime(2026, 5, 5, 6)]

    assert stale_snapshots(con, ticks[:1]) == []  # two days old: still fine
    assert stale_snapshots(con, ticks) == [
        "accounts: at tick 2026-05-05 03:00, the newest account snapshot is 2026-05-02, 3 days "
        "old (at most 2 may pass) (and 1 later tick(s))"]


def test_accepted_days_pass(con, tmp_path: Path) -> None:
    land(tmp_path, "2026-05-01", 10)
    land(tmp_path, "2026-05-02", 6)  # a known clean-up: 4 accounts merged away
    write_text(tmp_path, "accounts/accounts_2026-05-03.csv", HEADER)
    land(tmp_path, "2026-05-05", 6)
    ingest_landing(con, tmp_path)
    rules = Snapshots(accept=[date(2026, 5, 2), date(2026, 5, 3), date(2026, 5, 4),
                              date(2026, 5, 8)])

    assert incomplete_snapshots(con, rules) == []
    assert stale_snapshots(con, [datetime(2026, 5, 8, 3)], rules) == []
    assert stale_snapshots(con, [datetime(2026, 5, 9, 3)], rules) == [
        "accounts: at tick 2026-05-09 03:00, the newest account snapshot is 2026-05-05, 4 days "
        "old (at most 2 may pass)"]


def test_a_blocked_tick_says_which_file_in_one_line(con, tmp_path: Path) -> None:
    land(tmp_path, "2026-05-01", 10)
    land(tmp_path, "2026-05-02", 6)
    ingest_landing(con, tmp_path)

    with pytest.raises(BlockedTick) as blocked:
        require_clean_snapshots(con, Settings(root=tmp_path), [datetime(2026, 5, 2, 3)])
    assert explain(blocked.value).line() == (
        "landing files: snapshots failed their checks; no tick ran: "
        "accounts/accounts_2026-05-02.csv: 6 account rows on 2026-05-02, 40% fewer than the 10 "
        "on 2026-05-01 (at most 20% fewer may pass) — fix or remove the files named, then run "
        "again (a known change: list its day under snapshots.accept in cswf.yaml)")
    accepting = Settings(root=tmp_path, snapshots={"accept": ["2026-05-02"]})
    require_clean_snapshots(con, accepting, [datetime(2026, 5, 2, 3)])  # goes through


# -- scenario 14: late and out-of-order days, end to end on a database file ---------------------


def test_days_landed_out_of_order_block_until_the_late_day_arrives_then_equal_in_order(
        tmp_path: Path) -> None:
    """Issue #10, scenario 14. The book's later days land before 2026-05-30 (its files of every
    object are late): the missing-day check blocks the run, nothing is ticked or sent. When the
    late day lands, the same run goes through, and every table of the database file and every
    email equal those of the run that had all the days landed in order."""
    book = tmp_path / "book"
    generate_book(book, accounts=12, days=35, start=date(2026, 5, 1), contacts=False)
    late = sorted(book.rglob("*_2026-05-30.parquet"))
    assert len(late) == 3  # accounts, opportunities, usage
    recorder = SmtpRecorder()
    with smtp_server(recorder) as port:
        in_order = new_project(tmp_path / "in_order", book, port)
        run_book(in_order)
        expected, messages = dump(in_order), received(recorder)
        assert len(expected["actions_outbox"]) >= 20 and len(messages) >= 10
        recorder.messages.clear()

        landing = tmp_path / "landing"
        shutil.copytree(book, landing)
        waiting = tmp_path / "not_yet_landed"
        waiting.mkdir()
        for path in late:
            shutil.move(landing / path.relative_to(book), waiting / path.name)
        root = new_project(tmp_path / "out_of_order", landing, port)
        with pytest.raises(BlockedTick) as blocked:
            run_book(root)
        assert "accounts: no snapshot for 2026-05-30" in str(blocked.value)
        with duckdb.connect(str(root / "cswf.duckdb"), read_only=True) as con:
            assert con.sql("SELECT count(*) FROM tick_log").fetchall() == [(0,)]
            assert con.sql("SELECT count(*) FROM actions_outbox").fetchall() == [(0,)]
        assert recorder.messages == []

        for path in late:  # the late day arrives
            shutil.move(waiting / path.name, landing / path.relative_to(book))
        run_book(root)
    assert dump(root) == expected
    assert received(recorder) == messages


def test_problems_dated_after_a_tick_do_not_block_it(con, tmp_path: Path) -> None:
    """A bad future file (a duplicate key, a day missing before it) blocks the ticks that can
    see it, not the re-run of an earlier tick."""
    land(tmp_path, "2026-05-01", 3)
    land(tmp_path, "2026-05-02", 3)
    rows = account_rows(*({"snapshot_date": "2026-05-04", "account_id": f"ACC-{i}"}
                          for i in (0, 1, 2, 0)))
    write_csv(tmp_path, "accounts/accounts_2026-05-04.csv", rows)
    ingest_landing(con, tmp_path)
    settings = Settings(root=tmp_path)

    require_clean_snapshots(con, settings, [datetime(2026, 5, 2, 21)])  # goes through
    with pytest.raises(BlockedTick) as blocked:
        require_clean_snapshots(con, settings, [datetime(2026, 5, 4, 0)])
    assert str(blocked.value).splitlines()[1:] == [
        "- raw_accounts: 1 duplicate (snapshot_date, account_id) keys, e.g. 2026-05-04 ACC-0 x2 "
        "in accounts/accounts_2026-05-04.csv: land a corrected file under the same name "
        "(deleting a file leaves its rows in place)",
        "- accounts: no snapshot for 2026-05-03 (landed: 2026-05-01 to 2026-05-04)"]


# -- when max_age_days bites from the CLI ---------------------------------------------------------


def test_a_file_holding_an_older_snapshot_is_stale_at_its_ticks(tmp_path: Path) -> None:
    """A run's ticks end with the newest account file's *name* (accounts_2026-06-05.csv: the
    tick partitions), freshness is the newest `snapshot_date` *inside* the files. An export that
    ran on 06-05 but sent the snapshot of 06-02 (its source stopped refreshing) lets ticks of
    06-05 run against a 3-day-old snapshot: max_age_days stops them, nothing is ticked. (A
    newer file of the same days would be a duplicate key, a day without file a missing day.)"""
    root = make_project(tmp_path)  # accounts_2026-06-01.csv, two accounts
    rows = account_rows(*({"snapshot_date": "2026-06-02", "account_id": f"a{i}"}
                          for i in (1, 2)))
    write_csv(root / "data/landing", "accounts/accounts_2026-06-05.csv", rows)

    code, line = one_error(["run", "--start", "2026-06-05T03:00", "--end", "2026-06-05T06:00",
                            "--root", str(root)])
    assert code == 1
    assert line.startswith(
        "error: check snapshots_fresh on account_facts failed: accounts: at tick 2026-06-05 "
        "03:00, the newest account snapshot is 2026-06-02, 3 days old (at most 2 may pass) "
        "(and 1 later tick(s)) — run ")
    assert " stopped; its event log was not kept: set DAGSTER_HOME=" in line
    with duckdb.connect(str(root / "data/cswf.duckdb"), read_only=True) as con:
        tables = {name for (name,) in con.execute("SHOW TABLES").fetchall()}
    assert "tick_log" not in tables  # no tick was evaluated
