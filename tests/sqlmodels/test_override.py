"""A project's sql/ folder adds models, overrides shipped ones file by file, and extends the
facts with a model of its own (`extends: account_facts`)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
from test_facts import insert, snapshot

from cswf.facts import build_facts, fact_schema, load_models
from cswf.ingest import ensure_tables
from cswf.quality import describe, doc_problems
from cswf.reports.build import build_reports, report_files, run_report
from cswf.settings import PACKAGE_SQL, load_settings
from cswf.store.tables import ensure_delivery_tables, ensure_engine_tables

TICK = datetime(2026, 5, 21)
EXTENSION_SQL = """-- open tickets per 100 purchased seats
SELECT as_of, CAST(account_id AS VARCHAR) AS participant_id,
    100.0 * open_tickets / nullif(seats_purchased, 0) AS tickets_per_100_seats
FROM {{ ref('account_latest') }}
"""
EXTENSION_YAML = """version: 2
models:
  - name: tickets_per_seat
    description: Open tickets per 100 purchased seats.
    config:
      meta:
        cswf:
          extends: account_facts
    columns:
      - {name: as_of, description: The tick, data_type: TIMESTAMP}
      - {name: participant_id, description: The account, data_type: VARCHAR}
      - name: tickets_per_100_seats
        description: 100 * open_tickets / seats_purchased; NULL without purchased seats
        data_type: DOUBLE
        data_tests: [not_null]
