"""Data tests: each kind passing and failing on small hand-written tables; landing tables'
tests from the contract; per-tick filters; a test that cannot run says why."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
from test_facts import insert, snapshot

from cswf.ingest import ensure_tables
from cswf.ingest.contract import landing_objects
from cswf.quality import declared_tests, run_data_tests
from cswf.sqlmodels import ModelError

T1, T2 = datetime(2026, 5, 1), datetime(2026, 5, 2)
YAML = """version: 2
models:
  - name: scores
    description: One score per (as_of, participant_id).
    data_tests:
      - unique_combination_of_columns:
          arguments:
            combination_of_columns: [as_of, participant_id]
    columns:
      - name: as_of
        description: The tick
        data_type: TIMESTAMP
        data_tests: [not_null]
      - name: participant_id
        description: Who
        data_type: VARCHAR
        data_tests: [not_null]
      - name: grade
        description: A, B or C
        data_type: VARCHAR
        data_tests:
          - accepted_values:
              arguments:
                values: [A, B, C]
      - name: badge
        description: Unique when set
        data_type: INTEGER
        data_tests:
          - unique:
              config:
                severity: warn
                where: "grade <> 'C'"
"""
SCORES = [  # as_of, participant_id, grade, badge
    (T1, "p1", "A", 1),
    (T1, "p2", "B", 2),
    (T2, "p1", "A", 1),
    (T2, "p2", "Z", 7),
    (T2, "p2", "C", 7),
    (T2, None, "Z", None),
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "sql" / "facts").mkdir(parents=True)
    (tmp_path / "sql" / "facts" / "scores.sql").write_text(
        "SELECT as_of, participant_id, grade, badge FROM ticks")
    (tmp_path / "sql" / "facts" / "scores.yml").write_text(YAML)
    return tmp_path / "sql"


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(":memory:")
    connection.execute("CREATE TABLE scores (as_of TIMESTAMP, participant_id VARCHAR, "
                       "grade VARCHAR, badge INTEGER)").fetchall()
    connection.executemany("INSERT INTO scores VALUES (?, ?, ?, ?)", SCORES)
    return connection


def results(con: duckdb.DuckDBPyConnection, project: Path, **kwargs: object) -> dict:
    return {r.name: r for r in run_data_tests(con, "scores", sql_dir=project, **kwargs)}


def test_declared_tests_are_listed_without_running(project: Path) -> None:
    tests = declared_tests("scores", project)
    assert [(t.name, t.description, t.severity) for t in tests] == [
        ("not_null_scores_as_of", "as_of is never NULL", "error"),
        ("not_null_scores_participant_id", "participant_id is never NULL", "error"),
        ("accepted_values_scores_grade", "grade is one of A, B, C (or NULL)", "error"),
        ("unique_scores_badge", "badge is unique (warning only), where grade <> 'C'", "warn"),
        ("unique_combination_of_columns_scores_as_of__participant_id",
         "one row per (as_of, participant_id)", "error"),
    ]
    assert tests[2].column == "grade" and tests[4].column is None
    assert tests[4].columns == ("as_of", "participant_id")


def test_each_kind_passes_on_good_rows(con: duckdb.DuckDBPyConnection, project: Path) -> None:
    found = results(con, project, where="as_of = $t", params={"t": T1})
    assert all(r.passed and r.failing == 0 and r.samples == () for r in found.values())


def test_each_kind_fails_on_bad_rows(con: duckdb.DuckDBPyConnection, project: Path) -> None:
    found = results(con, project, where="as_of = $t", params={"t": T2})
    assert found["not_null_scores_as_of"].passed
    nulls = found["not_null_scores_participant_id"]
    assert (nulls.passed, nulls.failing) == (False, 1)
    assert nulls.samples == ({"as_of": T2, "participant_id": None},)  # the key beside the NULL
    grades = found["accepted_values_scores_grade"]
    assert (grades.failing, grades.samples) == (1, ({"value": "Z", "n_records": 2},))
    # the test's own where (grade <> 'C') leaves one 7: unique within it
    assert found["unique_scores_badge"].passed
    pairs = found["unique_combination_of_columns_scores_as_of__participant_id"]
    assert (pairs.failing, pairs.samples) == (
        1, ({"as_of": T2, "participant_id": "p2", "n_records": 2},))


def test_without_a_filter_every_row_counts(con: duckdb.DuckDBPyConnection,
                                           project: Path) -> None:
    con.execute("UPDATE scores SET grade = 'B' WHERE badge = 7 AND grade = 'C'").fetchall()
    found = results(con, project)
    badge = found["unique_scores_badge"]
    assert (badge.passed, badge.failing, badge.test.severity) == (False, 2, "warn")
    assert badge.samples == ({"value": 1, "n_records": 2}, {"value": 7, "n_records": 2})


def test_run_some_by_name_and_on_another_relation(con: duckdb.DuckDBPyConnection,
                                                   project: Path) -> None:
    con.execute("CREATE TABLE scores_today AS SELECT * FROM scores WHERE as_of = ?",
                [T1]).fetchall()
    (only,) = run_data_tests(con, "scores", sql_dir=project, relation="scores_today",
                             only=["accepted_values_scores_grade"])
    assert only.passed and only.model == "scores" and only.column == "grade"
    with pytest.raises(ModelError, match="scores: no data test 'not_null_scores_grade'"):
        run_data_tests(con, "scores", sql_dir=project, only=["not_null_scores_grade"])


def test_a_test_that_cannot_run_says_why(project: Path) -> None:
    empty = duckdb.connect(":memory:")
    found = run_data_tests(empty, "scores", sql_dir=project)
    assert all(not r.passed and r.error for r in found)
    assert "scores" in (found[0].error or "")


def test_landing_tests_come_from_the_contract() -> None:
    tests = {t.name: t for t in declared_tests("raw_contacts")}
    key = tests["unique_combination_of_columns_raw_contacts_snapshot_date__contact_id"]
    # a warning: the blocking check unique_ids stops the ticks that can see a duplicate
    assert key.columns == ("snapshot_date", "contact_id") and key.severity == "warn"
    assert tests["not_null_raw_contacts_contact_id"].severity == "error"
    assert tests["not_null_raw_contacts_email"].severity == "warn"  # required, may be empty
    assert "not_null_raw_contacts_title" not in tests  # optional
    assert tests["accepted_values_raw_contacts_role"].values == (
        "champion", "admin", "user", "executive", "billing")
    assert tests["accepted_values_raw_contacts_role"].declared_in.endswith(
        "contract.py: CONTACTS.role")


def test_landing_tests_find_bad_rows() -> None:
    con = duckdb.connect(":memory:")
    ensure_tables(con)
    day = date(2026, 5, 1)
    insert(con, "raw_accounts", [snapshot(day, "A"), snapshot(day, "A", tier="gold"),
                                 snapshot(day, "B", csm_email=None)])
    failed = {r.name: r for r in run_data_tests(con, "raw_accounts") if not r.passed}
    assert set(failed) == {"unique_combination_of_columns_raw_accounts_snapshot_date__account_id",
                           "accepted_values_raw_accounts_tier", "not_null_raw_accounts_csm_email"}
    assert failed["accepted_values_raw_accounts_tier"].samples == (
        {"value": "gold", "n_records": 1},)
    assert failed["not_null_raw_accounts_csm_email"].samples == (
        {"snapshot_date": day, "account_id": "B", "csm_email": None},)


def test_landing_value_tests_follow_the_settings() -> None:
    con = duckdb.connect(":memory:")
    ensure_tables(con)
    insert(con, "raw_accounts", [snapshot(date(2026, 5, 1), "A", tier="strategic")])
    objects = landing_objects(allowed={"accounts": {"tier": ["enterprise", "strategic"]}})
    only = ["accepted_values_raw_accounts_tier"]
    assert not run_data_tests(con, "raw_accounts", only=only)[0].passed
    assert run_data_tests(con, "raw_accounts", only=only, objects=objects)[0].passed


def test_shipped_fact_tests_pass_on_facts(tmp_path: Path) -> None:
    from cswf.facts import build_facts

    con = duckdb.connect(":memory:")
    ensure_tables(con)
    insert(con, "raw_accounts", [snapshot(date(2026, 5, 1), "A"), snapshot(date(2026, 5, 1), "B",
                                                                           nps=9)])
    con.register("facts", build_facts(con, [T1, T2], None))
    found = run_data_tests(con, "account_facts", relation="facts", where="as_of = $t",
                           params={"t": T2})
    assert [r.name for r in found if not r.passed] == []
    assert len(found) == len(declared_tests("account_facts"))
