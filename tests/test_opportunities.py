"""Opportunities: ingest, derived fields (days to close, days in stage, open) and account fields."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from test_facts import SQL_DIR, insert, snapshot
from test_ingest import table, write_csv

from cswf.facts import build_facts, fact_schema
from cswf.ingest import OPPORTUNITIES, ensure_tables, ingest_landing

OPP_FILE = "opportunities/opportunities_2026-05-03.csv"
OPPORTUNITY_ROW = {
    "snapshot_date": "2026-05-03",
    "opportunity_id": "OPP-1",
    "account_id": "ACC-1",
    "opportunity_name": "Acme Data Inc renewal 2026",
    "type": "renewal",
    "stage": "proposal",
    "amount": "120000",
    "close_date": "2026-06-30",
    "owner_email": "maria.lopez@example.com",
    "stage_entered_on": "2026-04-20",
}


def test_opportunities_ingest_and_enumerations(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    good = [
        OPPORTUNITY_ROW,
        {**OPPORTUNITY_ROW, "opportunity_id": "OPP-2", "stage_entered_on": None},
    ]
    write_csv(landing, OPP_FILE, good)
    bad = [{**OPPORTUNITY_ROW, "type": "expansion"}, {**OPPORTUNITY_ROW, "stage": "won"}]
    write_csv(landing, "opportunities/opportunities_2026-05-04.csv", bad)
    con = duckdb.connect(":memory:")

    report = ingest_landing(con, landing)

    assert report.files_loaded == [OPP_FILE, "opportunities/opportunities_2026-05-04.csv"]
    assert report.rows_loaded == {"accounts": 0, "usage": 0, "contacts": 0, "opportunities": 4}
    flagged = "; the row is loaded and flagged (a legal value? add it to allowed_values in " \
              "cswf.yaml)"
    assert report.rows_flagged == [
        "opportunities/opportunities_2026-05-04.csv: row 1: column 'type': 'expansion' is not one "
        f"of new_business, renewal, upsell{flagged}",
        "opportunities/opportunities_2026-05-04.csv: row 2: column 'stage': 'won' is not one of "
        f"prospecting, qualification, proposal, negotiation, closed_won, closed_lost{flagged}",
    ]
    assert table(con, "SELECT opportunity_id, amount, stage_entered_on FROM raw_opportunities "
                      f"WHERE source_file = '{OPP_FILE}'") == [
        ("OPP-1", 120000.0, date(2026, 4, 20)),
        ("OPP-2", 120000.0, None),
    ]


def deal(day: date, opportunity_id: str, account_id: str, **values: object) -> dict:
    row: dict[str, object] = {c.name: None for c in OPPORTUNITIES.columns}
    row |= {
        "snapshot_date": day,
        "opportunity_id": opportunity_id,
        "account_id": account_id,
        "opportunity_name": f"{opportunity_id} deal",
        "type": "renewal",
        "stage": "prospecting",
        "amount": 50000.0,
        "close_date": date(2026, 6, 30),
        "owner_email": "maria.lopez@example.com",
        "stage_entered_on": date(2026, 5, 1),
    }
    return row | values


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    """Account A (health 70, then 40 from 05-12); account N arrives on 06-01.
    R: A's renewal, advancing prospecting -> negotiation -> closed_won. U: an upsell without
    stage_entered_on, lost. B: new business for N, opened before N exists."""
    connection = duckdb.connect(":memory:")
    ensure_tables(connection)
    insert(
        connection,
        "raw_accounts",
        [
            snapshot(date(2026, 5, 1), "A", health_score=70.0),
            snapshot(date(2026, 5, 12), "A", health_score=40.0),
            snapshot(date(2026, 6, 1), "N", stage="onboarding", contract_start=date(2026, 6, 1)),
        ],
    )
    insert(
        connection,
        "raw_opportunities",
        [
            deal(date(2026, 5, 1), "R", "A"),
            deal(date(2026, 5, 20), "R", "A", stage="negotiation",
                 stage_entered_on=date(2026, 5, 18)),
            deal(date(2026, 6, 30), "R", "A", stage="closed_won",
                 stage_entered_on=date(2026, 6, 30)),
            deal(date(2026, 5, 5), "U", "A", type="upsell", stage="qualification",
                 stage_entered_on=None, amount=9000.0, close_date=date(2026, 5, 25)),
            deal(date(2026, 5, 26), "U", "A", type="upsell", stage="closed_lost",
                 stage_entered_on=None, amount=9000.0, close_date=date(2026, 5, 25)),
            deal(date(2026, 5, 10), "B", "N", type="new_business", stage="proposal",
                 close_date=date(2026, 6, 1), stage_entered_on=date(2026, 5, 10)),
        ],
    )  # fmt: skip
    yield connection
    connection.close()


def opportunity_facts(con: duckdb.DuckDBPyConnection, *ticks: datetime) -> pl.DataFrame:
    return build_facts(con, list(ticks), SQL_DIR, "opportunity_facts")


def one(frame: pl.DataFrame, participant: str) -> dict[str, object]:
    return frame.filter(pl.col("participant_id") == participant).row(0, named=True)


def test_derived_fields(con: duckdb.DuckDBPyConnection) -> None:
    facts = opportunity_facts(con, datetime(2026, 5, 21, 9))
    r, u, b = one(facts, "R"), one(facts, "U"), one(facts, "B")
    assert r["participant_id"] == r["opportunity_id"] == "R"
    assert (r["stage"], r["is_open"], r["days_to_close"], r["days_in_stage"]) == (
        "negotiation",
        True,
        (date(2026, 6, 30) - date(2026, 5, 21)).days,
        3,
    )
    assert (u["stage"], u["is_open"], u["days_in_stage"]) == ("qualification", True, None)
    assert u["days_to_close"] == 4 and u["amount"] == 9000.0
    assert (b["type"], b["stage"], b["is_open"]) == ("new_business", "proposal", True)

    closed = opportunity_facts(con, datetime(2026, 6, 30, 12))
    assert [(row["participant_id"], row["is_open"]) for row in closed.iter_rows(named=True)] == [
        ("B", True),  # its snapshot still says proposal: facts follow the snapshots, not dates
        ("R", False),
        ("U", False),
    ]
    assert one(closed, "U")["days_to_close"] == -36  # past the close date
    assert one(closed, "R")["days_in_stage"] == 0


def test_opportunities_read_their_account_as_of_the_tick(con: duckdb.DuckDBPyConnection) -> None:
    facts = opportunity_facts(con, datetime(2026, 5, 11, 21), datetime(2026, 5, 12, 3))
    before, after = facts.filter(pl.col("participant_id") == "R").iter_rows(named=True)
    assert (before["account.health_score"], after["account.health_score"]) == (70.0, 40.0)
    assert after["account.account_name"] == "A Inc" and after["account.tier"] == "enterprise"

    b_before = one(opportunity_facts(con, datetime(2026, 5, 31, 21)), "B")
    b_after = one(opportunity_facts(con, datetime(2026, 6, 1)), "B")
    assert b_before["account.account_id"] is None and b_before["account.stage"] is None
    assert (b_after["account.account_id"], b_after["account.stage"]) == ("N", "onboarding")


def test_opportunities_appear_from_their_first_snapshot(con: duckdb.DuckDBPyConnection) -> None:
    assert opportunity_facts(con, datetime(2026, 5, 4))["participant_id"].to_list() == ["R"]
    assert opportunity_facts(con, datetime(2026, 5, 10))["participant_id"].to_list() == [
        "B",
        "R",
        "U",
    ]


def test_opportunity_fact_schema() -> None:
    schema = fact_schema(SQL_DIR, "opportunity_facts")
    expected = {
        "as_of": pl.Datetime("us"),
        "participant_id": pl.String(),
        "opportunity_id": pl.String(),
        "type": pl.String(),
        "stage": pl.String(),
        "amount": pl.Float64(),
        "close_date": pl.Date(),
        "stage_entered_on": pl.Date(),
        "is_open": pl.Boolean(),
        "days_to_close": pl.Int32(),
        "days_in_stage": pl.Int32(),
        "account.health_score": pl.Float64(),
        "account.csm_email": pl.String(),
        "account.days_to_renewal": pl.Int32(),
        "account.usage_events_7d": pl.Int64(),
    }
    assert {name: schema[name] for name in expected} == expected
    assert list(schema)[:2] == ["as_of", "participant_id"]
    assert "account.as_of" not in schema and "account.participant_id" not in schema