"""


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(":memory:")
    ensure_tables(connection)
    insert(connection, "raw_accounts", [
        snapshot(date(2026, 5, 1), "A", open_tickets=4),
        snapshot(date(2026, 5, 1), "B", open_tickets=1, seats_purchased=0),
    ])
    return connection


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "sql" / "facts").mkdir(parents=True)
    return tmp_path / "sql"


def test_settings_find_the_projects_sql_folder(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CSWF_SQL_DIR", raising=False)
    assert load_settings(tmp_path).project_sql_path is None
    assert load_settings(tmp_path).sql_path == PACKAGE_SQL
    (tmp_path / "sql").mkdir()
    settings = load_settings(tmp_path)
    assert settings.project_sql_path == tmp_path / "sql" == settings.sql_path
    assert settings.facts_sql_path == tmp_path / "sql" / "facts"
    monkeypatch.setenv("CSWF_SQL_DIR", "models")
    assert load_settings(tmp_path).sql_path == tmp_path / "models"


def test_a_project_model_overrides_the_shipped_one(
        con: duckdb.DuckDBPyConnection, project: Path) -> None:
    shipped = (PACKAGE_SQL / "facts" / "account_facts.sql").read_text()
    (project / "facts" / "account_facts.sql").write_text(
        shipped.replace("    a.account_name,\n", "    upper(a.account_name) AS account_name,\n"))
    facts = build_facts(con, [TICK], project / "facts")
    assert facts["account_name"].to_list() == ["A INC", "B INC"]
    chain = {m.name: m.path for m in load_models(project / "facts")}
    assert chain["account_facts"] == project / "facts" / "account_facts.sql"
    assert chain["account_latest"] == PACKAGE_SQL / "facts" / "account_latest.sql"
    # the shipped YAML still documents it: only the SQL file was replaced
    assert describe("account_facts", project).path == PACKAGE_SQL / "facts" / "account_facts.yml"
    assert build_facts(con, [TICK], None)["account_name"].to_list() == ["A Inc", "B Inc"]


def test_a_project_macro_overrides_the_shipped_macro(
        con: duckdb.DuckDBPyConnection, project: Path) -> None:
    (project / "facts" / "macros").mkdir()
    (project / "facts" / "macros" / "latest_snapshot.sql").write_text(
        "{% macro latest_snapshot(table, key) -%}\n"
        "SELECT t.as_of, r.* EXCLUDE (source_file) FROM ticks AS t\n"
        "JOIN {{ table }} AS r ON r.snapshot_date <= CAST(t.as_of AS DATE)\n"
        "WHERE r.{{ key }} = 'A'\n{%- endmacro %}\n")
    assert build_facts(con, [TICK], project / "facts")["participant_id"].to_list() == ["A"]


def test_an_extension_adds_a_fact_field_without_touching_account_facts(
        con: duckdb.DuckDBPyConnection, project: Path) -> None:
    (project / "facts" / "tickets_per_seat.sql").write_text(EXTENSION_SQL)
    (project / "facts" / "tickets_per_seat.yml").write_text(EXTENSION_YAML)
    facts = build_facts(con, [TICK], project / "facts")
    assert facts.columns[-1] == "tickets_per_100_seats"
    assert facts["tickets_per_100_seats"].to_list() == [2.0, None]
    assert fact_schema(project / "facts")["tickets_per_100_seats"].is_float()
    # contact and opportunity facts get it as account.<field>, documented there too
    assert "account.tickets_per_100_seats" in fact_schema(project / "facts", "contact_facts")
    contact = describe("contact_facts", project)
    assert contact.types["account.tickets_per_100_seats"] == "DOUBLE"
    assert describe("account_facts", project).descriptions["tickets_per_100_seats"].startswith(
        "100 * open_tickets")
    assert doc_problems("account_facts", project) == []
    assert doc_problems("contact_facts", project) == []


def test_an_extension_must_name_another_fact_model(project: Path) -> None:
    (project / "facts" / "tickets_per_seat.sql").write_text(EXTENSION_SQL)
    path = project / "facts" / "tickets_per_seat.yml"
    path.write_text(EXTENSION_YAML.replace("extends: account_facts", "extends: acount_facts"))
    with pytest.raises(Exception) as err:
        load_models(project / "facts")
    assert str(err.value) == (f"{path}: models[0].config.meta.cswf.extends: 'acount_facts' "
                              "is not another fact model")


def test_an_extension_documents_its_join_key(project: Path) -> None:
    (project / "facts" / "tickets_per_seat.sql").write_text(EXTENSION_SQL)
    path = project / "facts" / "tickets_per_seat.yml"
    path.write_text(EXTENSION_YAML.replace(
        "      - {name: participant_id, description: The account, data_type: VARCHAR}\n", ""))
    with pytest.raises(Exception) as err:
        load_models(project / "facts")
    assert str(err.value) == (f"{path}: models[0].columns: an extension of account_facts gives "
                              "(and documents) as_of and participant_id, the key it is joined on")


def test_a_project_report_is_built_beside_the_shipped_ones(project: Path) -> None:
    (project / "reports").mkdir()
    (project / "reports" / "active_by_workflow.sql").write_text(
        "SELECT workflow, active FROM {{ ref('workflow_summary') }}")
    con = duckdb.connect(":memory:")
    ensure_tables(con)
    ensure_engine_tables(con)
    con.execute("CREATE TABLE account_facts (as_of TIMESTAMP, participant_id VARCHAR, "
                "account_name VARCHAR, csm_name VARCHAR, tier VARCHAR)").fetchall()
    counts = build_reports(con, project)
    shipped = [p.stem for p in report_files(None)]
    assert "workflow_summary" in shipped and "active_by_workflow" not in shipped
    assert counts["active_by_workflow"] == 0 and set(counts) == {"active_by_workflow", *shipped}
    assert [p.stem for p in report_files(project)] == sorted(["active_by_workflow", *shipped])


def test_a_report_with_parameters_runs_per_call(project: Path) -> None:


    con = duckdb.connect(":memory:")
    ensure_engine_tables(con)
    ensure_delivery_tables(con)
    frame = run_report(con, "action_insights", {"as_of": TICK})
    assert frame.is_empty() and frame.columns[-1] == "as_of"
    with pytest.raises(ValueError, match=r"takes parameters \['as_of'\], not \[\]"):
        run_report(con, "action_insights")
