"""Demo book: deterministic, follows the contract, and realistic enough to drive workflows."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from cswf_pipelines.demo import generate_book, simulate_book
from cswf_pipelines.facts import ACCOUNTS, USAGE, build_facts, ingest_landing, snapshot_problems

SQL_DIR = Path(__file__).resolve().parents[1] / "sql" / "facts"
START = date(2026, 5, 1)


@pytest.fixture(scope="module")
def book() -> tuple[pl.DataFrame, pl.DataFrame]:
    snapshots, usage, _ = simulate_book()
    return snapshots, usage


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
    assert len(summary.files_written) == 24 and summary.end == date(2026, 5, 12)

    con = duckdb.connect(":memory:")
    report = ingest_landing(con, landing)
    assert report.files_rejected == [] and len(report.files_loaded) == 24
    assert report.rows_loaded == {"accounts": summary.account_rows, "usage": summary.usage_rows}
    assert snapshot_problems(con) == []
    facts = build_facts(con, [datetime(2026, 5, 12, 9)], SQL_DIR)
    assert facts.height == summary.existing_accounts + facts["stage"].eq("onboarding").sum()
    assert facts["usage_events_7d"].gt(0).mean() > 0.8

    again = generate_book(landing, accounts=60, days=12, fmt="parquet")
    assert sorted(p.suffix for p in (landing / "accounts").iterdir()) == [".parquet"] * 12
    assert again.account_rows == summary.account_rows
