"""Declared models: ref()/source() resolution, and one clear error per broken file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cswf.facts import FactModelError, load_models
from cswf.reports.build import ReportError, report_catalog
from cswf.settings import PACKAGE_SQL
from cswf.sqlmodels import ModelError, load_catalog


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project SQL folder: every model is the shipped one."""
    (tmp_path / "sql" / "facts").mkdir(parents=True)
    (tmp_path / "sql" / "reports").mkdir()
    return tmp_path / "sql"


def test_refs_and_sources_are_the_dependencies() -> None:
    catalog = load_catalog("facts")
    assert catalog.models["account_facts"].depends_on == {"account_latest", "usage_windows",
                                                          "account_events"}
    assert catalog.models["contact_facts"].depends_on == {"contact_latest", "account_facts",
                                                          "contact_events"}
    assert catalog.models["usage_windows"].sources == {("landing", "raw_usage")}
    assert catalog.models["account_latest"].reads == {"raw_accounts"}
    assert '"account_latest"' in catalog.models["account_facts"].sql  # ref() renders the name
    assert "{{" not in catalog.models["account_latest"].sql
    reports = load_catalog("reports")
    assert reports.models["workflow_dashboard"].sources == {
        ("cswf", "account_facts"), ("cswf", "enrollments"), ("cswf", "tick_log"),
        ("cswf", "workflow_versions"), ("landing", "raw_contacts"),
        ("landing", "raw_opportunities")}


def test_building_one_model_runs_only_its_chain() -> None:
    assert [m.name for m in load_models(None)] == ["recent_events", "account_latest",
                                                     "usage_windows", "account_events",
                                                     "account_facts"]
    opportunity = [m.name for m in load_models(None, "opportunity_facts")]
    assert "contact_latest" not in opportunity and opportunity[-1] == "opportunity_facts"


def test_unknown_ref_is_one_line_naming_the_file(project: Path) -> None:
    path = project / "facts" / "churn_risk.sql"
    path.write_text("SELECT * FROM {{ ref('acount_latest') }}")
    with pytest.raises(FactModelError) as err:
        load_models(project / "facts")
    known = ", ".join(sorted(["account_facts", "account_latest", "churn_risk", "contact_facts",
                              "contact_latest", "opportunity_facts", "opportunity_latest",
                              "usage_windows", "recent_events", "account_events",
                              "contact_events", "opportunity_events"]))
    assert str(err.value) == (f"{path}: ref('acount_latest'): no fact model 'acount_latest' "
                              f"(known: {known})")


def test_a_report_that_refs_a_table_is_told_its_source(project: Path) -> None:
    path = project / "reports" / "facts_today.sql"
    path.write_text("SELECT * FROM {{ ref('account_facts') }}")
    with pytest.raises(ReportError) as err:
        report_catalog(project)
    assert str(err.value).startswith(f"{path}: ref('account_facts'): no report model ")
    assert str(err.value).endswith("; the table is source('cswf', 'account_facts')")


def test_unknown_source_names_the_file(project: Path) -> None:
    path = project / "facts" / "leads.sql"
    path.write_text("SELECT * FROM {{ source('landing', 'raw_leads') }}")
    with pytest.raises(FactModelError) as err:
        load_models(project / "facts")
    assert str(err.value).startswith(
        f"{path}: source('landing', 'raw_leads'): no such source table (known: ")


def test_a_cycle_names_the_files(project: Path) -> None:
    a, b = project / "facts" / "loop_a.sql", project / "facts" / "loop_b.sql"
    a.write_text("SELECT * FROM {{ ref('loop_b') }}")
    b.write_text("SELECT * FROM {{ ref('loop_a') }}")
    with pytest.raises(FactModelError) as err:
        load_models(project / "facts")
    assert str(err.value) in (f"fact models ref each other in a cycle: {a} -> {b} -> {a}",
                              f"fact models ref each other in a cycle: {b} -> {a} -> {b}")


def test_jinja_is_sandboxed_and_strict(project: Path) -> None:
    path = project / "facts" / "sneaky.sql"
    path.write_text("SELECT '{{ ref.__globals__ }}' AS x")
    with pytest.raises(FactModelError, match=rf"^{path}: template error: "):
        load_models(project / "facts")
    path.write_text("SELECT {{ undefined_thing }} AS x")
    with pytest.raises(FactModelError,
                       match=rf"^{path}: template error: 'undefined_thing' is undefined$"):
        load_models(project / "facts")


@pytest.mark.parametrize(("text", "problem"), [
    ("SELECT * FROM {{ ref('account_latest', v=2) }}",
     "ref('account_latest',): expected one model name, e.g. ref('account_latest')"),
    ("SELECT * FROM {{ source('raw_accounts') }}",
     "source('raw_accounts',): expected a source and a table, e.g. source('landing', "
     "'raw_accounts')"),
    ("SELECT {{ 1 / 0 }}", "template error: ZeroDivisionError: division by zero"),
])
def test_bad_calls_are_one_line(project: Path, text: str, problem: str) -> None:
    path = project / "facts" / "churn_risk.sql"
    path.write_text(text)
    with pytest.raises(FactModelError) as err:
        load_models(project / "facts")
    assert str(err.value) == f"{path}: {problem}"


