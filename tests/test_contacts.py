"""Contacts: ingest (booleans, roles, keys), facts as of a tick and the `account.` fields."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from test_facts import SQL_DIR, insert, snapshot
from test_ingest import ACC_FILE, account_rows, table, write_csv

from cswf.facts import FactModelError, build_facts, fact_schema
from cswf.ingest import CONTACTS, ensure_tables, ingest_landing, snapshot_problems

CON_FILE = "contacts/contacts_2026-05-03.csv"
CONTACT_ROW = {
    "snapshot_date": "2026-05-03",
    "contact_id": "CON-1",
    "account_id": "ACC-1",
    "contact_name": "Ben Jensen",
    "email": "ben.jensen@example.org",
    "role": "champion",
    "is_primary": "true",
    "title": "Head of Operations",
    "last_login_on": "2026-05-02",
    "nps": "9",
    "time_zone": "Europe/Berlin",
}


def contact_rows(*overrides: dict[str, str | None]) -> list[dict[str, str | None]]:
    return [{**CONTACT_ROW, **o} for o in overrides]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(":memory:")
    yield connection
    connection.close()


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    return tmp_path / "landing"


# -- ingest ---------------------------------------------------------------------------------------


def test_contacts_ingest_like_accounts(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    write_csv(landing, ACC_FILE, account_rows({}))
    write_csv(landing, CON_FILE, contact_rows({}, {"contact_id": "CON-2", "is_primary": "false"}))

    first = ingest_landing(con, landing)
    second = ingest_landing(con, landing)

    assert first.files_loaded == [ACC_FILE, CON_FILE]
    assert first.rows_loaded == {"accounts": 1, "usage": 0, "contacts": 2, "opportunities": 0}
    assert second.files_skipped_unchanged == [ACC_FILE, CON_FILE]
    row = con.sql("SELECT * FROM raw_contacts ORDER BY contact_id").pl().row(0, named=True)
    assert row["snapshot_date"] == date(2026, 5, 3) and row["last_login_on"] == date(2026, 5, 2)
    assert (row["is_primary"], row["nps"], row["source_file"]) == (True, 9, CON_FILE)
    types = dict(
        table(
            con,
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'raw_contacts'",
        )
    )
    assert {c.name: c.dtype for c in CONTACTS.columns}.items() <= types.items()
    assert table(con, "SELECT object, row_count FROM ingested_files ORDER BY 1") == [
        ("accounts", 1),
        ("contacts", 2),
    ]


def test_boolean_spellings(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    spellings = ["true", "FALSE", " Yes ", "no", "1", "0", "True", None]
    rows = contact_rows(
        *({"contact_id": f"CON-{i}", "is_primary": v} for i, v in enumerate(spellings))
    )
    write_csv(landing, CON_FILE, rows)

    assert ingest_landing(con, landing).files_rejected == []
    assert table(con, "SELECT is_primary FROM raw_contacts ORDER BY contact_id") == [
        (True,), (False,), (True,), (False,), (True,), (False,), (True,), (None,)
    ]  # fmt: skip


def test_other_boolean_spellings_reject_the_file(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    rows = contact_rows(
        {"contact_id": "CON-1"},
        {"contact_id": "CON-2", "is_primary": "maybe"},
        {"contact_id": "CON-3", "is_primary": "t"},  # DuckDB would cast it; the contract does not
    )
    write_csv(landing, CON_FILE, rows)

    report = ingest_landing(con, landing)

    message = (
        "contacts/contacts_2026-05-03.csv: row 2: column 'is_primary': could not convert 'maybe' "
        "to BOOLEAN (use one of true, 1, yes, false, 0, no, any case) (1 more bad rows in this "
        "column)"
    )
    assert report.files_rejected == [(CON_FILE, message)]
    assert table(con, "SELECT count(*) FROM raw_contacts") == [(0,)]
    assert table(con, "SELECT object, reason FROM ingest_rejections") == [("contacts", message)]


def test_role_key_and_required_columns(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    write_csv(landing, CON_FILE, contact_rows({"role": "owner"}, {"contact_id": None}))
    rows = [{k: v for k, v in CONTACT_ROW.items() if k != "is_primary"}]
    write_csv(landing, "contacts/contacts_2026-05-04.csv", rows)

    report = ingest_landing(con, landing)

    assert [reason for _, reason in report.files_rejected] == [
        f"{CON_FILE}: row 2: column 'contact_id': required key value is NULL",
        "contacts/contacts_2026-05-04.csv: missing required column 'is_primary'",
    ]
    write_csv(landing, CON_FILE, contact_rows({"role": "owner"}))
    assert ingest_landing(con, landing).rows_flagged == [
        f"{CON_FILE}: row 1: column 'role': 'owner' is not one of "
        "champion, admin, user, executive, billing; the row is loaded and flagged (a legal "
        "value? add it to allowed_values in cswf.yaml)"]


def test_parquet_contacts_with_native_booleans(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    path = landing / "contacts" / "contacts_2026-05-03.parquet"
    path.parent.mkdir(parents=True)
    pl.DataFrame(
        {
            "snapshot_date": [date(2026, 5, 3)] * 2,
            "contact_id": ["CON-1", "CON-2"],
            "account_id": ["ACC-1", "ACC-1"],
            "contact_name": ["Ben Jensen", "Tara Dubois"],
            "email": ["ben@example.org", "tara@example.org"],
            "role": ["champion", "billing"],
            "is_primary": [True, False],
        }
    ).write_parquet(path)

    report = ingest_landing(con, landing)

    assert report.files_rejected == [] and report.rows_loaded["contacts"] == 2
    assert table(con, "SELECT contact_id, is_primary, title, nps FROM raw_contacts ORDER BY 1") == [
        ("CON-1", True, None, None),
        ("CON-2", False, None, None),
    ]


def test_duplicate_contact_keys_block_the_tick(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    write_csv(landing, ACC_FILE, account_rows({}))
    write_csv(landing, CON_FILE, contact_rows({}, {}, {"contact_id": "CON-2"}))
    ingest_landing(con, landing)

    assert snapshot_problems(con) == [
        "raw_contacts: 1 duplicate (snapshot_date, contact_id) keys, e.g. "
        "2026-05-03 CON-1 x2 in contacts/contacts_2026-05-03.csv: land a corrected file "
        "under the same name (deleting a file leaves its rows in place)"
    ]


def test_accounts_and_usage_alone_stay_valid(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    write_csv(landing, ACC_FILE, account_rows({}))
    ingest_landing(con, landing)

    assert snapshot_problems(con) == []
    assert table(con, "SELECT count(*) FROM raw_contacts") == [(0,)]
    assert table(con, "SELECT count(*) FROM raw_opportunities") == [(0,)]
    facts = build_facts(con, [datetime(2026, 5, 3, 9)], SQL_DIR, "contact_facts")
    assert facts.is_empty() and dict(facts.schema) == fact_schema(SQL_DIR, "contact_facts")


# -- facts ----------------------------------------------------------------------------------------


def contact(day: date, contact_id: str, account_id: str | None, **values: object) -> dict:
    row: dict[str, object] = {c.name: None for c in CONTACTS.columns}
    row |= {
        "snapshot_date": day,
        "contact_id": contact_id,
        "account_id": account_id,
        "contact_name": f"{contact_id} Person",
        "email": f"{contact_id.lower()}@example.org",
        "role": "user",
        "is_primary": False,
    }
    return row | values


@pytest.fixture
def facts_con() -> duckdb.DuckDBPyConnection:
    """Account A: health 80 on 05-01, 55 from 05-10. Account B: first snapshot on 05-20.
    Contacts: K1 (A, daily 05-01..05-03 then 05-12), K2 (B, from 05-05), K3 (A, from 05-15),
    K4 (no account)."""
    connection = duckdb.connect(":memory:")
    ensure_tables(connection)
    insert(
        connection,
        "raw_accounts",
        [
            snapshot(date(2026, 5, 1), "A", health_score=80.0, time_zone="Europe/Berlin"),
            snapshot(date(2026, 5, 10), "A", health_score=55.0, tier="mid_market"),
            snapshot(date(2026, 5, 20), "B", tier="smb"),
        ],
    )
    insert(
        connection,
        "raw_contacts",
        [
            *(
                contact(
                    date(2026, 5, d),
                    "K1",
                    "A",
                    role="champion",
                    is_primary=True,
                    last_login_on=date(2026, 4, 28),
                    nps=6,
                    time_zone="Europe/Berlin",
                )
                for d in (1, 2, 3)
            ),
            contact(date(2026, 5, 12), "K1", "A", role="champion", is_primary=True,
                    last_login_on=date(2026, 5, 11), nps=10),
            contact(date(2026, 5, 5), "K2", "B", role="billing"),
            contact(date(2026, 5, 15), "K3", "A", title="CFO", role="executive"),
            contact(date(2026, 5, 5), "K4", None),
        ],
    )  # fmt: skip
    yield connection
    connection.close()


def contact_facts(con: duckdb.DuckDBPyConnection, *ticks: datetime) -> pl.DataFrame:
    return build_facts(con, list(ticks), SQL_DIR, "contact_facts")


def one(frame: pl.DataFrame, participant: str) -> dict[str, object]:
    return frame.filter(pl.col("participant_id") == participant).row(0, named=True)


def test_contacts_appear_from_their_first_snapshot(facts_con: duckdb.DuckDBPyConnection) -> None:
    assert contact_facts(facts_con, datetime(2026, 4, 30, 23)).is_empty()
    early = contact_facts(facts_con, datetime(2026, 5, 4, 9))
    assert early["participant_id"].to_list() == ["K1"]
    later = contact_facts(facts_con, datetime(2026, 5, 15))
    assert later["participant_id"].to_list() == ["K1", "K2", "K3", "K4"]
    k1 = one(contact_facts(facts_con, datetime(2026, 5, 9, 9)), "K1")
    assert k1["snapshot_date"] == date(2026, 5, 3)  # missing days keep the latest earlier row
    assert k1["snapshot_age_days"] == 6


def test_contact_fields_and_days_since_login(facts_con: duckdb.DuckDBPyConnection) -> None:
    k1 = one(contact_facts(facts_con, datetime(2026, 5, 3, 15)), "K1")
    assert k1["participant_id"] == k1["contact_id"] == "K1"
    assert (k1["account_id"], k1["role"], k1["is_primary"]) == ("A", "champion", True)
    assert (k1["nps"], k1["nps_category"], k1["time_zone"]) == (6, "detractor", "Europe/Berlin")
    assert k1["days_since_login"] == 5  # 05-03 - 04-28
    later = one(contact_facts(facts_con, datetime(2026, 5, 13)), "K1")
    assert (later["days_since_login"], later["nps_category"]) == (2, "promoter")
    k3 = one(contact_facts(facts_con, datetime(2026, 5, 16)), "K3")
    assert k3["days_since_login"] is None and k3["title"] == "CFO"


def test_account_fields_follow_the_account_as_of_the_tick(
    facts_con: duckdb.DuckDBPyConnection,
) -> None:
    before = one(contact_facts(facts_con, datetime(2026, 5, 9, 21)), "K1")
    after = one(contact_facts(facts_con, datetime(2026, 5, 10)), "K1")
    assert (before["account.health_score"], before["account.tier"]) == (80.0, "enterprise")
    assert (after["account.health_score"], after["account.tier"]) == (55.0, "mid_market")
    assert before["account.time_zone"] == "Europe/Berlin" and after["account.time_zone"] is None
    assert after["account.csm_email"] == "maria.lopez@example.com"
    assert after["account.days_to_renewal"] == (date(2026, 8, 19) - date(2026, 5, 10)).days
    assert after["account.snapshot_date"] == date(2026, 5, 10)


def test_account_fields_are_null_until_the_account_has_a_snapshot(
    facts_con: duckdb.DuckDBPyConnection,
) -> None:
    facts = contact_facts(facts_con, datetime(2026, 5, 19, 21), datetime(2026, 5, 20))
    k2_before, k2_after = facts.filter(pl.col("participant_id") == "K2").iter_rows(named=True)
    account_fields = [c for c in facts.columns if c.startswith("account.")]
    assert all(k2_before[c] is None for c in account_fields)
    assert (k2_after["account.account_id"], k2_after["account.tier"]) == ("B", "smb")
    k4 = one(facts, "K4")
    assert k4["account_id"] is None and all(k4[c] is None for c in account_fields)


def test_account_fields_equal_the_account_facts(facts_con: duckdb.DuckDBPyConnection) -> None:
    ticks = [datetime(2026, 5, 9, 9), datetime(2026, 5, 21, 6)]
    accounts = build_facts(facts_con, ticks, SQL_DIR).drop("participant_id")
    contacts = contact_facts(facts_con, *ticks).filter(pl.col("account.account_id").is_not_null())
    from_contacts = (
        contacts.select("as_of", pl.col("^account\\..*$").name.map(lambda n: n[len("account.") :]))
        .unique()
        .sort("as_of", "account_id")
    )
    assert from_contacts.equals(
        accounts.join(from_contacts.select("as_of", "account_id"), on=["as_of", "account_id"])
        .select(from_contacts.columns)
        .sort("as_of", "account_id")
    )
    assert from_contacts.height == 3  # A twice, B once


def test_many_ticks_equal_ticks_one_by_one(facts_con: duckdb.DuckDBPyConnection) -> None:
    ticks = [datetime(2026, 5, 2, 9), datetime(2026, 5, 10), datetime(2026, 5, 20, 3)]
    together = contact_facts(facts_con, *reversed(ticks))
    alone = pl.concat([contact_facts(facts_con, t) for t in ticks])
    assert together.equals(alone)


def test_contact_fact_schema() -> None:
    schema = fact_schema(SQL_DIR, "contact_facts")
    accounts = fact_schema(SQL_DIR)
    own = [name for name in schema if not name.startswith("account.")]
    assert own == [
        "as_of",
        "participant_id",
        "contact_id",
        "account_id",
        "snapshot_date",
        "contact_name",
        "email",
        "role",
        "is_primary",
        "title",
        "last_login_on",
        "nps",
        "nps_category",
        "time_zone",
        "days_since_login",
        "snapshot_age_days",
        "recent_events",
    ]
    assert (schema["is_primary"], schema["days_since_login"]) == (pl.Boolean(), pl.Int32())
    prefixed = {name: dtype for name, dtype in schema.items() if name.startswith("account.")}
    assert prefixed == {
        f"account.{name}": dtype
        for name, dtype in accounts.items()
        if name not in ("as_of", "participant_id")
    }
    # the account's fields in the account facts' order; extensions (recent_events) come last
    assert [name for name in schema if name.startswith("account.")] == list(prefixed)
    assert list(schema)[-1] == "recent_events"


def test_columns_keep_only_the_fields_asked_for(facts_con: duckdb.DuckDBPyConnection) -> None:
    ticks = [datetime(2026, 5, 9, 9), datetime(2026, 5, 21, 6)]
    wanted = ["account.health_score", "role", "days_since_login"]
    some = build_facts(facts_con, ticks, SQL_DIR, "contact_facts", columns=wanted)
    full = contact_facts(facts_con, *ticks)
    assert some.columns == ["as_of", "participant_id", *wanted]
    assert some.equals(full.select(some.columns))
    with pytest.raises(FactModelError, match=r"contact_facts\.sql: no fact field 'health_score'"):
        build_facts(facts_con, ticks, SQL_DIR, "contact_facts", columns=["health_score"])
