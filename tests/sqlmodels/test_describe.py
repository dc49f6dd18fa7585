"""Every model's YAML agrees with its columns; landing tables are described by the contract."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cswf.ingest import ACCOUNTS
from cswf.quality import (
    actual_types,
    all_doc_problems,
    describe,
    doc_problems,
    relation_names,
)
from cswf.settings import PACKAGE_SQL
from cswf.sqlmodels import ModelError

MODELS = [n for n in relation_names() if not n.startswith("raw_")]


def test_every_model_and_landing_table_is_listed() -> None:
    assert set(relation_names()) == {
        "account_latest", "usage_windows", "account_facts", "contact_latest", "contact_facts",
        "opportunity_latest", "opportunity_facts", "workflow_summary", "workflow_dashboard",
        "action_insights", "milestone_history", "team_performance", "objective_after_exit",
        "objective_outcomes", "objective_performance", "objective_trend", "step_funnel",
        "workflow_daily", "execution_metrics", "objective_lift", "recent_events",
        "account_events", "contact_events", "opportunity_events",
        "raw_accounts", "raw_usage", "raw_contacts", "raw_opportunities", "raw_events"}


@pytest.mark.parametrize("name", relation_names())
def test_yaml_and_columns_agree(name: str) -> None:
    """Every column documented with a description and its DuckDB type, nothing more."""
    assert doc_problems(name) == []
    doc = describe(name)
    assert doc.description
    assert all(c.description and c.data_type for c in doc.columns)
    assert [c.name for c in doc.columns] == list(actual_types(name))


def test_contact_facts_document_the_account_fields_once() -> None:
    doc = describe("contact_facts")
    account = describe("account_facts")
    assert doc.types["account.health_score"] == account.types["health_score"] == "DOUBLE"
    assert doc.descriptions["account.tier"] == "The account's customer segment, from the snapshot"
    assert "account.as_of" not in doc.types


def test_landing_tables_come_from_the_contract() -> None:
    doc = describe("raw_accounts")
    assert doc.kind == "landing table" and doc.path is not None
    assert doc.path.name == "contract.py"
    assert [c.name for c in doc.columns] == [c.name for c in ACCOUNTS.columns] + ["source_file"]
    assert doc.descriptions["arr"] == "Annual recurring revenue"
    assert doc.types["seats_active"] == "INTEGER"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "sql" / "facts").mkdir(parents=True)
    shutil.copy(PACKAGE_SQL / "facts" / "usage_windows.yml", tmp_path / "sql" / "facts")
    return tmp_path / "sql"


def test_all_problems_of_a_project(project: Path) -> None:
    (project / "facts" / "churn_risk.sql").write_text("SELECT 1 AS score")
    assert all_doc_problems(project) == [f"{project / 'facts' / 'churn_risk.sql'}: churn_risk "
                                         "has no documented columns (a YAML beside its SQL)"]
    assert all_doc_problems() == []


def test_an_undocumented_column_is_found(project: Path) -> None:
    sql = (PACKAGE_SQL / "facts" / "usage_windows.sql").read_text()
    (project / "facts" / "usage_windows.sql").write_text(
        sql.replace("    t.as_of,\n", "    t.as_of,\n    42 AS answer,\n"))
    path = project / "facts" / "usage_windows.yml"
    assert doc_problems("usage_windows", project) == [
        f"{path}: usage_windows.answer: not documented (INTEGER)"]


def test_a_documented_column_that_does_not_exist_is_found(project: Path) -> None:
    path = project / "facts" / "usage_windows.yml"
    path.write_text(path.read_text() + "      - {name: ghost, description: x, "
                                       "data_type: VARCHAR}\n")
    assert doc_problems("usage_windows", project) == [
        f"{path}: usage_windows.ghost: documented, but usage_windows has no such column"]


def test_a_wrong_or_missing_type_is_found(project: Path) -> None:
    path = project / "facts" / "usage_windows.yml"
    text = path.read_text()
    path.write_text(text.replace("data_type: BIGINT", "data_type: int", 1))
    assert doc_problems("usage_windows", project) == [
        f"{path}: usage_windows.usage_events_7d: data_type INTEGER, but usage_windows gives "
        "BIGINT"]
    path.write_text(text.replace("        data_type: DOUBLE\n", "", 1))
    assert doc_problems("usage_windows", project) == [
        f"{path}: usage_windows.active_users_7d_avg: no data_type (it is DOUBLE)"]


def test_an_unknown_name_is_an_error() -> None:
    with pytest.raises(ModelError, match="'lead_facts' is no model, landing table or source"):
        describe("lead_facts")
