"""Landing ingest: idempotency, replacement of changed files, rejections, blocking problems."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from cswf.ingest import ACCOUNTS, OBJECTS, ingest_landing, landing_files, snapshot_problems
from cswf.ingest.checks import flagged_rows
from cswf.ingest.contract import landing_objects
from cswf.ingest.landing import ingest_all
from cswf.settings import Settings

FLAG = "; the row is loaded and flagged (a legal value? add it to allowed_values in cswf.yaml)"

ACCOUNT_ROW = {
    "snapshot_date": "2026-05-03",
    "account_id": "ACC-1",
    "account_name": "Acme Data Inc",
    "tier": "enterprise",
    "stage": "adoption",
    "stage_entered_on": "2026-04-20",
    "arr": "120000.0",
    "seats_purchased": "200",
    "seats_active": "90",
    "contract_start": "2026-03-01",
    "renewal_date": "2027-03-01",
    "health_score": "72.5",
    "nps": "8",
    "nps_responded_on": "2026-04-01",
    "open_tickets": "2",
    "csm_name": "Maria Lopez",
    "csm_email": "maria.lopez@example.com",
    "primary_contact_name": "Ben Jensen",
    "primary_contact_email": "ben.jensen@example.org",
    "region": "EMEA",
    "industry": "Software",
}


def account_rows(*overrides: dict[str, str | None]) -> list[dict[str, str | None]]:
    return [{**ACCOUNT_ROW, **o} for o in overrides]


def write_csv(landing: Path, rel: str, rows: list[dict[str, str | None]]) -> Path:
    path = landing / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows, schema=dict.fromkeys(rows[0], pl.String)).write_csv(path)
    return path


def write_text(landing: Path, rel: str, text: str) -> Path:
    path = landing / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def table(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(":memory:")
    yield connection
    connection.close()


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    return tmp_path / "landing"


ACC_FILE = "accounts/accounts_2026-05-03.csv"
DOUBLED_TODO = ("land a corrected file under the same name (deleting a file leaves its rows in "
                "place)")


def test_ingest_twice_changes_nothing(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    write_csv(landing, ACC_FILE, account_rows({}, {"account_id": "ACC-2"}))
    write_text(
        landing,
        "usage/usage_2026-05-02.csv",
        "usage_date,account_id,active_users,events\n"
        "2026-05-02,ACC-1,10,100\n2026-05-02,ACC-2,3,30\n",
    )

    first = ingest_landing(con, landing)
    before = table(con, "SELECT * FROM raw_accounts ORDER BY account_id")
    second = ingest_landing(con, landing)

    assert first.files_loaded == [ACC_FILE, "usage/usage_2026-05-02.csv"]
    assert first.rows_loaded == {"accounts": 2, "usage": 2, "contacts": 0, "opportunities": 0}
    assert second.files_loaded == [] and second.files_rejected == []
    assert second.files_skipped_unchanged == first.files_loaded
    assert second.rows_loaded == dict.fromkeys(OBJECTS, 0)
    assert table(con, "SELECT * FROM raw_accounts ORDER BY account_id") == before
    assert table(con, "SELECT count(*) FROM raw_usage") == [(2,)]
    assert table(con, "SELECT source_file, object, row_count FROM ingested_files ORDER BY 1") == [
        (ACC_FILE, "accounts", 2),
        ("usage/usage_2026-05-02.csv", "usage", 2),
    ]


def test_typed_columns_and_relative_source_file(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    write_csv(landing, ACC_FILE, account_rows({}))
    ingest_landing(con, landing)
    row = con.sql("SELECT * FROM raw_accounts").pl().row(0, named=True)
    assert row["snapshot_date"] == date(2026, 5, 3)
    assert row["seats_active"] == 90 and row["arr"] == 120000.0 and row["health_score"] == 72.5
    assert row["source_file"] == ACC_FILE
    types = dict(
        table(
            con,
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'raw_accounts'",
        )
    )
    assert {c.name: c.dtype for c in ACCOUNTS.columns}.items() <= types.items()


def test_changed_file_replaces_its_rows(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    write_csv(landing, ACC_FILE, account_rows({}, {"account_id": "ACC-2"}))
    write_csv(
        landing, "accounts/accounts_2026-05-04.csv", account_rows({"snapshot_date": "2026-05-04"})
    )
    ingest_landing(con, landing)

    write_csv(landing, ACC_FILE, account_rows({"seats_active": "120"}))
    report = ingest_landing(con, landing)

    assert report.files_loaded == [ACC_FILE]
    assert report.files_skipped_unchanged == ["accounts/accounts_2026-05-04.csv"]
    assert table(
        con,
        "SELECT snapshot_date::VARCHAR, account_id, seats_active FROM raw_accounts ORDER BY 1, 2",
    ) == [
        ("2026-05-03", "ACC-1", 120),
        ("2026-05-04", "ACC-1", 90),
    ]
    assert table(con, f"SELECT row_count FROM ingested_files WHERE source_file = '{ACC_FILE}'") == [
        (1,)
    ]


def test_missing_required_column_is_rejected(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    rows = [{k: v for k, v in ACCOUNT_ROW.items() if k != "renewal_date"}]
    write_csv(landing, ACC_FILE, rows)

    report = ingest_landing(con, landing)

    message = "accounts/accounts_2026-05-03.csv: missing required column 'renewal_date'"
    assert report.files_rejected == [(ACC_FILE, message)]
    assert report.files_loaded == []
    assert table(con, "SELECT count(*) FROM raw_accounts") == [(0,)]
    assert table(con, "SELECT source_file, object, reason FROM ingest_rejections") == [
        (ACC_FILE, "accounts", message)
    ]
    assert any(message in problem for problem in snapshot_problems(con))


def test_bad_value_names_row_and_column(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    rows = account_rows(
        {"account_id": "ACC-1"},
        {"account_id": "ACC-2", "seats_active": "abc"},
        {"account_id": "ACC-3", "seats_active": "many"},
    )
    write_csv(landing, ACC_FILE, rows)

    report = ingest_landing(con, landing)

    assert report.files_rejected == [
        (
            ACC_FILE,
            "accounts/accounts_2026-05-03.csv: row 2: column 'seats_active': "
            "could not convert 'abc' to INTEGER (1 more bad rows in this column)",
        )
    ]
    assert table(con, "SELECT count(*) FROM raw_accounts") == [(0,)]


def test_bad_date_and_null_key_reject_the_file(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    rows = account_rows({"renewal_date": "next year"}, {"account_id": None}, {"tier": "gold"})
    write_csv(landing, ACC_FILE, rows)

    report = ingest_landing(con, landing)

    assert [reason for _, reason in report.files_rejected] == [
        f"{ACC_FILE}: row 2: column 'account_id': required key value is NULL",
        f"{ACC_FILE}: row 1: column 'renewal_date': could not convert 'next year' to DATE",
    ]
    assert report.rows_flagged == []  # a rejected file flags nothing: none of it loaded


def test_unknown_tier_flags_its_row_and_loads_the_file(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    rows = account_rows({}, {"account_id": "ACC-2", "tier": "strategic"},
                        {"account_id": "ACC-3", "stage": "dormant"})
    write_csv(landing, ACC_FILE, rows)

    report = ingest_landing(con, landing)

    assert report.files_loaded == [ACC_FILE]
    assert report.rows_flagged == [
        f"{ACC_FILE}: row 2: column 'tier': 'strategic' is not one of enterprise, mid_market, "
        f"smb{FLAG}",
        f"{ACC_FILE}: row 3: column 'stage': 'dormant' is not one of onboarding, adoption, "
        f"mature, renewal, churned{FLAG}",
    ]
    assert table(con, "SELECT account_id, tier, stage FROM raw_accounts ORDER BY 1") == [
        ("ACC-1", "enterprise", "adoption"),
        ("ACC-2", "strategic", "adoption"),  # kept as written: the flag says to look
        ("ACC-3", "enterprise", "dormant"),
    ]
    assert table(con, "SELECT object, row_number, column_name, value FROM ingest_row_flags "
                      "ORDER BY 2") == [("accounts", 2, "tier", "strategic"),
                                        ("accounts", 3, "stage", "dormant")]
    assert snapshot_problems(con) == []  # flagged rows never block a tick
    assert flagged_rows(con).count == 2

    write_csv(landing, ACC_FILE, account_rows({}, {"account_id": "ACC-2"}))  # fixed upstream
    assert ingest_landing(con, landing).rows_flagged == []
    assert table(con, "SELECT count(*) FROM ingest_row_flags") == [(0,)]


def test_tier_values_are_settings(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    objects = landing_objects(allowed={"accounts": {"tier": ["enterprise", "strategic"]}})
    rows = account_rows({}, {"account_id": "ACC-2", "tier": "strategic"},
                        {"account_id": "ACC-3", "tier": "smb"})
    write_csv(landing, ACC_FILE, rows)

    report = ingest_landing(con, landing, objects)

    assert report.rows_flagged == [
        f"{ACC_FILE}: row 3: column 'tier': 'smb' is not one of enterprise, strategic{FLAG}"]


def test_settings_value_sets_and_fields_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as err:
        Settings(root=tmp_path, allowed_values={"accounts": {"tiers": ["a"]}},
                 fields={"accounts": {"arr": "float"}})
    text = str(err.value)
    assert "fields.accounts.arr: 'arr' is already a contract column of accounts" in text
    assert "allowed_values.accounts.tiers: accounts has no text column 'tiers'" in text


def test_optional_columns_absent_are_null_and_extras_ignored(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    optional = {c.name for c in ACCOUNTS.columns if not c.required}
    rows = [{k: v for k, v in ACCOUNT_ROW.items() if k not in optional} | {"favourite": "tea"}]
    write_csv(landing, ACC_FILE, rows)

    report = ingest_landing(con, landing)

    assert report.files_loaded == [ACC_FILE]
    row = con.sql("SELECT * FROM raw_accounts").pl().row(0, named=True)
    assert all(row[name] is None for name in optional)
    assert row["seats_active"] == 90
    assert "favourite" not in row


def test_account_time_zone_is_optional(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    write_csv(landing, ACC_FILE, account_rows({}))  # no time_zone column at all
    rows = account_rows({"time_zone": None}, {"account_id": "ACC-2", "time_zone": "Asia/Tokyo"})
    write_csv(landing, "accounts/accounts_2026-05-04.csv", rows)

    assert ingest_landing(con, landing).files_rejected == []
    assert table(con, "SELECT account_id, time_zone FROM raw_accounts ORDER BY 1, source_file") == [
        ("ACC-1", None),
        ("ACC-1", None),
        ("ACC-2", "Asia/Tokyo"),
    ]


def test_older_warehouse_gets_new_columns(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    """A raw_accounts made before time_zone existed is extended in place, its rows kept."""
    old = ", ".join(f'"{c.name}" {c.dtype}' for c in ACCOUNTS.columns if c.name != "time_zone")
    con.execute(f"CREATE TABLE raw_accounts ({old}, source_file VARCHAR)").fetchall()
    con.execute(
        "INSERT INTO raw_accounts (snapshot_date, account_id, source_file) "
        "VALUES (DATE '2026-05-02', 'OLD', 'accounts/old.csv')"
    ).fetchall()
    write_csv(landing, ACC_FILE, account_rows({"time_zone": "Europe/London"}))

    assert ingest_landing(con, landing).files_rejected == []
    assert table(con, "SELECT account_id, time_zone FROM raw_accounts ORDER BY 1") == [
        ("ACC-1", "Europe/London"),
        ("OLD", None),
    ]
    assert {t for (t,) in table(con, "SELECT table_name FROM duckdb_tables()")} >= {
        o.table for o in OBJECTS.values()
    }


def test_parquet_file_with_native_types(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    path = landing / "usage" / "usage_2026-05-02.parquet"
    path.parent.mkdir(parents=True)
    pl.DataFrame(
        {
            "usage_date": [date(2026, 5, 2), date(2026, 5, 2)],
            "account_id": ["ACC-1", "ACC-2"],
            "active_users": [4, 5],
            "events": [40, 50],
        }
    ).write_parquet(path)

    report = ingest_landing(con, landing)

    assert report.rows_loaded == {"accounts": 0, "usage": 2, "contacts": 0, "opportunities": 0}
    assert table(con, "SELECT account_id, events, source_file FROM raw_usage ORDER BY 1") == [
        ("ACC-1", 40, "usage/usage_2026-05-02.parquet"),
        ("ACC-2", 50, "usage/usage_2026-05-02.parquet"),
    ]


def test_rejected_change_keeps_previous_rows_until_fixed(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    write_csv(landing, ACC_FILE, account_rows({}))
    ingest_landing(con, landing)

    write_csv(landing, ACC_FILE, account_rows({"arr": "lots"}))
    rejected = ingest_landing(con, landing)
    again = ingest_landing(con, landing)

    assert len(rejected.files_rejected) == 1
    assert again.files_rejected == [] and again.files_skipped_unchanged == [ACC_FILE]
    assert table(con, "SELECT arr FROM raw_accounts") == [(120000.0,)]
    assert table(con, "SELECT count(*) FROM ingest_rejections") == [(1,)]

    write_csv(landing, ACC_FILE, account_rows({"arr": "130000"}))
    fixed = ingest_landing(con, landing)

    assert fixed.files_loaded == [ACC_FILE]
    assert table(con, "SELECT arr FROM raw_accounts") == [(130000.0,)]
    assert table(con, "SELECT count(*) FROM ingest_rejections") == [(0,)]
    assert snapshot_problems(con) == []


def test_removed_bad_file_stops_blocking(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    write_csv(landing, ACC_FILE, account_rows({}))
    bad = write_text(landing, "usage/usage_2026-05-02.csv", "usage_date,account_id\n")
    ingest_landing(con, landing)
    assert table(con, "SELECT count(*) FROM ingest_rejections") == [(1,)]  # one line a file

    bad.unlink()
    ingest_landing(con, landing)

    assert table(con, "SELECT count(*) FROM ingest_rejections") == [(0,)]


def test_unreadable_file_is_rejected_not_raised(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    write_text(landing, "usage/usage_2026-05-02.parquet", "this is not parquet")
    write_csv(landing, ACC_FILE, account_rows({}))

    report = ingest_landing(con, landing)

    assert report.files_loaded == [ACC_FILE]
    ((rel, reason),) = report.files_rejected
    assert rel == "usage/usage_2026-05-02.parquet"
    assert reason.startswith("usage/usage_2026-05-02.parquet: could not read file: ")


def test_landing_files_sorted_and_filtered(landing: Path) -> None:
    write_text(landing, "usage/usage_2026-05-02.csv", "x\n")
    write_text(landing, "accounts/accounts_2026-05-02.parquet", "x")
    write_text(landing, "accounts/accounts_2026-05-01.csv", "x\n")
    write_text(landing, "accounts/.accounts_2026-05-03.csv", "x\n")  # being written
    write_text(landing, "accounts/readme.txt", "x\n")
    write_text(landing, "tickets/tickets_2026-05-01.csv", "x\n")

    assert [p.relative_to(landing).as_posix() for p in landing_files(landing)] == [
        "accounts/accounts_2026-05-01.csv",
        "accounts/accounts_2026-05-02.parquet",
        "usage/usage_2026-05-02.csv",
    ]
    assert landing_files(landing / "missing") == []


def test_snapshot_problems_duplicates_and_empty(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    assert snapshot_problems(con) == [
        "raw_accounts is empty: no account snapshot has been ingested"
    ]

    write_csv(landing, ACC_FILE, account_rows({}, {"account_id": "ACC-2"}))
    write_csv(
        landing, "accounts/accounts_2026-05-03_copy.csv", account_rows({}, {"account_id": "ACC-2"})
    )
    write_text(
        landing,
        "usage/usage_2026-05-02.csv",
        "usage_date,account_id,active_users,events\n2026-05-02,ACC-1,1,1\n2026-05-02,ACC-1,2,2\n",
    )
    ingest_landing(con, landing)

    assert snapshot_problems(con) == [
        "raw_accounts: 2 duplicate (snapshot_date, account_id) keys, e.g. "
        "2026-05-03 ACC-1 x2 in accounts/accounts_2026-05-03.csv, "
        "accounts/accounts_2026-05-03_copy.csv; "
        "2026-05-03 ACC-2 x2 in accounts/accounts_2026-05-03.csv, "
        "accounts/accounts_2026-05-03_copy.csv: " + DOUBLED_TODO,
        "raw_usage: 1 duplicate (usage_date, account_id) keys, e.g. "
        "2026-05-02 ACC-1 x2 in usage/usage_2026-05-02.csv: " + DOUBLED_TODO,
    ]


def test_snapshot_problems_caps_examples(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    rows = account_rows(*({"account_id": f"ACC-{i}"} for i in range(8)))
    write_csv(landing, ACC_FILE, rows + rows)
    ingest_landing(con, landing)

    (problem,) = snapshot_problems(con)
    assert problem.startswith("raw_accounts: 8 duplicate (snapshot_date, account_id) keys, e.g. ")
    assert problem.count(" x2 in ") == 5


def test_every_contract_column_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "data-contract.md").read_text()
    columns = [c for obj in OBJECTS.values() for c in obj.columns]
    missing = [c.name for c in columns if f"| {c.name} | {c.dtype} |" not in doc]
    assert missing == []


def test_one_bad_file_in_a_batch_is_rejected_while_the_others_land(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    """Files are checked together, but row numbers and rejections stay per file."""
    write_csv(landing, "accounts/accounts_2026-05-01.csv",
              account_rows({"snapshot_date": "2026-05-01"},
                           {"snapshot_date": "2026-05-01", "account_id": "ACC-2"}))
    write_csv(landing, "accounts/accounts_2026-05-02.csv",
              account_rows({"snapshot_date": "2026-05-02"},
                           {"snapshot_date": "2026-05-02", "seats_active": "abc"}))
    pl.DataFrame([ACCOUNT_ROW]).with_columns(
        pl.lit(date(2026, 5, 3)).alias("snapshot_date"), pl.lit(90).alias("seats_active")
    ).write_parquet(landing / "accounts" / "accounts_2026-05-03.parquet")

    report = ingest_landing(con, landing)

    assert report.files_loaded == ["accounts/accounts_2026-05-01.csv",
                                   "accounts/accounts_2026-05-03.parquet"]
    assert report.files_rejected == [(
        "accounts/accounts_2026-05-02.csv",
        "accounts/accounts_2026-05-02.csv: row 2: column 'seats_active': "
        "could not convert 'abc' to INTEGER",
    )]
    assert report.rows_loaded["accounts"] == 3
    assert table(con, "SELECT source_file, row_count FROM ingested_files ORDER BY 1") == [
        ("accounts/accounts_2026-05-01.csv", 2),
        ("accounts/accounts_2026-05-03.parquet", 1),
    ]
    assert table(con, "SELECT snapshot_date::VARCHAR, account_id FROM raw_accounts ORDER BY 1, 2"
                 ) == [("2026-05-01", "ACC-1"), ("2026-05-01", "ACC-2"), ("2026-05-03", "ACC-1")]


def test_small_batches_load_the_same(
    con: duckdb.DuckDBPyConnection, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cswf.ingest import snapshots as ingest

    monkeypatch.setattr(ingest, "BATCH_ROWS", 1)  # every file its own batch
    for day in ("2026-05-01", "2026-05-02", "2026-05-03"):
        write_csv(landing, f"accounts/accounts_{day}.csv", account_rows({"snapshot_date": day}))

    report = ingest_landing(con, landing)

    assert report.rows_loaded["accounts"] == 3 and len(report.files_loaded) == 3
    assert table(con, "SELECT count(*) FROM ingested_files") == [(3,)]


def test_a_failed_batch_write_is_pinned_on_its_file(
    con: duckdb.DuckDBPyConnection, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should one INSERT of many files fail, the files are retried alone: only the culprit
    is rejected, with the database's error, and nothing of it lands."""
    from cswf.ingest import snapshots as ingest

    real_insert = ingest._insert
    culprit = "accounts/accounts_2026-05-02.csv"

    def insert(con: duckdb.DuckDBPyConnection, obj, names, relation: str, skip) -> None:
        real_insert(con, obj, names, relation, skip)
        files = con.execute(f"SELECT list(DISTINCT {ingest.FILE}) FROM {relation}").fetchall()
        if culprit in files[0][0]:
            raise duckdb.ConversionException("boom")

    monkeypatch.setattr(ingest, "_insert", insert)
    for day in ("2026-05-01", "2026-05-02", "2026-05-03"):
        write_csv(landing, f"accounts/accounts_{day}.csv", account_rows({"snapshot_date": day}))

    report = ingest_landing(con, landing)

    assert report.files_loaded == ["accounts/accounts_2026-05-01.csv",
                                   "accounts/accounts_2026-05-03.csv"]
    assert report.files_rejected == [(culprit, f"{culprit}: boom")]
    assert table(con, "SELECT DISTINCT source_file FROM raw_accounts ORDER BY 1") == [
        ("accounts/accounts_2026-05-01.csv",), ("accounts/accounts_2026-05-03.csv",),
    ]
    assert table(con, "SELECT source_file FROM ingest_rejections") == [(culprit,)]


