"""An open data contract: extra landing columns declared in cswf.yaml (`fields:`) become typed
fact fields that conditions and templates use without code; a value of the wrong type flags
its row."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl
from test_cli_errors import DAY, cswf, make_project

from cswf.facts.models import build_facts, fact_schema
from cswf.ingest import ACCOUNTS
from cswf.ingest.contract import landing_objects

FIELDS = """fields:
  accounts: {seats: integer, churn_risk: float, signed_on: date, segment_name: string}
"""
RISKY = """
name: risky
owner: {field: csm_email}
state: enabled
entry: {field: churn_risk, op: gt, value: 0.5}
steps:
  - name: call
    actions: [{type: task, title: "Call {{ account_name }}: {{ seats }} seats, {{ segment_name }}"}]
"""


def extra_project(tmp_path: Path, spec: str = RISKY) -> Path:
    """Two accounts whose files carry four extra columns; a1's churn_risk is not a number."""
    root = make_project(tmp_path, {"risky.yaml": spec})
    (root / "cswf.yaml").write_text("tick_start: '2026-05-31 00:00'\n" + FIELDS)
    add_extra_columns(root)
    return root


def add_extra_columns(root: Path) -> None:
    path = root / f"data/landing/accounts/accounts_{DAY}.csv"
    frame = pl.read_csv(path, infer_schema=False).with_columns(
        seats=pl.Series(["40", "12"]), churn_risk=pl.Series(["high", "0.8"]),
        signed_on=pl.Series(["2025-01-02", "2025-03-04"]),
        segment_name=pl.Series(["Core", "Growth"]))
    frame.write_csv(path)


def test_extra_fields_are_typed_facts(tmp_path: Path) -> None:
    root = extra_project(tmp_path)
    objects = landing_objects({"accounts": {"seats": "integer", "churn_risk": "float",
                                            "signed_on": "date", "segment_name": "string"}})
    schema = fact_schema(None, "account_facts", objects)
    assert {k: schema[k] for k in ("seats", "churn_risk", "signed_on", "segment_name")} == {
        "seats": pl.Int64, "churn_risk": pl.Float64, "signed_on": pl.Date,
        "segment_name": pl.String}
    assert "seats" not in fact_schema(None, "account_facts")  # undeclared: not a fact field
    contact = fact_schema(None, "contact_facts", objects)
    assert contact["account.churn_risk"] == pl.Float64  # cross-object, by itself

    code, out, err = cswf("ingest", "--root", str(root))
    assert code == 0, out + err
    assert (f"flagged row: accounts/accounts_{DAY}.csv: row 1: column 'churn_risk': could not "
            "convert 'high' to DOUBLE; the row is loaded with the field empty") in out
    con = duckdb.connect(str(root / "data/cswf.duckdb"))
    facts = build_facts(con, [datetime(2026, 6, 1)], None)
    con.close()
    rows = facts.select("participant_id", "seats", "churn_risk", "signed_on").rows()
    assert rows == [("a1", 40, None, date(2025, 1, 2)), ("a2", 12, 0.8, date(2025, 3, 4))]


def test_extra_fields_in_a_condition_and_a_template(tmp_path: Path) -> None:
    root = extra_project(tmp_path)
    code, out, err = cswf("tick", "--as-of", "2026-06-01T00:00", "--root", str(root))
    assert code == 0, out + err
    with duckdb.connect(str(root / "data/cswf.duckdb")) as con:
        titles = con.sql("SELECT participant_id, subject, payload FROM actions_outbox").fetchall()
    assert len(titles) == 1 and titles[0][0] == "a2"  # a1's churn_risk is empty: no match
    assert "Call account_name 1: 12 seats, Growth" in str(titles[0])


def test_an_undeclared_field_is_unknown(tmp_path: Path) -> None:
    root = extra_project(tmp_path, RISKY.replace("churn_risk", "churn_risks"))
    code, out, err = cswf("validate", "--root", str(root))
    assert code != 0
    assert ("risky.yaml: entry.field: unknown field 'churn_risks' (did you mean "
            "'churn_risk'?)") in out + err
    assert ACCOUNTS.columns[-1].name == "time_zone"  # the shipped contract is unchanged


def test_declaring_a_field_on_an_existing_warehouse_keeps_ticks_running(tmp_path: Path) -> None:
    """account_facts is stored by the first tick: a field declared later adds its column to
    it; a field removed again stays a column of the raw table, so the facts keep carrying it
    (validate calls it unknown again)."""
    root = make_project(tmp_path)
    for as_of, text in [("2026-06-01T00:00", None), ("2026-06-01T03:00", FIELDS),
                        ("2026-06-01T06:00", "")]:
        if text is not None:  # the user declares the fields (and sends them), then removes them
            (root / "cswf.yaml").write_text("tick_start: '2026-05-31 00:00'\n" + text)
            add_extra_columns(root)
        code, out, err = cswf("tick", "--as-of", as_of, "--root", str(root))
        assert code == 0, out + err
    with duckdb.connect(str(root / "data/cswf.duckdb")) as con:
        rows = con.sql("SELECT hour(as_of), participant_id, churn_risk, signed_on "
                       "FROM account_facts ORDER BY ALL").fetchall()
        kinds = dict(con.sql("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'account_facts'").fetchall())
    assert rows == [(0, "a1", None, None), (0, "a2", None, None),
                    (3, "a1", None, date(2025, 1, 2)), (3, "a2", 0.8, date(2025, 3, 4)),
                    (6, "a1", None, date(2025, 1, 2)), (6, "a2", 0.8, date(2025, 3, 4))]
    assert (kinds["churn_risk"], kinds["signed_on"], kinds["seats"]) == (
        "DOUBLE", "DATE", "BIGINT")
