"""Deploy-request files in the landing folder: loaded once, checked whole, honoured next tick."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from cswf.ingest import ingest_landing
from cswf.ingest.deploy_requests import ingest_deploy_requests
from cswf.ingest.deploys import load_deploys, request_deploys
from cswf.ingest.landing import ingest_all

NOW = datetime(2026, 7, 1, 2, 15)
WORKFLOWS = ["health_alert", "renewal_preparation"]
GOOD = "deploy_requests/push_2026-07-01.csv"
BAD = "deploy_requests/push_2026-07-02.csv"


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(":memory:")
    yield connection
    connection.close()


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    return tmp_path / "landing"


def write(landing: Path, rel: str, text: str) -> Path:
    path = landing / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def requests(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "SELECT workflow, participant_id, requested_by, requested_at FROM deploy_requests "
        "ORDER BY participant_id"
    ).fetchall()


def test_a_good_file_lands_once_even_if_ingested_twice(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    write(landing, GOOD, "workflow,participant_id,requested_by\n"
                         "health_alert,ACC-1,maria\n"
                         "health_alert, ACC-2 ,\n")

    first = ingest_deploy_requests(con, landing, NOW, WORKFLOWS)
    second = ingest_deploy_requests(con, landing, datetime(2026, 7, 2), WORKFLOWS)

    assert (first.files_loaded, first.rows_loaded, first.requests_stored) == ([GOOD], 2, 2)
    assert (second.files_loaded, second.files_skipped_unchanged) == ([], [GOOD])
    assert second.requests_stored == 0
    assert requests(con) == [
        ("health_alert", "ACC-1", "maria", NOW),
        ("health_alert", "ACC-2", GOOD, NOW),  # spaces trimmed; no requested_by: the file
    ]
    assert con.execute("SELECT source_file, object, row_count FROM ingested_files").fetchall() == [
        (GOOD, "deploy_requests", 2)
    ]


def test_requested_at_defaults_to_now_and_is_honoured_at_the_next_tick(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    write(landing, GOOD, "workflow,participant_id,requested_at\n"
                         "health_alert,ACC-1,\n"
                         "health_alert,ACC-2,2026-07-01 01:00\n"
                         "health_alert,ACC-3,2026-07-01T05:00:00+02:00\n")

    ingest_deploy_requests(con, landing, NOW)

    assert [(p, at) for _, p, _, at in requests(con)] == [
        ("ACC-1", NOW),
        ("ACC-2", datetime(2026, 7, 1, 1, 0)),
        ("ACC-3", datetime(2026, 7, 1, 3, 0)),  # the offset is applied: times are UTC
    ]
    tick = load_deploys(con, datetime(2026, 7, 1, 0), datetime(2026, 7, 1, 3))
    assert tick["participant_id"].to_list() == ["ACC-2", "ACC-1", "ACC-3"]


def test_an_aware_now_is_taken_as_utc(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    write(landing, GOOD, "workflow,participant_id\nhealth_alert,ACC-1\n")
    ingest_deploy_requests(con, landing, NOW.replace(tzinfo=UTC))
    assert requests(con)[0][3] == NOW


def test_a_bad_file_is_rejected_whole_naming_file_row_and_column(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    write(landing, GOOD, "workflow,participant_id\nhealth_alert,ACC-1\n")
    write(landing, BAD, "workflow,participant_id,requested_at\n"
                        "health_alert,ACC-2,\n"
                        "health_alert,,\n"
                        "health_alert,   ,\n"
                        ",ACC-4,soon\n")

    report = ingest_deploy_requests(con, landing, NOW)

    reasons = [
        f"{BAD}: row 4: column 'workflow': required value is empty",
        f"{BAD}: row 2: column 'participant_id': required value is empty "
        "(1 more bad rows in this column)",
        f"{BAD}: row 4: column 'requested_at': could not convert 'soon' to TIMESTAMP",
    ]
    assert report.files_loaded == [GOOD]
    assert report.files_rejected == [(BAD, reason) for reason in reasons]
    assert [p for _, p, _, _ in requests(con)] == ["ACC-1"]  # nothing of the bad file
    assert con.execute(
        "SELECT source_file, object, reason FROM ingest_rejections ORDER BY rowid"
    ).fetchall() == [(BAD, "deploy_requests", reason) for reason in reasons]


def test_missing_column_and_unknown_workflow(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    write(landing, GOOD, "workflow,account\nhealth_alert,ACC-1\n")
    write(landing, BAD, "workflow,participant_id\nhealth_alert,ACC-1\nrenewal_prep,ACC-2\n")

    report = ingest_deploy_requests(con, landing, NOW, WORKFLOWS)

    assert report.files_rejected == [
        (GOOD, f"{GOOD}: missing required column 'participant_id'"),
        (BAD, f"{BAD}: row 2: column 'workflow': 'renewal_prep' is not a known workflow "
              "(known: health_alert, renewal_preparation)"),
    ]
    assert requests(con) == []


def test_without_known_workflows_any_name_is_stored(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    write(landing, GOOD, "workflow,participant_id\nrenewal_prep,ACC-2\n")
    assert ingest_deploy_requests(con, landing, NOW).requests_stored == 1


def test_rejection_stays_until_the_file_is_fixed_and_survives_the_snapshot_ingest(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    path = write(landing, BAD, "workflow,participant_id\nhealth_alert,\n")
    ingest_deploy_requests(con, landing, NOW)
    again = ingest_deploy_requests(con, landing, NOW)
    ingest_landing(con, landing)  # the snapshot ingest keeps other folders' rejections

    assert again.files_skipped_unchanged == [BAD]
    assert con.execute("SELECT count(*) FROM ingest_rejections").fetchall() == [(1,)]

    path.write_text("workflow,participant_id\nhealth_alert,ACC-9\n")
    fixed = ingest_deploy_requests(con, landing, NOW)

    assert fixed.files_loaded == [BAD]
    assert con.execute("SELECT count(*) FROM ingest_rejections").fetchall() == [(0,)]
    assert [p for _, p, _, _ in requests(con)] == ["ACC-9"]


def test_parquet_with_native_types_and_a_zone(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    path = landing / "deploy_requests" / "push.parquet"
    path.parent.mkdir(parents=True)
    pl.DataFrame({
        "Workflow ": ["health_alert"],  # names are matched trimmed and lower-cased
        "participant_id": ["ACC-1"],
        "requested_at": [datetime(2026, 7, 1, 4, 0)],
    }).with_columns(pl.col("requested_at").dt.replace_time_zone("Europe/Berlin")).write_parquet(path)

    report = ingest_deploy_requests(con, landing, NOW)

    assert report.files_loaded == ["deploy_requests/push.parquet"]
    assert requests(con) == [
        ("health_alert", "ACC-1", "deploy_requests/push.parquet", datetime(2026, 7, 1, 2, 0))
    ]


def test_same_request_from_the_cli_and_a_file_is_stored_once(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    request_deploys(con, "health_alert", ["ACC-1"], "cli", NOW)
    write(landing, GOOD, "workflow,participant_id\nhealth_alert,ACC-1\nhealth_alert,ACC-1\n")

    report = ingest_deploy_requests(con, landing, NOW)

    assert (report.rows_loaded, report.requests_stored) == (2, 0)
    assert requests(con) == [("health_alert", "ACC-1", "cli", NOW)]


def test_hidden_and_other_files_are_ignored(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    write(landing, "deploy_requests/.push.csv", "workflow,participant_id\nhealth_alert,A\n")
    write(landing, "deploy_requests/readme.txt", "drop files here\n")
    report = ingest_deploy_requests(con, landing, NOW)
    assert report.files_loaded == report.files_skipped_unchanged == report.files_rejected == []
    assert ingest_deploy_requests(con, landing / "missing", NOW).files_loaded == []


def test_a_rejected_request_file_says_what_to_do(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    write(landing, BAD, "workflow,participant_id,requested_at\nhealth_alert,ACC-1,soon\n")

    assert ingest_all(con, landing, NOW).lines()[-1] == (
        f"rejected: {BAD}: row 1: column 'requested_at': could not convert 'soon' to TIMESTAMP; "
        "no request of the file was stored: fix it and land it again under the same name")
