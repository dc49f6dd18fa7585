"""Demo book: deterministic, follows the contract, and realistic enough to drive workflows."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import available_timezones

import duckdb
import polars as pl
import pytest

from cswf.demo import generate_book, simulate_book
from cswf.demo.generate import simulate_related
from cswf.facts import build_facts
from cswf.ingest import ACCOUNTS, CONTACTS, OPPORTUNITIES, USAGE, ingest_landing, snapshot_problems
from cswf.ingest.contract import OPPORTUNITY_STAGES
from cswf.settings import PACKAGE_SQL

SQL_DIR = PACKAGE_SQL / "facts"
START = date(2026, 5, 1)


END = date(2026, 8, 28)


@pytest.fixture(scope="module")
def book() -> tuple[pl.DataFrame, pl.DataFrame]:
    snapshots, usage, _ = simulate_book()
    return snapshots, usage


@pytest.fixture(scope="module")
def related(book: tuple[pl.DataFrame, pl.DataFrame]) -> tuple[pl.DataFrame, pl.DataFrame]:
    return simulate_related(*book)


def test_same_seed_same_frames() -> None:
    first = simulate_book(accounts=150, days=30, seed=3)
    second = simulate_book(accounts=150, days=30, seed=3)
    other = simulate_book(accounts=150, days=30, seed=4)
    assert first[0].equals(second[0]) and first[1].equals(second[1]) and first[2] == second[2]
    assert not first[0].equals(other[0])


def test_same_seed_byte_identical_files(tmp_path: Path) -> None:
    first = generate_book(tmp_path / "a", accounts=40, days=5, seed=11)
    second = generate_book(tmp_path / "b", accounts=40, days=5, seed=11)
    assert [p.read_bytes() for p in first.files_written] == [
        p.read_bytes() for p in second.files_written
    ]


def test_frames_follow_the_contract(book: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    snapshots, usage = book
    assert snapshots.columns == [c.name for c in ACCOUNTS.columns]
    assert usage.columns == [c.name for c in USAGE.columns]
    assert (
        snapshots.select(pl.struct("snapshot_date", "account_id").is_duplicated().any()).item()
        is False
    )
    assert usage.select(pl.struct("usage_date", "account_id").is_duplicated().any()).item() is False
    required = [c.name for c in ACCOUNTS.columns if c.required]
    assert snapshots.select(pl.col(required).null_count().sum()).row(0) == (0,) * len(required)
    assert snapshots["snapshot_date"].min() == START
    assert snapshots["snapshot_date"].max() == date(2026, 8, 28)
    assert snapshots.filter(pl.col("seats_active") > pl.col("seats_purchased")).is_empty()
    assert snapshots["health_score"].drop_nulls().is_between(0, 100).all()
    assert snapshots["nps"].drop_nulls().is_between(0, 10).all()


def test_only_example_addresses(book: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    snapshots, _ = book
    emails = pl.concat([snapshots["csm_email"], snapshots["primary_contact_email"]]).unique()
    assert emails.str.contains(r"^[a-z0-9.]+@example\.(com|org)$").all()
    assert snapshots["csm_name"].n_unique() == 12


def test_tier_shares(book: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    snapshots, _ = book
    shares = snapshots.unique("account_id")["tier"].value_counts(normalize=True)
    share = dict(zip(shares["tier"], shares["proportion"], strict=True))
    assert share["enterprise"] == pytest.approx(0.15, abs=0.03)
    assert share["mid_market"] == pytest.approx(0.35, abs=0.04)
    assert share["smb"] == pytest.approx(0.50, abs=0.04)


def test_existing_book_and_onboarding_arrivals(book: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    snapshots, _ = book
    first = snapshots.sort("snapshot_date").group_by("account_id").first()
    existing = first.filter(pl.col("snapshot_date") == START)
    arrivals = first.filter(pl.col("snapshot_date") > START)
    assert 0.65 < existing.height / first.height < 0.75
    assert set(existing["stage"]) <= {"adoption", "mature", "renewal"}
    assert (arrivals["stage"] == "onboarding").all()
    assert (arrivals["contract_start"] == arrivals["snapshot_date"]).all()
    by_month = arrivals["snapshot_date"].dt.month().value_counts()
    assert by_month.height == 4 and by_month["count"].min() > 20  # arrivals all quarter long


def test_stage_progression_renewal_and_churn(book: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    snapshots, _ = book
    stages = snapshots.sort("snapshot_date").group_by("account_id").agg(pl.col("stage").unique())

    def went(a: str, b: str) -> int:
        both = pl.col("stage").list.contains(a) & pl.col("stage").list.contains(b)
        return stages.filter(both).height

    assert went("onboarding", "adoption") > 50
    assert went("renewal", "mature") > 100  # renewed: back to mature, renewal date a year later
    churned = snapshots.filter(pl.col("snapshot_date") == snapshots["snapshot_date"].max())
    churn_rate = (churned["stage"] == "churned").sum() / went("renewal", "renewal")
    assert 0.01 < churn_rate < 0.08
    renewal = snapshots.filter(pl.col("stage") == "renewal")
    assert (renewal["renewal_date"] - renewal["stage_entered_on"]).dt.total_days().max() == 90


def test_churned_usage_goes_to_about_zero(book: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    snapshots, usage = book
    churned = (
        snapshots.filter(pl.col("stage") == "churned")
        .group_by("account_id")
        .agg(pl.col("stage_entered_on").first().alias("churned_on"))
    )
    daily = (
        snapshots.join(churned, on="account_id")
        .join(
            usage,
            left_on=["account_id", "snapshot_date"],
            right_on=["account_id", "usage_date"],
            how="left",
        )
        .with_columns(pl.col("events").fill_null(0))
    )
    before = daily.filter(pl.col("snapshot_date") < pl.col("churned_on"))["events"].mean()
    after = daily.filter(pl.col("snapshot_date") > pl.col("churned_on") + pl.duration(days=7))
    assert churned.height > 5
    assert after["events"].mean() < 0.05 * before


def test_some_enterprise_health_crosses_below_60(book: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    snapshots, _ = book
    enterprise = snapshots.filter(pl.col("tier") == "enterprise").sort("snapshot_date")
    crossed = enterprise.with_columns(
        prev=pl.col("health_score").shift().over("account_id")
    ).filter((pl.col("prev") >= 60) & (pl.col("health_score") < 60))
    assert 10 < crossed["account_id"].n_unique() < 0.6 * enterprise["account_id"].n_unique()


def test_low_utilisation_group_and_improvers(book: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    snapshots, _ = book
    util = snapshots.with_columns(u=100 * pl.col("seats_active") / pl.col("seats_purchased"))
    first_day = util.filter(pl.col("snapshot_date") == START)
    low = first_day.filter(pl.col("u") < 40)["account_id"]
    assert 0.15 < low.len() / first_day.height < 0.35
    later_max = (
        util.filter(pl.col("account_id").is_in(low.implode()))
        .group_by("account_id")
        .agg(pl.col("u").max())
    )
    improved = (later_max["u"] > 40).sum()
    assert 10 < improved < low.len()


def test_usage_seasonality_and_drops(book: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    _, usage = book
    weekday = usage.group_by(pl.col("usage_date").dt.weekday() >= 6).agg(pl.col("events").mean())
    means = dict(zip(weekday["usage_date"], weekday["events"], strict=True))
    assert means[True] < 0.5 * means[False]  # weekends are quiet
    weekly = usage.group_by("account_id", pl.col("usage_date").dt.truncate("1w")).agg(
        pl.col("events").sum()
    )
    totals = (
        weekly.sort("usage_date")
        .group_by("account_id")
        .agg((pl.col("events").tail(4).mean() / pl.col("events").head(4).mean()).alias("ratio"))
    )
    dropped = (totals["ratio"] < 0.6).sum()
    assert 0.03 * totals.height < dropped < 0.25 * totals.height


def test_nps_answers_are_sporadic(book: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    snapshots, _ = book
    answers = snapshots.filter(pl.col("nps_responded_on") >= START).unique(
        ["account_id", "nps_responded_on"]
    )
    per_account = answers.group_by("account_id").len()["len"]
    assert per_account.max() <= 2  # every 60-90 days at most, over 120 days
    assert answers.height > 0.4 * snapshots["account_id"].n_unique()
    nps = answers["nps"]
    assert (nps >= 9).sum() > (nps <= 6).sum() > 0


def test_generate_book_writes_daily_files_that_ingest_cleanly(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    summary = generate_book(landing, accounts=60, days=12, fmt="csv")
    accounts_files = sorted(p.name for p in (landing / "accounts").iterdir())
    assert accounts_files[0] == "accounts_2026-05-01.csv" and len(accounts_files) == 12
    assert len(list((landing / "usage").iterdir())) == 12
    assert len(summary.files_written) == 48 and summary.end == date(2026, 5, 12)
    assert len(list((landing / "contacts").iterdir())) == 12
    assert len(list((landing / "opportunities").iterdir())) == 12

    con = duckdb.connect(":memory:")
    report = ingest_landing(con, landing)
    assert report.files_rejected == [] and len(report.files_loaded) == 48
    assert report.rows_loaded == {
        "accounts": summary.account_rows,
        "usage": summary.usage_rows,
        "contacts": summary.contact_rows,
        "opportunities": summary.opportunity_rows,
    }
    assert 2 * 60 <= summary.contacts <= 8 * 60 and summary.opportunities > 0
    assert snapshot_problems(con) == []
    facts = build_facts(con, [datetime(2026, 5, 12, 9)], SQL_DIR)
    assert facts.height == summary.existing_accounts + facts["stage"].eq("onboarding").sum()
    assert facts["usage_events_7d"].gt(0).mean() > 0.8

    tick = datetime(2026, 5, 12, 9)
    contacts = build_facts(con, [tick], SQL_DIR, "contact_facts")
    assert contacts.height == summary.contacts  # every contact's account is visible by then
    assert contacts["account.tier"].null_count() == 0  # contacts come with their account
    deals = build_facts(con, [tick], SQL_DIR, "opportunity_facts")
    assert deals.height == summary.opportunities
    assert deals.filter(pl.col("account.account_id").is_null())["type"].unique().to_list() in (
        [],
        ["new_business"],
    )  # only deals of accounts that have not arrived yet lack account fields

    again = generate_book(landing, accounts=60, days=12, fmt="parquet")
    assert sorted(p.suffix for p in (landing / "accounts").iterdir()) == [".parquet"] * 12
    assert sorted(p.suffix for p in (landing / "contacts").iterdir()) == [".parquet"] * 12
    assert again.account_rows == summary.account_rows
    assert again.contact_rows == summary.contact_rows


def test_contacts_and_opportunities_can_be_left_out(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    full = generate_book(landing, accounts=30, days=5, seed=2)
    bare = generate_book(landing, accounts=30, days=5, seed=2, contacts=False, opportunities=False)
    assert list((landing / "contacts").iterdir()) == []  # the earlier book's files are gone
    assert list((landing / "opportunities").iterdir()) == []
    assert (bare.contacts, bare.contact_rows, bare.opportunities, bare.opportunity_rows) == (
        0,
        0,
        0,
        0,
    )
    assert len(bare.files_written) == 10 and len(full.files_written) == 20
    assert [p.read_bytes() for p in bare.files_written] == [
        p.read_bytes() for p in full.files_written[:10]
    ]  # the accounts do not depend on the related objects
    only = generate_book(tmp_path / "other", accounts=30, days=5, seed=2, opportunities=False)
    assert only.contacts == full.contacts and not (tmp_path / "other" / "opportunities").exists()


def test_related_frames_follow_the_contract(
    related: tuple[pl.DataFrame, pl.DataFrame], book: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    for frame, obj in zip(related, (CONTACTS, OPPORTUNITIES), strict=True):
        assert frame.columns == [c.name for c in obj.columns]
        assert frame.select(pl.struct(*obj.key).is_duplicated().any()).item() is False
        required = [c.name for c in obj.columns if c.required]
        assert frame.select(pl.col(required).null_count().sum()).row(0) == (0,) * len(required)
        for column in obj.columns:
            if column.allowed:
                assert set(frame[column.name].unique()) <= set(column.allowed)
        assert frame["snapshot_date"].min() == START and frame["snapshot_date"].max() == END
    contacts, _ = related
    snapshots, _ = book
    days = snapshots.select("account_id", "snapshot_date")
    assert contacts.join(days, on=["account_id", "snapshot_date"], how="anti").is_empty()
    assert contacts["email"].str.contains(r"^[a-z0-9.]+@example\.org$").all()
    assert contacts["email"].n_unique() == contacts["contact_id"].n_unique()


def test_same_seed_same_related_frames(book: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    first = simulate_related(*book, seed=5)
    second = simulate_related(*book, seed=5)
    other = simulate_related(*book, seed=6)
    assert first[0].equals(second[0]) and first[1].equals(second[1])
    assert not first[0].equals(other[0])


def test_one_primary_contact_per_account_matching_the_account(
    related: tuple[pl.DataFrame, pl.DataFrame], book: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    contacts, _ = related
    snapshots, _ = book
    primaries = contacts.filter("is_primary")
    per_day = contacts.group_by("account_id", "snapshot_date").agg(
        pl.col("is_primary").sum().alias("primaries"),
        (pl.col("role") == "champion").sum().alias("champions"),
        pl.len().alias("contacts"),
    )
    assert (per_day["primaries"] == 1).all() and (per_day["champions"] == 1).all()
    assert per_day["contacts"].is_between(2, 8).all()
    assert per_day.height == snapshots.height  # every account has contacts every day
    matched = primaries.join(
        snapshots.select(
            "account_id",
            "snapshot_date",
            pl.col("primary_contact_name").alias("contact_name"),
            pl.col("primary_contact_email").alias("email"),
        ),
        on=["account_id", "snapshot_date", "contact_name", "email"],
    )
    assert matched.height == primaries.height
    roles = contacts.unique("contact_id")["role"].value_counts()
    counts = dict(zip(roles["role"], roles["count"], strict=True))
    assert counts["user"] > counts["admin"] > counts["billing"] > 0 and counts["executive"] > 0


def test_time_zones_by_region_shared_with_contacts(
    related: tuple[pl.DataFrame, pl.DataFrame], book: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    contacts, _ = related
    snapshots, _ = book
    accounts = snapshots.unique("account_id")
    assert accounts["time_zone"].null_count() == 0
    assert set(accounts["time_zone"]) <= available_timezones()
    by_region = accounts.group_by("region").agg(pl.col("time_zone").unique())
    zones = dict(zip(by_region["region"], by_region["time_zone"], strict=True))
    assert set(zones["EMEA"]) <= {"Europe/London", "Europe/Berlin", "Europe/Paris"}
    assert "America/New_York" in zones["North America"]
    joined = contacts.join(
        accounts.select("account_id", pl.col("time_zone").alias("account_zone")), on="account_id"
    )
    assert (joined["time_zone"] == joined["account_zone"]).all()


def test_logins_follow_usage_and_nps_is_sometimes_given(
    related: tuple[pl.DataFrame, pl.DataFrame], book: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    contacts, _ = related
    snapshots, _ = book
    last = contacts.filter(pl.col("snapshot_date") == END).join(
        snapshots.filter(pl.col("snapshot_date") == END).select("account_id", "stage"),
        on="account_id",
    )
    assert (last["last_login_on"].drop_nulls() <= END).all()
    idle = last.with_columns(days=(pl.lit(END) - pl.col("last_login_on")).dt.total_days())
    churned = idle.filter(pl.col("stage") == "churned")["days"].mean()
    active = idle.filter(pl.col("stage") != "churned")["days"].mean()
    assert churned > 3 * active  # logins stop when usage stops
    moved = contacts.group_by("contact_id").agg(pl.col("last_login_on").n_unique())
    assert (moved["last_login_on"] > 10).mean() > 0.5  # logins keep moving with usage
    nps = contacts.filter(pl.col("snapshot_date") == END)["nps"]
    assert 0.1 < nps.is_not_null().mean() < 0.5 and nps.drop_nulls().is_between(0, 10).all()


def test_renewal_opportunities_open_before_renewals(
    related: tuple[pl.DataFrame, pl.DataFrame], book: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    _, deals = related
    snapshots, _ = book
    renewals = deals.filter(pl.col("type") == "renewal")
    first = renewals.sort("snapshot_date").group_by("opportunity_id").first()
    opened = pl.max_horizontal(pl.col("close_date") - pl.duration(days=120), pl.lit(START))
    assert first.filter(pl.col("snapshot_date") != opened).is_empty()
    # every renewal date within 120 days of the book's last day has its opportunity
    due = snapshots.filter(pl.col("renewal_date") <= END + timedelta(days=120)).select(
        "account_id", pl.col("renewal_date").alias("close_date")
    )
    assert due.unique().join(first, on=["account_id", "close_date"], how="anti").is_empty()
    final = renewals.filter(pl.col("snapshot_date") == END)
    closed = final.filter(pl.col("close_date") <= END)
    assert set(closed["stage"]) == {"closed_won", "closed_lost"}
    assert (
        final.filter(pl.col("close_date") > END)["stage"]
        .is_in(["prospecting", "qualification", "proposal", "negotiation"])
        .all()
    )
    churned = snapshots.filter(pl.col("stage") == "churned")["account_id"].unique()
    lost = closed.filter(pl.col("stage") == "closed_lost")["account_id"]
    assert sorted(lost) == sorted(churned)  # lost exactly when the account churned
    order = {stage: i for i, stage in enumerate(OPPORTUNITY_STAGES)}
    steps = renewals.sort("snapshot_date").with_columns(
        i=pl.col("stage").replace_strict(order, return_dtype=pl.Int8)
    )
    backwards = steps.filter(pl.col("i").diff().over("opportunity_id") < 0)
    assert backwards.is_empty()  # stages only advance
    assert steps["stage"].n_unique() == 6


def test_upsell_and_new_business_opportunities(
    related: tuple[pl.DataFrame, pl.DataFrame], book: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    _, deals = related
    snapshots, _ = book
    first = deals.sort("snapshot_date").group_by("opportunity_id").first()
    upsells = first.filter(pl.col("type") == "upsell")
    busy = snapshots.filter(pl.col("seats_active") >= 0.9 * pl.col("seats_purchased"))
    high = busy.group_by("account_id").agg(pl.col("snapshot_date").min().alias("high_on"))
    checked = upsells.join(high, on="account_id", how="left")
    assert checked["high_on"].null_count() == 0
    assert (checked["high_on"] <= checked["snapshot_date"]).all()  # opened once seats are full
    assert 20 < upsells.height < 0.5 * high.height
    arrivals = (
        snapshots.sort("snapshot_date")
        .group_by("account_id")
        .first()
        .filter(pl.col("snapshot_date") > START)
    )
    new = deals.filter(pl.col("type") == "new_business", pl.col("snapshot_date") == END)
    assert sorted(new["account_id"]) == sorted(arrivals["account_id"])
    won = new.join(arrivals.select("account_id", "contract_start"), on="account_id")
    assert (won["stage"] == "closed_won").all()
    assert (won["close_date"] == won["contract_start"]).all()
    assert (won["stage_entered_on"] == won["contract_start"]).all()
    before = deals.filter(pl.col("type") == "new_business", pl.col("snapshot_date") == START)
    assert before.height > 0 and (before["stage"] != "closed_won").all()  # open before arrival
