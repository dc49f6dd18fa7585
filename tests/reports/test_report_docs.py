"""Every report has a `<model>.yml` beside its SQL (dbt's schema format) that documents every
column with its DuckDB type, and the data tests it declares hold on the hand-written scenarios
of the other report tests, built together into one warehouse."""

from __future__ import annotations

import pytest
import yaml
from report_book import REPORTS, Book, new_book
from test_execution_and_dashboard import accounts_book, emails_book
from test_flow_reports import nurture_book
from test_lift_report import lift_book
from test_milestone_reports import month_end_book
from test_objective_reports import adoption_book

# action_insights is a report with an as_of parameter, run per call rather than stored
# (tests/sqlmodels covers its docs).
MODELS = sorted(path.stem for path in REPORTS.glob("*.sql") if path.stem != "action_insights")


@pytest.fixture(scope="module")
def everything() -> Book:
    book = new_book()
    for scenario in (adoption_book, nurture_book, month_end_book, emails_book, accounts_book,
                     lift_book):
        scenario(book)
    return book


def documented(model: str) -> dict:
    doc = yaml.safe_load((REPORTS / f"{model}.yml").read_text())
    (entry,) = doc["models"]
    assert entry["name"] == model and entry["description"].strip()
    return entry


@pytest.mark.parametrize("model", MODELS)
def test_every_column_is_documented_with_its_type(everything: Book, model: str) -> None:
    entry = documented(model)
    built = [(name, kind) for name, kind, *_ in everything.rows(f"DESCRIBE {model}")]
    assert [(c["name"], c["data_type"]) for c in entry["columns"]] == built
    assert all(c["description"].strip() for c in entry["columns"])


@pytest.mark.parametrize("model", MODELS)
def test_the_declared_data_tests_hold(everything: Book, model: str) -> None:
    entry = documented(model)
    assert everything.rows(f"SELECT count(*) FROM {model}")[0][0] > 0, "no rows to test"
    broken = []
    for column in entry["columns"]:
        name = column["name"]
        for test in column.get("data_tests", []):
            if test == "not_null":
                sql = f"SELECT count(*) FROM {model} WHERE {name} IS NULL"
            elif test == "unique":
                sql = f"SELECT count({name}) - count(DISTINCT {name}) FROM {model}"
            else:
                values = test["accepted_values"]["values"]
                sql = (f"SELECT count(*) FROM {model} WHERE {name} NOT IN "
                       f"({', '.join(repr(v) for v in values)})")
            if everything.rows(sql)[0][0]:
                broken.append(f"{name}: {test}")
    grain = ", ".join(entry["config"]["meta"]["grain"])
    duplicates = everything.rows(f"SELECT count(*) - count(DISTINCT ({grain})) FROM {model}")
    assert broken == [] and duplicates == [(0,)], (broken, grain)