@pytest.mark.parametrize(("column", "value", "dtype"), [
    ("seats_purchased", "1,000", "INTEGER"), ("arr", "120,000.50", "DOUBLE")])
def test_a_thousands_separator_in_a_numeric_column_is_rejected_never_misread(
        con: duckdb.DuckDBPyConnection, landing: Path, column: str, value: str, dtype: str
) -> None:
    """Scenario 12: "1,000" is neither read as 1 nor as 1000, nor dropped silently: the file is
    rejected naming the row and the column, and the rows landed before stay."""
    write_csv(landing, ACC_FILE, account_rows({"account_id": "ACC-1"}))
    ingest_landing(con, landing)
    before = table(con, "SELECT * FROM raw_accounts")
    write_csv(landing, ACC_FILE, account_rows({"account_id": "ACC-1", column: value}))
    report = ingest_landing(con, landing)
    assert report.files_rejected == [(
        ACC_FILE, f"accounts/accounts_2026-05-03.csv: row 1: column '{column}': "
                  f"could not convert '{value}' to {dtype}")]
    assert table(con, "SELECT * FROM raw_accounts") == before


def test_a_flagged_tier_never_stops_a_tick(tmp_path: Path) -> None:
    """An unknown tier flags its row at ingest; the data tests on tier (landing and facts) then
    warn, never block, and follow the project's value set once it lists the value."""
    from test_cli_errors import DAY, cswf, make_project

    root = make_project(tmp_path)
    path = root / f"data/landing/accounts/accounts_{DAY}.csv"
    path.write_text(path.read_text().replace(",smb,", ",strategic,"))
    code, out, err = cswf("tick", "--as-of", "2026-06-01T00:00", "--root", str(root))
    assert code == 0, out + err
    with duckdb.connect(str(root / "data/cswf.duckdb")) as con:
        assert table(con, "SELECT column_name, value FROM ingest_row_flags") == [
            ("tier", "strategic")]
    (root / "cswf.yaml").write_text(
        "tick_start: '2026-05-31 00:00'\n"
        "allowed_values: {accounts: {tier: [enterprise, mid_market, smb, strategic]}}\n")
    code, out, err = cswf("tick", "--as-of", "2026-06-01T03:00", "--root", str(root))
    assert code == 0, out + err