@pytest.mark.parametrize(("name", "problem"), [
    ("ticks", "'ticks' cannot be a model name"),
    ("raw_accounts", "'raw_accounts' cannot be a model name"),
    ("has-dash", "'has-dash' cannot be a model name"),
])
def test_reserved_and_bad_names(project: Path, name: str, problem: str) -> None:
    path = project / "facts" / f"{name}.sql"
    path.write_text("SELECT 1")
    with pytest.raises(FactModelError) as err:
        load_models(project / "facts")
    assert str(err.value) == f"{path}: {problem}"


def test_a_report_cannot_take_an_engine_tables_name(project: Path) -> None:
    path = project / "reports" / "tick_log.sql"
    path.write_text("SELECT 1 AS x")
    with pytest.raises(ReportError) as err:
        report_catalog(project)
    assert str(err.value) == f"{path}: 'tick_log' cannot be a model name"


YAML_CASES = [
    ("models:\n  - name: other\n", "models[0].name: 'other' should be 'churn_risk', the name of "
                                   "the SQL file beside it"),
    ("models:\n  - name: churn_risk\n    columns:\n      - name: x\n        data_tests: "
     "[not_nul]\n", "models[0].columns[0].data_tests[0]: unknown test 'not_nul' (known: "
                    "accepted_values, not_null, unique, unique_combination_of_columns)"),
    ("models:\n  - name: churn_risk\n    columns:\n      - name: x\n        data_type: INTEGR\n",
     "models[0].columns[0].data_type: 'INTEGR' is not a DuckDB type"),
    ("models:\n  - name: churn_risk\n    columns:\n      - name: x\n        data_tests:\n"
     "          - accepted_values: {arguments: {}}\n",
     "models[0].columns[0].data_tests[0].accepted_values.values: expected a list of values"),
    ("models:\n  - name: churn_risk\n    data_tests: [not_null]\n",
     "models[0].data_tests[0]: 'not_null' is not a model's test (use one of: "
     "unique_combination_of_columns)"),
    ("models:\n  - name: churn_risk\n    columns:\n      - name: x\n        data_tests:\n"
     "          - unique: {config: {severity: fatal}}\n",
     "models[0].columns[0].data_tests[0].unique.config.severity: 'fatal' is not error or warn"),
    ("models:\n  - name: churn_risk\n    config: {meta: {cswf: {extend: account_facts}}}\n",
     "models[0].config.meta.cswf.extend: unknown setting (known: columns_from, extends, params)"),
]


@pytest.mark.parametrize(("text", "problem"), YAML_CASES)
def test_broken_yaml_is_one_line_naming_file_and_key(
        project: Path, text: str, problem: str) -> None:
    (project / "facts" / "churn_risk.sql").write_text("SELECT 1 AS x")
    path = project / "facts" / "churn_risk.yml"
    path.write_text(text)
    with pytest.raises(ModelError) as err:
        load_models(project / "facts")
    assert str(err.value) == f"{path}: {problem}"


def test_unparsable_yaml_names_the_file_and_line(project: Path) -> None:
    (project / "facts" / "churn_risk.sql").write_text("SELECT 1 AS x")
    path = project / "facts" / "churn_risk.yml"
    path.write_text("models:\n  - name: churn_risk\n    columns: [\n")
    with pytest.raises(ModelError) as err:
        load_models(project / "facts")
    assert str(err.value).startswith(f"{path}: not valid YAML (line ")
    assert "\n" not in str(err.value)


def test_yaml_without_its_sql(project: Path) -> None:
    path = project / "facts" / "ghost.yml"
    path.write_text("models:\n  - name: ghost\n")
    with pytest.raises(FactModelError) as err:
        load_models(project / "facts")
    assert str(err.value) == f"{path}: documents 'ghost', but there is no ghost.sql model"


def test_dbt_before_1_10_test_arguments_still_read(project: Path) -> None:
    (project / "facts" / "churn_risk.sql").write_text("SELECT 1 AS x")
    (project / "facts" / "churn_risk.yml").write_text(
        "models:\n  - name: churn_risk\n    columns:\n      - name: x\n        tests:\n"
        "          - accepted_values: {values: [1, 2], config: {where: 'x > 0'}}\n")
    decl = load_catalog("facts", project / "facts").models["churn_risk"].decl
    assert decl is not None
    (test,) = decl.columns[0].tests
    assert (test.kind, test.values, test.where) == ("accepted_values", (1, 2), "x > 0")


def test_the_package_ships_its_sql_and_yaml() -> None:
    shipped = {p.relative_to(PACKAGE_SQL).as_posix() for p in PACKAGE_SQL.rglob("*.*")}
    for stage in ("facts", "reports"):
        for sql in (PACKAGE_SQL / stage).glob("*.sql"):
            assert f"{stage}/{sql.stem}.yml" in shipped, f"{sql} has no YAML beside it"
    assert "sources.yml" in shipped


def test_a_copy_of_the_whole_tree_still_works(tmp_path: Path) -> None:
    """The old way (sql_dir pointing at a full copy) overrides every file with itself."""
    shutil.copytree(PACKAGE_SQL, tmp_path / "sql")
    names = [m.name for m in load_models(tmp_path / "sql" / "facts")]
    assert names == [m.name for m in load_models(None)]
    assert load_models(tmp_path / "sql" / "facts")[-1].path == (
        tmp_path / "sql" / "facts" / "account_facts.sql")
