"""Fact models: visibility as of a tick, usage windows, derived fields, batching, errors."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import polars as pl
import pytest

from cswf.facts import FACT_MODELS, FactModelError, build_facts, fact_schema, load_models
from cswf.ingest import ACCOUNTS, ensure_tables
from cswf.settings import PACKAGE_SQL

SQL_DIR = PACKAGE_SQL / "facts"
START = date(2026, 5, 1)


def snapshot(day: date, account_id: str, **values: object) -> dict[str, object]:
    row: dict[str, object] = {c.name: None for c in ACCOUNTS.columns}
    row |= {
        "snapshot_date": day,
        "account_id": account_id,
        "account_name": f"{account_id} Inc",
        "tier": "enterprise",
        "stage": "adoption",
        "stage_entered_on": date(2026, 4, 10),
        "arr": 100000.0,
        "seats_purchased": 200,
        "seats_active": 50,
        "contract_start": date(2026, 1, 1),
        "renewal_date": date(2026, 8, 19),
        "csm_name": "Maria Lopez",
        "csm_email": "maria.lopez@example.com",
    }
    return row | values


def insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, object]]) -> None:
    frame = pl.DataFrame(rows).with_columns(source_file=pl.lit("test"))
    con.register("_rows", frame)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows").fetchall()
    con.unregister("_rows")


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    """A: snapshots on 05-01, 05-15, 05-25 and 20 days of usage with events 1..20.
    B: one snapshot, no usage. C: appears on 05-25. D: churned, zero seats purchased."""
    connection = duckdb.connect(":memory:")
    ensure_tables(connection)
    insert(
        connection,
        "raw_accounts",
        [
            snapshot(START, "A", stage="onboarding", stage_entered_on=START, seats_active=10),
            snapshot(
                date(2026, 5, 15),
                "A",
                stage_entered_on=date(2026, 5, 15),
                nps=9,
                nps_responded_on=date(2026, 5, 11),
                health_score=81.5,
                open_tickets=2,
            ),
            snapshot(date(2026, 5, 25), "A", stage="mature", stage_entered_on=date(2026, 5, 25)),
            snapshot(date(2026, 5, 10), "B", tier="smb", seats_purchased=10, seats_active=7),
            snapshot(date(2026, 5, 25), "C"),
            snapshot(START, "D", stage="churned", seats_purchased=0, seats_active=0),
        ],
    )
    insert(
        connection,
        "raw_usage",
        [
            {
                "usage_date": START + timedelta(days=i),
                "account_id": "A",
                "active_users": 10,
                "events": i + 1,
            }
            for i in range(20)
        ],
    )
    yield connection
    connection.close()


def facts_at(con: duckdb.DuckDBPyConnection, *ticks: datetime) -> pl.DataFrame:
    return build_facts(con, list(ticks), SQL_DIR)


def row(frame: pl.DataFrame, participant: str) -> dict[str, object]:
    return frame.filter(pl.col("participant_id") == participant).row(0, named=True)


def test_latest_snapshot_on_or_before_as_of(con: duckdb.DuckDBPyConnection) -> None:
    facts = facts_at(con, datetime(2026, 5, 21, 6))
    a = row(facts, "A")
    assert a["snapshot_date"] == date(2026, 5, 15)  # the 05-25 snapshot is not visible yet
    assert a["stage"] == "adoption"
    assert a["snapshot_age_days"] == 6
    assert sorted(facts["participant_id"]) == ["A", "B", "D"]  # C first appears on 05-25

    at_midnight = facts_at(con, datetime(2026, 5, 25))
    assert row(at_midnight, "A")["stage"] == "mature"
    assert row(at_midnight, "A")["snapshot_age_days"] == 0
    assert "C" in at_midnight["participant_id"].to_list()
    assert facts_at(con, datetime(2026, 4, 30, 23, 59)).is_empty()


def test_usage_windows_on_a_hand_made_series(con: duckdb.DuckDBPyConnection) -> None:
    # D = 05-21: 7d = 05-14..05-20 = events 14..20; prev = 05-07..05-13 = 7..13; 30d = all 20.
    a = row(facts_at(con, datetime(2026, 5, 21, 6)), "A")
    assert a["usage_events_7d"] == sum(range(14, 21)) == 119
    assert a["usage_events_prev_7d"] == sum(range(7, 14)) == 70
    assert a["usage_events_30d"] == sum(range(1, 21)) == 210
    assert a["active_users_7d_avg"] == pytest.approx(10.0)
    assert a["usage_events_7d_change_pct"] == pytest.approx(70.0)

    # Usage of 05-20 is complete only at 05-21 00:00: the tick just before sees up to 05-19.
    before = row(facts_at(con, datetime(2026, 5, 20, 23, 59)), "A")
    assert before["usage_events_7d"] == sum(range(13, 20))
    assert before["usage_events_prev_7d"] == sum(range(6, 13))

    # Past the series: the 7d window is empty and the change is -100 %.
    late = row(facts_at(con, datetime(2026, 5, 28)), "A")
    assert late["usage_events_7d"] == 0  # 05-21..05-27
    assert late["usage_events_prev_7d"] == sum(range(14, 21))  # 05-14..05-20
    assert late["usage_events_30d"] == sum(range(1, 21))
    assert late["active_users_7d_avg"] == 0.0
    assert late["usage_events_7d_change_pct"] == pytest.approx(-100.0)


def test_no_usage_is_zero_and_change_is_null(con: duckdb.DuckDBPyConnection) -> None:
    facts = facts_at(con, datetime(2026, 5, 21, 6))
    b = row(facts, "B")
    assert (b["usage_events_7d"], b["usage_events_prev_7d"], b["usage_events_30d"]) == (0, 0, 0)
    assert b["active_users_7d_avg"] == 0.0
    assert b["usage_events_7d_change_pct"] is None
    # A's first week: prev 7d is 0, so no change percentage either.
    early = row(facts_at(con, datetime(2026, 5, 8)), "A")
    assert early["usage_events_7d"] == sum(range(1, 8)) and early["usage_events_prev_7d"] == 0
    assert early["usage_events_7d_change_pct"] is None


def test_derived_fields(con: duckdb.DuckDBPyConnection) -> None:
    facts = facts_at(con, datetime(2026, 5, 21, 6))
    a, b, d = row(facts, "A"), row(facts, "B"), row(facts, "D")
    assert a["seat_utilisation_pct"] == pytest.approx(25.0)
    assert b["seat_utilisation_pct"] == pytest.approx(70.0)
    assert d["seat_utilisation_pct"] is None  # zero seats purchased
    assert d["stage"] == "churned"  # churned accounts stay; conditions filter them
    assert a["days_to_renewal"] == 90
    assert a["days_in_stage"] == 6
    assert b["days_in_stage"] == (date(2026, 5, 21) - date(2026, 4, 10)).days
    assert a["days_since_contract_start"] == (date(2026, 5, 21) - date(2026, 1, 1)).days
    assert a["days_since_nps_response"] == 10
    assert b["days_since_nps_response"] is None
    assert (a["nps"], a["nps_category"], a["health_score"], a["open_tickets"]) == (
        9,
        "promoter",
        81.5,
        2,
    )
    assert a["participant_id"] == a["account_id"] == "A"


def test_many_ticks_equal_ticks_one_by_one(con: duckdb.DuckDBPyConnection) -> None:
    ticks = [
        datetime(2026, 5, 8, 9),
        datetime(2026, 5, 21, 6),
        datetime(2026, 5, 21, 9),
        datetime(2026, 5, 26),
    ]
    together = facts_at(con, *reversed(ticks))
    alone = pl.concat([facts_at(con, t) for t in ticks])
    assert together.equals(alone)
    assert together.select("as_of", "participant_id").equals(
        together.select("as_of", "participant_id").sort("as_of", "participant_id")
    )


def test_duplicate_and_aware_ticks(con: duckdb.DuckDBPyConnection) -> None:
    naive = facts_at(con, datetime(2026, 5, 21, 6))
    cest = timezone(timedelta(hours=2))
    aware = facts_at(
        con, datetime(2026, 5, 21, 8, tzinfo=cest), datetime(2026, 5, 21, 6, tzinfo=UTC)
    )
    assert aware.equals(naive)


def test_output_column_order_and_types(con: duckdb.DuckDBPyConnection) -> None:
    facts = facts_at(con, datetime(2026, 5, 21, 6))
    assert facts.columns[:3] == ["as_of", "participant_id", "account_id"]
    assert dict(facts.schema) == fact_schema(SQL_DIR)


def test_fact_schema_lists_the_fields() -> None:
    schema = fact_schema(SQL_DIR)
    assert list(schema)[:2] == ["as_of", "participant_id"]
    expected = {
        "as_of": pl.Datetime("us"),
        "participant_id": pl.String(),
        "tier": pl.String(),
        "arr": pl.Float64(),
        "seats_active": pl.Int32(),
        "renewal_date": pl.Date(),
        "health_score": pl.Float64(),
        "nps": pl.Int32(),
        "usage_events_7d": pl.Int64(),
        "usage_events_prev_7d": pl.Int64(),
        "usage_events_30d": pl.Int64(),
        "active_users_7d_avg": pl.Float64(),
        "usage_events_7d_change_pct": pl.Float64(),
        "seat_utilisation_pct": pl.Float64(),
        "days_to_renewal": pl.Int32(),
        "days_in_stage": pl.Int32(),
        "days_since_contract_start": pl.Int32(),
        "days_since_nps_response": pl.Int32(),
        "snapshot_age_days": pl.Int32(),
    }
    assert {name: schema[name] for name in expected} == expected


@pytest.fixture
def sql_copy(tmp_path: Path) -> Path:
    target = tmp_path / "facts"
    shutil.copytree(SQL_DIR, target)
    return target


def test_broken_sql_names_the_file(con: duckdb.DuckDBPyConnection, sql_copy: Path) -> None:
    (sql_copy / "usage_windows.sql").write_text("SELEC as_of FROM ticks")
    with pytest.raises(FactModelError, match=r"usage_windows\.sql"):
        build_facts(con, [datetime(2026, 5, 21)], sql_copy)


def test_runtime_error_names_the_file(con: duckdb.DuckDBPyConnection, sql_copy: Path) -> None:
    facts = sql_copy / "account_facts.sql"
    facts.write_text(
        facts.read_text().replace("a.account_name,", "CAST(a.account_name AS INTEGER) AS x,")
    )
    with pytest.raises(FactModelError, match=r"account_facts\.sql"):
        build_facts(con, [datetime(2026, 5, 21)], sql_copy)


def test_runtime_error_in_an_input_model_names_it(
    con: duckdb.DuckDBPyConnection, sql_copy: Path
) -> None:
    usage = sql_copy / "usage_windows.sql"
    usage.write_text(
        usage.read_text().replace(
            "s.account_id,", "s.account_id || CAST(s.account_id AS INTEGER) AS account_id,"
        )
    )
    with pytest.raises(FactModelError, match=r"usage_windows\.sql.*Conversion"):
        build_facts(con, [datetime(2026, 5, 21)], sql_copy)


def test_adding_a_model_adds_a_field(con: duckdb.DuckDBPyConnection, sql_copy: Path) -> None:
    (sql_copy / "tickets_per_seat.sql").write_text(
        "-- open tickets per 100 purchased seats\n"
        "SELECT as_of, account_id,\n"
        "    100.0 * open_tickets / nullif(seats_purchased, 0) AS tickets_per_100_seats\n"
        "FROM {{ ref('account_latest') }}\n"
    )
    facts = sql_copy / "account_facts.sql"
    text = facts.read_text().replace(
        "    CAST(CAST(a.as_of AS DATE) - a.snapshot_date AS INTEGER) AS snapshot_age_days\n",
        "    CAST(CAST(a.as_of AS DATE) - a.snapshot_date AS INTEGER) AS snapshot_age_days,\n"
        "    k.tickets_per_100_seats\n",
    )
    text += ("LEFT JOIN {{ ref('tickets_per_seat') }} AS k\n"
             "    ON k.as_of = a.as_of AND k.account_id = a.account_id\n")
    facts.write_text(text)

    names = [m.name for m in load_models(sql_copy)]
    assert names.index("account_latest") < names.index("tickets_per_seat") < len(names) - 1
    assert names[-1] == "account_facts"
    a = row(build_facts(con, [datetime(2026, 5, 21)], sql_copy), "A")
    assert a["tickets_per_100_seats"] == pytest.approx(1.0)
    assert fact_schema(sql_copy)["tickets_per_100_seats"] == pl.Float64()


def test_trailing_semicolons_and_comments(con: duckdb.DuckDBPyConnection, sql_copy: Path) -> None:
    for path in sql_copy.glob("*.sql"):
        path.write_text(path.read_text() + ";\n-- the end\n\n")
    expected = facts_at(con, datetime(2026, 5, 21))
    assert build_facts(con, [datetime(2026, 5, 21)], sql_copy).equals(expected)


def test_cycle_and_unknown_ref_name_the_files(sql_copy: Path) -> None:
    (sql_copy / "loop_a.sql").write_text("SELECT * FROM {{ ref('loop_b') }}")
    (sql_copy / "loop_b.sql").write_text("SELECT * FROM {{ ref('loop_a') }}")
    with pytest.raises(FactModelError) as cycle:
        load_models(sql_copy)
    a, b = sql_copy / "loop_a.sql", sql_copy / "loop_b.sql"
    assert str(cycle.value) in (f"fact models ref each other in a cycle: {a} -> {b} -> {a}",
                                f"fact models ref each other in a cycle: {b} -> {a} -> {b}")
    (sql_copy / "loop_b.sql").write_text("SELECT * FROM {{ ref('loop_c') }}")
    with pytest.raises(FactModelError) as unknown:
        load_models(sql_copy)
    assert str(unknown.value).startswith(
        f"{b}: ref('loop_c'): no fact model 'loop_c' (known: account_events, account_facts, "
        "account_latest, ")


def test_requires_raw_tables() -> None:
    with pytest.raises(FactModelError, match="ingest"):
        build_facts(duckdb.connect(":memory:"), [datetime(2026, 5, 21)], SQL_DIR)


def test_each_model_runs_only_what_it_reads(con: duckdb.DuckDBPyConnection) -> None:
    """Account facts do not need the contact tables (a warehouse from before them still builds);
    contact facts do, and read the account chain."""
    assert [m.name for m in load_models(SQL_DIR)] == [
        "recent_events",
        "account_latest",
        "usage_windows",
        "account_events",
        "account_facts",
    ]
    contact_chain = [m.name for m in load_models(SQL_DIR, "contact_facts")]
    assert contact_chain[-1] == "contact_facts"
    assert set(contact_chain) == {
        "recent_events",
        "account_latest",
        "usage_windows",
        "account_events",
        "account_facts",
        "contact_latest",
        "contact_events",
        "contact_facts",
    }
    assert contact_chain.index("account_facts") < contact_chain.index("contact_facts")
    con.execute("DROP TABLE raw_contacts").fetchall()
    con.execute("DROP TABLE raw_opportunities").fetchall()
    assert build_facts(con, [datetime(2026, 5, 21)], SQL_DIR).height == 3
    with pytest.raises(FactModelError, match="raw_contacts missing: ingest"):
        build_facts(con, [datetime(2026, 5, 21)], SQL_DIR, "contact_facts")


def test_unknown_model_and_model_per_object(sql_copy: Path) -> None:
    with pytest.raises(FactModelError, match=r"no lead_facts\.sql model"):
        load_models(sql_copy, "lead_facts")
    (sql_copy / "contact_facts.sql").unlink()  # a project folder without it: the shipped one
    assert load_models(sql_copy, "contact_facts")[-1].path == SQL_DIR / "contact_facts.sql"
    assert load_models(sql_copy)[-1].name == "account_facts"  # other objects are unaffected
    assert FACT_MODELS == {
        "account": "account_facts",
        "contact": "contact_facts",
        "opportunity": "opportunity_facts",
    }


def test_build_leaves_no_temp_objects(con: duckdb.DuckDBPyConnection, sql_copy: Path) -> None:
    facts_at(con, datetime(2026, 5, 21))
    (sql_copy / "usage_windows.sql").write_text("SELEC 1")
    with pytest.raises(FactModelError):
        build_facts(con, [datetime(2026, 5, 21)], sql_copy)
    tables = con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    views = con.execute(
        "SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal"
    ).fetchall()
    assert tables == [] and views == []


def test_every_fact_field_is_documented() -> None:
    """Each model's own fields have a table row; `account.<field>` is one documented rule."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "data-contract.md").read_text()
    assert "| account.* |" in doc and "`account.<field>`" in doc
    missing = [
        (model, name)
        for model in FACT_MODELS.values()
        for name in fact_schema(SQL_DIR, model)
        if not name.startswith("account.") and f"| {name} |" not in doc
    ]
    assert missing == []


def test_the_latest_models_share_one_macro_and_a_broken_call_names_the_file(
        sql_copy: Path) -> None:
    models = {m.name: m for m in load_models(sql_copy, "contact_facts")}
    latest = models["contact_latest"]
    assert latest.reads == {"raw_contacts"} and "ASOF JOIN" in latest.sql
    assert "{{" not in latest.sql  # dependencies are read from the rendered SQL
    (sql_copy / "contact_latest.sql").write_text(
        '{% from "macros/latest_snapshot.sql" import latest_snapshot %}\n'
        '{{ latest_snapshot("raw_contacts") }}\n')
    with pytest.raises(FactModelError, match=r"contact_latest\.sql: template error: .*'key'"):
        load_models(sql_copy)