def test_tier_tests_follow_the_value_sets_and_warn() -> None:
    from cswf.quality import declared_tests

    objects = landing_objects(allowed={"accounts": {"tier": ["enterprise", "strategic"]}})
    for model in ("raw_accounts", "account_facts"):
        tier = next(t for t in declared_tests(model, None, objects)
                    if t.kind == "accepted_values" and t.column == "tier")
        assert (tier.values, tier.severity) == (("enterprise", "strategic"), "warn"), model
    nps = next(t for t in declared_tests("account_facts", None, objects)
               if t.column == "nps_category" and t.kind == "accepted_values")
    assert nps.severity == "error"  # not a setting: as declared
    role = next(t for t in declared_tests("contact_facts", None, objects)
                if t.column == "role" and t.kind == "accepted_values")
    assert role.severity == "warn"


def test_a_duplicate_key_is_said_at_ingest_with_its_file_and_rows(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    write_csv(landing, ACC_FILE, account_rows({}, {"account_id": "ACC-2"}, {}))
    assert ingest_landing(con, landing).duplicate_keys == [
        "(snapshot_date, account_id) = (2026-05-03, ACC-1) is in "
        "accounts/accounts_2026-05-03.csv rows 1, 3: ticks on or after 2026-05-03 are blocked "
        "until you " + DOUBLED_TODO]

    write_csv(landing, "accounts/copy.csv", account_rows({"account_id": "ACC-2"}))
    assert ingest_landing(con, landing).duplicate_keys == [  # a file loaded before: no rows
        "(snapshot_date, account_id) = (2026-05-03, ACC-2) is in "
        "accounts/accounts_2026-05-03.csv and accounts/copy.csv row 1: ticks on or after "
        "2026-05-03 are blocked until you " + DOUBLED_TODO]

    write_csv(landing, ACC_FILE, account_rows({}))  # corrected, under the same name
    write_csv(landing, "accounts/copy.csv", account_rows({"account_id": "ACC-2"}))
    assert ingest_landing(con, landing).duplicate_keys == []
    assert snapshot_problems(con) == []


def test_missing_columns_are_one_line_with_the_separator_hint(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    write_text(landing, "usage/usage_2026-05-02.csv",
               "usage_date;account_id;active_users;events\n2026-05-02;ACC-1;1;1\n")
    write_text(landing, "usage/usage_2026-05-03.csv", "usage_date,active_users\n2026-05-03,1\n")

    assert [reason for _, reason in ingest_landing(con, landing).files_rejected] == [
        "usage/usage_2026-05-02.csv: missing required columns 'usage_date', 'account_id', "
        "'active_users', 'events' (the header holds ';': CSV files must be comma-separated; "
        "save it with ',' between fields)",
        "usage/usage_2026-05-03.csv: missing required columns 'account_id', 'events'",
    ]


def test_an_action_result_before_any_tick_waits_and_the_snapshots_load(
    con: duckdb.DuckDBPyConnection, landing: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A fresh project: no outbox yet. The snapshots load, the event row says it waits, and
    each rejection is said once (in the report, not again in the log), with what to do."""
    write_csv(landing, ACC_FILE, account_rows({}))
    write_text(landing, "usage/usage_2026-05-02.csv", "usage_date,account_id\n")
    write_text(landing, "action_events/opens.csv",
               "action_id,event_type,occurred_at,detail\n"
               "rescue/ACC-1/1/s1.a0,opened,2026-07-02 10:00,\n")
    with caplog.at_level("WARNING"):
        report = ingest_all(con, landing)

    assert report.snapshots.files_loaded == [ACC_FILE]
    lines = report.lines()
    assert ("rejected: usage/usage_2026-05-02.csv: missing required columns 'active_users', "
            "'events'; nothing of the file was loaded (an earlier version's rows stay): fix it "
            "and land it again under the same name") in lines
    assert ("rejected event row: opens.csv row 1: column action_id: 'rescue/ACC-1/1/s1.a0' is "
            "not in actions_outbox (yet); the row waits: leave the file in the landing folder "
            "and the first ingest after the tick that emits this action loads it (a typo? fix "
            "the action_id)") in lines
    assert caplog.records == []
