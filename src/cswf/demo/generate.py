"""A deterministic demo book of business: daily account, usage, contact and opportunity files,
and the contacts' NPS answers as participant event files (events/nps_responses_<day>).

The simulation runs one vectorized step per day over all accounts, so that workflows have
something to react to: onboarding arrivals, stage progression, renewals and churn, usage drops,
health scores crossing 60, NPS answers, and low seat utilisation that sometimes recovers.
Contacts and opportunities are derived from the simulated accounts afterwards (logins follow
usage, renewal opportunities follow renewal dates and close with the renewal or the churn), from
their own random stream, so the accounts do not depend on whether they are written.
Only example.com / example.org addresses are generated.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from cswf.ingest.contract import (
    ACCOUNTS,
    CONTACT_ROLES,
    CONTACTS,
    EVENTS,
    OPPORTUNITIES,
    OPPORTUNITY_STAGES,
    STAGES,
    TIERS,
    USAGE,
    LandingObject,
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


ONBOARDING, ADOPTION, MATURE, RENEWAL, CHURNED = range(5)
REGIONS = ("North America", "EMEA", "APAC", "LATAM")
INDUSTRIES = (
    "Software",
    "Financial Services",
    "Healthcare",
    "Retail",
    "Manufacturing",
    "Education",
    "Media",
    "Logistics",
)
# (name, tier, regions): enterprise and mid-market CSMs own regions, SMB is pooled more widely.
CSMS = (
    ("Maria Lopez", "enterprise", ("North America",)),
    ("James Carter", "enterprise", ("North America",)),
    ("Sofia Rossi", "enterprise", ("EMEA",)),
    ("Kenji Watanabe", "enterprise", ("APAC", "LATAM")),
    ("Priya Nair", "mid_market", ("North America",)),
    ("Daniel Kim", "mid_market", ("North America", "LATAM")),
    ("Emma Schulz", "mid_market", ("EMEA",)),
    ("Lucas Silva", "mid_market", ("APAC", "LATAM")),
    ("Olivia Brown", "smb", ("North America", "LATAM")),
    ("Noah Wilson", "smb", ("North America",)),
    ("Chloe Martin", "smb", ("EMEA",)),
    ("Arjun Mehta", "smb", ("APAC", "EMEA")),
)
_NAME_HEADS = _words(
    "Acme Blue Bright Cedar Cobalt Crest Delta Ember Falcon Granite Harbor Iris Juniper "
    "Kite Lumen Maple Meridian Nimbus North Oak Onyx Orbit Pine Polar Quartz Raven Ridge "
    "River Sage Silver Summit Swift Terra Tidal Union Vertex Willow Zenith Atlas Beacon"
)
_NAME_BODIES = _words(
    "Analytics Bio Capital Cloud Data Dynamics Energy Foods Freight Health Insights Labs "
    "Learning Logic Media Metrics Mobility Networks Pay Robotics Security Systems Works "
    "Ventures Retail Software Studio Supply Telecom Travel Apparel Motors Markets Legal "
    "Homes Games Farms Education Design Clinics"
)
_NAME_TAILS = ("Inc", "Ltd", "GmbH", "Group", "Co", "LLC", "SA", "Holdings")
_FIRST = _words(
    "Alex Amelia Ben Carla Chen Diego Elena Farah George Hana Ivan Julia Kofi Laura Marco "
    "Nadia Omar Paula Quinn Rosa Sam Tara Umar Vera Will Xenia Yusuf Zoe Ines Leo"
)
_LAST = _words(
    "Adams Baker Costa Dubois Evans Fischer Garcia Hughes Ito Jensen Khan Larsen Moreau "
    "Novak Okafor Patel Quinlan Reyes Sato Tanaka Ueda Varga Weber Xu Young Zhang Silva "
    "Murphy Rossi Nguyen"
)

# A handful of IANA zones per region; an account's contacts share its zone.
TIME_ZONES = (
    ("America/New_York", "America/Chicago", "America/Los_Angeles"),
    ("Europe/London", "Europe/Berlin", "Europe/Paris"),
    ("Asia/Singapore", "Asia/Tokyo", "Australia/Sydney"),
    ("America/Sao_Paulo", "America/Mexico_City"),
)
# Account executives by region: they own upsell and new-business opportunities (renewals: CSM).
SALES_REPS = ("Grace Miller", "Tom Fischer", "Mei Tan", "Rafael Souza")
# Contacts per account by tier (inclusive range); one is primary, one is the champion.
CONTACTS_PER_ACCOUNT = ((4, 8), (3, 6), (2, 4))
OTHER_ROLE_SHARES = {"admin": 0.2, "user": 0.5, "executive": 0.15, "billing": 0.15}
TITLES = {
    "champion": ("Head of Operations", "Customer Success Lead", "Program Manager"),
    "admin": ("IT Administrator", "Systems Administrator", "Platform Owner"),
    "user": ("Analyst", "Specialist", "Coordinator", "Engineer"),
    "executive": ("VP Operations", "Chief Operating Officer", "Director of Strategy"),
    "billing": ("Finance Manager", "Accounts Payable Lead", "Procurement Manager"),
}
# Chance of a login on a day, per active seat share of the account that day (about 0.55 on a
# weekday): champions and admins log in most days, billing contacts now and then.
LOGIN_WEIGHT = {"champion": 0.8, "admin": 0.9, "user": 0.5, "executive": 0.15, "billing": 0.1}
RENEWAL_LEAD_DAYS = 120  # a renewal opportunity opens this long before the renewal date
UPSELL_UTILISATION = 0.9  # seat utilisation from which an upsell may be opened
OPEN_STAGES = OPPORTUNITY_STAGES[:4]

BURN_IN_DAYS = 35  # usage history before day 0, so the first health scores have a baseline
TIER_SHARES = (0.15, 0.35, 0.50)
# per tier: median seats, lognormal sigma, min, max
SEATS = ((500.0, 0.6, 150, 5000), (100.0, 0.5, 25, 600), (15.0, 0.5, 3, 60))
PRICE_PER_SEAT = np.array([420.0, 480.0, 600.0])
ANSWERED = "_answered_nps"  # a contact's snapshot row of a day it answered the NPS survey
TICKET_RATE = np.array([0.35, 0.15, 0.06])  # new tickets per account-day, by tier


@dataclass
class BookSummary:
    """What a generated book holds; counts make a demo run easy to sanity-check."""

    landing_dir: Path
    start: date
    end: date
    accounts: int
    existing_accounts: int
    new_accounts: int
    renewals: int
    churned_accounts: int
    account_rows: int
    usage_rows: int
    contacts: int = 0
    contact_rows: int = 0
    opportunities: int = 0
    opportunity_rows: int = 0
    nps_answers: int = 0
    files_written: list[Path] = field(default_factory=list)
    event_files_written: list[Path] = field(default_factory=list)


@dataclass
class _Book:
    """Per-account attributes drawn once; index i is account i."""

    n: int
    tier: np.ndarray
    region: np.ndarray
    industry: np.ndarray
    csm: np.ndarray
    seats: np.ndarray
    arr: np.ndarray
    contract_start: np.ndarray  # day index relative to the start date
    first_renewal: np.ndarray
    onboarding_days: np.ndarray
    adoption_days: np.ndarray
    target: np.ndarray  # seat utilisation the account drifts toward
    improved_target: np.ndarray
    improve_day: np.ndarray
    ramp_rate: np.ndarray
    events_per_user: np.ndarray
    drop_day: np.ndarray
    drop_factor: np.ndarray
    will_churn: np.ndarray
    nps_responder: np.ndarray


def generate_book(
    landing_dir: Path,
    *,
    accounts: int = 2000,
    days: int = 120,
    start: date = date(2026, 5, 1),
    seed: int = 7,
    fmt: str = "parquet",
    contacts: bool = True,
    opportunities: bool = True,
) -> BookSummary:
    """Write one accounts, usage, contacts and opportunities file per day under `landing_dir`.

    Earlier demo files (same naming pattern) in the folders are replaced, so switching the
    format or the length never leaves a second snapshot of the same day behind; an object that
    is switched off has its earlier demo files removed, so they never describe another book.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', not {fmt!r}")
    snapshots, usage, stats = simulate_book(accounts=accounts, days=days, start=start, seed=seed)
    if contacts or opportunities:
        people, deals = _related(snapshots, usage, start=start, days=days, seed=seed)
    else:
        people = pl.DataFrame(schema={"snapshot_date": pl.Date, "contact_id": pl.String,
                                      ANSWERED: pl.Boolean})
        deals = pl.DataFrame(schema={"snapshot_date": pl.Date, "opportunity_id": pl.String})
    written = _write_daily(snapshots, landing_dir, ACCOUNTS, fmt)
    written += _write_daily(usage, landing_dir, USAGE, fmt)
    people = people if contacts else people.clear()
    deals = deals if opportunities else deals.clear()
    answers = nps_answers(people)
    events = _write_answers(answers, landing_dir, fmt)
    people = people.drop(ANSWERED)
    written += _write_daily(people, landing_dir, CONTACTS, fmt)
    written += _write_daily(deals, landing_dir, OPPORTUNITIES, fmt)
    return BookSummary(
        landing_dir=landing_dir,
        start=start,
        end=start + timedelta(days=days - 1),
        accounts=accounts,
        existing_accounts=stats["existing"],
        new_accounts=stats["new"],
        renewals=stats["renewals"],
        churned_accounts=stats["churned"],
        account_rows=snapshots.height,
        usage_rows=usage.height,
        contacts=people["contact_id"].n_unique(),
        contact_rows=people.height,
        opportunities=deals["opportunity_id"].n_unique(),
        opportunity_rows=deals.height,
        nps_answers=answers.height,
        files_written=written,
        event_files_written=events,
    )


def simulate_book(
    *, accounts: int = 2000, days: int = 120, start: date = date(2026, 5, 1), seed: int = 7
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    """(account snapshots, daily usage, counts), in contract columns; same seed, same frames."""
    rng = np.random.default_rng(seed)
    book = _draw_book(rng, accounts, days)
    snap_parts, usage_parts, stats = _simulate(rng, book, days, start)
    snapshots = _snapshot_frame(rng, book, snap_parts, start)
    usage = pl.DataFrame(
        {
            "usage_date": _dates(start, np.concatenate(usage_parts["day"])),
            "account_id": _account_ids(book.n)[np.concatenate(usage_parts["idx"])],
            "active_users": np.concatenate(usage_parts["active_users"]).astype(np.int32),
            "events": np.concatenate(usage_parts["events"]).astype(np.int32),
        }
    )
    return snapshots, usage, stats


def simulate_related(
    snapshots: pl.DataFrame,
    usage: pl.DataFrame,
    *,
    start: date = date(2026, 5, 1),
    days: int = 120,
    seed: int = 7,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(contact snapshots, opportunity snapshots) of a simulated book, in contract columns.

    Drawn from a random stream of their own, so the same seed gives the same frames and the
    accounts never depend on whether these are generated.
    """
    contacts, deals = _related(snapshots, usage, start=start, days=days, seed=seed)
    return contacts.drop(ANSWERED), deals


def _related(
    snapshots: pl.DataFrame, usage: pl.DataFrame, *, start: date, days: int, seed: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`simulate_related`, the contacts with the ANSWERED flag (the days they answered)."""
    rng = np.random.default_rng([seed, 1])
    end = start + timedelta(days=days - 1)
    accounts = (
        snapshots.sort("snapshot_date")
        .group_by("account_id")
        .agg(pl.all().first())
        .rename({"snapshot_date": "first_day"})
        .sort("account_id")
    )
    contacts = _contact_frame(rng, accounts, snapshots, usage, end)
    return contacts, _opportunity_frame(rng, accounts, snapshots, start, end)


def _contact_frame(
    rng: np.random.Generator,
    accounts: pl.DataFrame,
    snapshots: pl.DataFrame,
    usage: pl.DataFrame,
    end: date,
) -> pl.DataFrame:
    """Contacts on every day their account has a snapshot; logins follow the account's usage."""
    people = _contact_people(rng, accounts, end)  # grouped by account, in `accounts` order
    days = (
        snapshots.select("account_id", "snapshot_date", "seats_active", "health_score")
        .join(
            usage.select("account_id", pl.col("usage_date").alias("snapshot_date"), "active_users"),
            on=["account_id", "snapshot_date"],
            how="left",
        )
        .sort("account_id", "snapshot_date")
    )
    # Each contact repeats its account's run of days: gathers instead of a join and a sort.
    run = days.group_by("account_id", maintain_order=True).len()["len"].to_numpy().astype(np.int64)
    owner = people["owner"].to_numpy()
    per_contact = run[owner]
    contact_row = np.repeat(np.arange(people.height), per_contact)
    within = np.arange(contact_row.size) - np.repeat(
        np.cumsum(per_contact) - per_contact, per_contact
    )
    day_row = np.repeat((np.cumsum(run) - run)[owner], per_contact) + within
    daily = pl.concat(
        [people[contact_row], days.drop("account_id")[day_row]], how="horizontal"
    ).with_columns(draw=pl.Series(rng.random(contact_row.size)))  # contact by contact, by day
    chance = (
        pl.col("active_users").fill_null(0)
        / pl.max_horizontal("seats_active", 1)
        * pl.col("login_weight")
    ).clip(0.0, 0.97)
    score = 2 + pl.col("health_score").fill_null(70.0) / 11 + 1.6 * pl.col("nps_noise")
    return daily.with_columns(
        pl.when(pl.col("draw") < chance)
        .then("snapshot_date")
        .forward_fill()
        .over("number")
        .fill_null(pl.col("login_before"))
        .alias("last_login_on"),
        pl.when(pl.col("snapshot_date") == pl.col("nps_day"))
        .then(score.round().clip(0, 10).cast(pl.Int32))
        .forward_fill()
        .over("number")
        .fill_null(pl.col("nps_before"))
        .alias("nps"),
        (pl.col("snapshot_date") == pl.col("nps_day")).fill_null(False).alias(ANSWERED),
    ).select(*(c.name for c in CONTACTS.columns), ANSWERED)


def _contact_people(rng: np.random.Generator, accounts: pl.DataFrame, end: date) -> pl.DataFrame:
    """Who the contacts are: 2-8 per account; the first is the account's primary contact."""
    n = accounts.height
    tier = accounts["tier"].replace_strict({t: i for i, t in enumerate(TIERS)}).to_numpy()
    low, high = (np.array(v) for v in zip(*CONTACTS_PER_ACCOUNT, strict=True))
    count = rng.integers(low[tier], high[tier] + 1)
    total = int(count.sum())
    owner = np.repeat(np.arange(n), count)
    position = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    primary = position == 0
    champion = np.where((rng.random(n) < 0.7)[owner], primary, position == 1)
    roles = np.array(CONTACT_ROLES)  # champion first
    others = rng.choice(len(roles) - 1, total, p=[OTHER_ROLE_SHARES[r] for r in roles[1:]]) + 1
    primary_role = np.flatnonzero(np.isin(roles, ("admin", "executive")))[rng.integers(0, 2, n)]
    role_index = np.where(champion, 0, np.where(primary, primary_role[owner], others))
    titles = _padded([TITLES[r] for r in CONTACT_ROLES])
    title = titles[0][role_index, rng.integers(0, 1 << 30, total) % titles[1][role_index]]
    existing = (accounts["contract_start"] < accounts["first_day"]).to_numpy()[owner]
    first_day = accounts["first_day"].to_numpy()[owner]
    responder = rng.random(total) < 0.4
    answered_before = responder & existing & (rng.random(total) < 0.5)
    nps_before = np.clip(np.round(rng.normal(8.0, 1.8, total)), 0, 10)
    span = (np.datetime64(end, "D") - first_day).astype(np.int64) + 1
    nps_day = first_day + (rng.integers(0, 1 << 30, total) % span).astype("timedelta64[D]")
    answers = responder & (rng.random(total) < 0.35)
    login_before = first_day - rng.integers(1, 16, total).astype("timedelta64[D]")
    number = np.arange(1, total + 1)
    first = np.array(_FIRST)[rng.integers(0, len(_FIRST), total)]
    last = np.array(_LAST)[rng.integers(0, len(_LAST), total)]
    nps_noise = rng.normal(0, 1, total)
    width = max(6, len(str(total)))
    account = accounts.select(
        "account_id", "primary_contact_name", "primary_contact_email", "time_zone"
    )[owner]
    return (
        pl.DataFrame(
            {
                "contact_id": np.char.add("CON-", np.char.zfill(number.astype(str), width)),
                "is_primary": primary,
                "role": roles[role_index],
                "name": np.char.add(np.char.add(first, " "), last),
                "local": np.char.lower(np.char.add(np.char.add(first, "."), last)),
                "number": number,
                "title": title,
                "titled": rng.random(total) < 0.8,
                "login_before": np.where(existing, login_before, np.datetime64("NaT")),
                "nps_before": np.where(answered_before, nps_before, np.nan),
                "nps_day": np.where(answers, nps_day, np.datetime64("NaT")),
                "nps_noise": nps_noise,
            }
        )
        .hstack(account)
        .select(
            "number",
            pl.Series("owner", owner),
            "contact_id",
            "account_id",
            pl.when("is_primary")
            .then("primary_contact_name")
            .otherwise("name")
            .alias("contact_name"),
            pl.when("is_primary")
            .then("primary_contact_email")
            .otherwise(pl.format("{}.c{}@example.org", "local", "number"))
            .alias("email"),
            "role",
            "is_primary",
            pl.when("titled").then("title").alias("title"),
            "time_zone",
            pl.col("role")
            .replace_strict(LOGIN_WEIGHT, return_dtype=pl.Float64)
            .alias("login_weight"),
            "login_before",
            pl.col("nps_before").fill_nan(None).cast(pl.Int32),
            "nps_day",
            "nps_noise",
        )
    )


def _padded(groups: list[tuple[str, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged tuples as a rectangular table (short rows repeat their first item) and lengths."""
    width = max(len(g) for g in groups)
    table = np.array([g + g[:1] * (width - len(g)) for g in groups])
    return table, np.array([len(g) for g in groups])


def _opportunity_frame(
    rng: np.random.Generator,
    accounts: pl.DataFrame,
    snapshots: pl.DataFrame,
    start: date,
    end: date,
) -> pl.DataFrame:
    """Renewal, upsell and new-business opportunities, one row per day from when they open.

    Each deal opens on `opened`, closes on `close_date` (won or lost, or still open when the
    outcome lies past the book) and walks through the four open stages in equal quarters.
    """
    deals = (
        pl.concat(
            [
                _renewal_deals(accounts, snapshots),
                _upsell_deals(rng, accounts, snapshots, end),
                _new_business_deals(rng, accounts, start),
            ]
        )
        .filter(pl.col("opened") <= end)
        .sort("opened", "account_id", "type")
    )
    width = max(6, len(str(deals.height)))
    number = pl.int_range(1, pl.len() + 1).cast(pl.String).str.zfill(width)
    deals = deals.with_columns(
        opportunity_id=pl.format("OPP-{}", number),
        won=pl.when(pl.col("close_date") <= end).then("won"),  # later outcomes are not known yet
    )
    length = (pl.col("close_date") - pl.col("opened")).dt.total_days()
    boundary = [pl.col("opened") + pl.duration(days=length * k // 4) for k in range(1, 4)]
    day = pl.col("snapshot_date")
    closed = (day >= pl.col("close_date")) & pl.col("won").is_not_null()
    return (
        deals.with_columns(
            snapshot_date=pl.date_ranges(pl.max_horizontal("opened", pl.lit(start)), pl.lit(end))
        )
        .explode("snapshot_date")
        .with_columns(step=pl.sum_horizontal(*(day >= b for b in boundary)))
        .with_columns(
            stage=pl.when(closed)
            .then(pl.when("won").then(pl.lit("closed_won")).otherwise(pl.lit("closed_lost")))
            .otherwise(
                pl.col("step").replace_strict(dict(enumerate(OPEN_STAGES)), return_dtype=pl.String)
            ),
            stage_entered_on=pl.when(closed)
            .then("close_date")
            .otherwise(pl.col("opened") + pl.duration(days=length * pl.col("step") // 4)),
        )
        .select(c.name for c in OPPORTUNITIES.columns)
    )


def _deal_columns(kind: str, name: str, owner: pl.Expr, amount: pl.Expr) -> list[pl.Expr | str]:
    """The shared deal columns, once `opened`, `close_date` and `won` are known."""
    return [
        "account_id",
        pl.lit(kind).alias("type"),
        pl.format(name, "account_name", pl.col("close_date").dt.year()).alias("opportunity_name"),
        amount.cast(pl.Float64).alias("amount"),
        owner.alias("owner_email"),
        "opened",
        "close_date",
        pl.col("won").cast(pl.Boolean),
    ]


def _renewal_deals(accounts: pl.DataFrame, snapshots: pl.DataFrame) -> pl.DataFrame:
    """One per renewal date seen, opened RENEWAL_LEAD_DAYS before it; won when the renewal
    date moved a year on, lost when the account churned on it, owned by the CSM."""
    cycles = snapshots.select("account_id", "renewal_date").unique()
    renewed = cycles.select(
        "account_id", pl.col("renewal_date") - pl.duration(days=365), renewed=pl.lit(True)
    )
    lost = (
        snapshots.filter(pl.col("stage") == "churned")
        .select("account_id", "renewal_date", lost=pl.lit(True))
        .unique()
    )
    return (
        cycles.join(renewed, on=["account_id", "renewal_date"], how="left")
        .join(lost, on=["account_id", "renewal_date"], how="left")
        .join(accounts.select("account_id", "account_name", "arr", "csm_email"), on="account_id")
        .with_columns(
            opened=pl.col("renewal_date") - pl.duration(days=RENEWAL_LEAD_DAYS),
            close_date="renewal_date",
            won=pl.when("renewed").then(True).when("lost").then(False),
        )
        .select(_deal_columns("renewal", "{} renewal {}", pl.col("csm_email"), pl.col("arr")))
    )


def _upsell_deals(
    rng: np.random.Generator, accounts: pl.DataFrame, snapshots: pl.DataFrame, end: date
) -> pl.DataFrame:
    """Half the accounts whose seat utilisation reaches UPSELL_UTILISATION get an upsell within
    two weeks, closing 45-90 days later; 60 % are won."""
    high = (
        snapshots.filter(
            (pl.col("seats_active") >= UPSELL_UTILISATION * pl.col("seats_purchased"))
            & pl.col("stage").is_in(["adoption", "mature", "renewal"])
        )
        .group_by("account_id")
        .agg(pl.col("snapshot_date").min().alias("first_high"))
        .sort("account_id")
    )
    n = high.height
    opened = pl.col("first_high") + pl.duration(days=pl.Series(rng.integers(0, 15, n)))
    return (
        high.with_columns(
            take=pl.Series(rng.random(n) < 0.5),
            opened=opened,
            close_date=opened + pl.duration(days=pl.Series(rng.integers(45, 91, n))),
            won=pl.Series(rng.random(n) < 0.6),
            share=pl.Series(rng.uniform(0.15, 0.4, n)),
        )
        .filter("take")
        .join(accounts, on="account_id")
        .select(
            _deal_columns(
                "upsell",
                "{} upsell {}",
                _sales_rep_email(),
                (pl.col("arr") * pl.col("share") / 100).round() * 100,
            )
        )
    )


def _new_business_deals(
    rng: np.random.Generator, accounts: pl.DataFrame, start: date
) -> pl.DataFrame:
    """Accounts arriving during the book were won on their contract start, 45-120 days after
    the deal opened."""
    arrivals = accounts.filter(pl.col("contract_start") >= start)
    lead = pl.Series(rng.integers(45, 121, arrivals.height))
    return arrivals.with_columns(
        opened=pl.col("contract_start") - pl.duration(days=lead),
        close_date="contract_start",
        won=pl.lit(True),
    ).select(_deal_columns("new_business", "{} new business {}", _sales_rep_email(), pl.col("arr")))


def _sales_rep_email() -> pl.Expr:
    emails = {
        region: rep.lower().replace(" ", ".") + "@example.com"
        for region, rep in zip(REGIONS, SALES_REPS, strict=True)
    }
    return pl.col("region").replace_strict(emails, return_dtype=pl.String)


def _draw_book(rng: np.random.Generator, n: int, days: int) -> _Book:
    tier = rng.choice(3, n, p=TIER_SHARES)
    region = rng.choice(len(REGIONS), n, p=[0.45, 0.30, 0.15, 0.10])
    median, sigma, low, high = (np.array(v) for v in zip(*SEATS, strict=True))
    seats = np.clip(rng.lognormal(np.log(median[tier]), sigma[tier]), low[tier], high[tier])
    seats = np.round(seats).astype(np.int64)
    arr = np.round(seats * PRICE_PER_SEAT[tier] * rng.lognormal(0.0, 0.15, n), -2)
    is_new = rng.random(n) < 0.30
    arrival = rng.integers(1, max(days, 2), n)
    renewal_offset = rng.integers(1, 365, n)
    tenure_years = rng.integers(1, 4, n)
    tenure_years += 365 * tenure_years - renewal_offset < 90  # existing means onboarded already
    contract_start = np.where(is_new, arrival, renewal_offset - 365 * tenure_years)
    first_renewal = np.where(is_new, arrival + 365, renewal_offset)
    low_util = rng.random(n) < 0.25
    improves = low_util & (rng.random(n) < 0.45)
    target = np.where(low_util, rng.uniform(0.12, 0.36, n), rng.uniform(0.6, 0.95, n))
    improved_target = np.where(improves, rng.uniform(0.5, 0.85, n), target)
    improve_day = np.where(improves, rng.integers(0, max(days - 30, 1), n), 10**6)
    has_drop = rng.random(n) < 0.10
    drop_day = np.where(has_drop, rng.integers(10, max(days - 10, 11), n), 10**6)
    return _Book(
        n=n,
        tier=tier,
        region=region,
        industry=rng.choice(len(INDUSTRIES), n),
        csm=_assign_csms(rng, tier, region),
        seats=seats,
        arr=arr,
        contract_start=contract_start,
        first_renewal=first_renewal,
        onboarding_days=rng.integers(30, 61, n),
        adoption_days=rng.integers(60, 121, n),
        target=target,
        improved_target=improved_target,
        improve_day=improve_day,
        ramp_rate=rng.uniform(0.03, 0.08, n),
        events_per_user=rng.lognormal(np.log(30.0), 0.4, n),
        drop_day=drop_day,
        drop_factor=rng.uniform(0.2, 0.7, n),
        will_churn=rng.random(n) < 0.08,
        nps_responder=rng.random(n) < 0.9,
    )


def _assign_csms(rng: np.random.Generator, tier: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Each account gets one of the CSMs covering its tier and region."""
    candidates = [
        [
            i
            for i, (_, csm_tier, regions) in enumerate(CSMS)
            if csm_tier == TIERS[t] and REGIONS[r] in regions
        ]
        for t in range(3)
        for r in range(len(REGIONS))
    ]
    width = max(len(c) for c in candidates)
    table = np.array([c + c[:1] * (width - len(c)) for c in candidates])
    counts = np.array([len(c) for c in candidates])
    cell = tier * len(REGIONS) + region
    pick = rng.integers(0, 1 << 30, tier.size) % counts[cell]
    return table[cell, pick]


def _initial_stage(book: _Book) -> tuple[np.ndarray, np.ndarray]:
    """Stage and stage_entered_on (day index) at day 0, from tenure and the renewal date."""
    onboarded = book.contract_start + book.onboarding_days
    adopted = onboarded + book.adoption_days
    last_renewal = book.first_renewal - 365
    stage = np.select([onboarded > 0, adopted > 0], [ONBOARDING, ADOPTION], MATURE)
    entered = np.select(
        [onboarded > 0, adopted > 0],
        [book.contract_start, onboarded],
        np.maximum(adopted, last_renewal),
    )
    in_renewal = (book.first_renewal - 90 <= 0) & (stage != ONBOARDING)
    stage = np.where(in_renewal, RENEWAL, stage)
    entered = np.where(in_renewal, book.first_renewal - 90, entered)
    return stage, entered


def _simulate(
    rng: np.random.Generator, book: _Book, days: int, start: date
) -> tuple[dict[str, list[np.ndarray]], dict[str, list[np.ndarray]], dict[str, int]]:
    """Step every account one day at a time; returns per-day snapshot and usage arrays."""
    n = book.n
    stage, entered = _initial_stage(book)
    renewal = book.first_renewal.copy()
    util = np.where(
        book.contract_start < 0,
        np.clip(book.target + rng.normal(0, 0.04, n), 0.02, 1.0),
        rng.uniform(0.02, 0.12, n),
    )
    tickets = rng.poisson(TICKET_RATE[book.tier] * 2)
    last_nps = np.where(book.nps_responder, -rng.integers(1, 90, n), -(10**6))
    nps = np.where(book.nps_responder, np.clip(np.round(rng.normal(8.0, 1.8, n)), 0, 10), np.nan)
    next_nps = np.where(
        book.contract_start < 0, last_nps + rng.integers(60, 91, n), book.contract_start + 40
    )
    noise = rng.normal(0, 2.0, n)
    history = np.zeros((BURN_IN_DAYS + days, n))
    snaps: dict[str, list[np.ndarray]] = defaultdict(list)
    usage: dict[str, list[np.ndarray]] = defaultdict(list)
    renewals = 0
    for t in range(-BURN_IN_DAYS, days):
        active = book.contract_start <= t
        churned = stage == CHURNED
        if t >= 0:
            due = active & ~churned & (renewal == t)
            renewals += int((due & ~book.will_churn).sum())
            stage = np.where(due, np.where(book.will_churn, CHURNED, MATURE), stage)
            renewal = np.where(due & ~book.will_churn, renewal + 365, renewal)
            entered = np.where(due, t, entered)
            churned = stage == CHURNED
            stage, entered = _progress(book, stage, entered, renewal, t)
        target = np.where(t >= book.improve_day, book.improved_target, book.target)
        target = np.where(churned, 0.02, target)
        util = np.clip(util + book.ramp_rate * (target - util) + rng.normal(0, 0.01, n), 0, 1)
        seats_active = np.minimum(np.round(util * book.seats), book.seats).astype(np.int64)
        weekday = (start + timedelta(days=t)).weekday()
        level = (0.55 if weekday < 5 else 0.12) * np.where(t >= book.drop_day, book.drop_factor, 1)
        level = level * np.where(churned, 0.03, 1.0) * rng.lognormal(0, 0.12, n)
        users = rng.poisson(seats_active * level) * active
        events = rng.poisson(users * book.events_per_user * rng.lognormal(0, 0.1, n))
        history[t + BURN_IN_DAYS] = events
        if t < 0:
            continue
        dropping = (t >= book.drop_day) & (t < book.drop_day + 35)
        new_tickets = rng.poisson(TICKET_RATE[book.tier] * (1 + 3 * dropping) * (1 + (util < 0.3)))
        tickets = np.where(active, tickets - rng.binomial(tickets, 0.3) + new_tickets, 0)
        row = t + BURN_IN_DAYS
        recent = history[row - 7 : row].sum(axis=0)
        baseline = history[row - 35 : row - 7].sum(axis=0) / 4
        noise = 0.9 * noise + rng.normal(0, 0.9, n)
        health = _health(util, recent / np.maximum(baseline, 1.0), nps, tickets) + noise
        health = np.where(
            t - book.contract_start < 14, np.nan, np.round(np.clip(health, 0, 100), 1)
        )
        answering = active & ~churned & book.nps_responder & (t >= next_nps)
        answering &= rng.random(n) < 0.75
        score = np.clip(np.round(rng.normal(2 + np.nan_to_num(health, nan=70) / 11, 1.6)), 0, 10)
        nps = np.where(answering, score, nps)
        last_nps = np.where(answering, t, last_nps)
        next_nps = np.where(t >= next_nps, t + rng.integers(60, 91, n), next_nps)
        _record(
            snaps, t, np.flatnonzero(active), stage=stage, entered=entered, renewal=renewal,
            seats_active=seats_active, health=health, nps=nps, nps_day=last_nps, tickets=tickets,
        )  # fmt: skip
        _record(usage, t, np.flatnonzero(events > 0), active_users=users, events=events)
    stats = {
        "existing": int((book.contract_start < 0).sum()),
        "new": int(((book.contract_start >= 0) & (book.contract_start < days)).sum()),
        "renewals": renewals,
        "churned": int((stage == CHURNED).sum()),
    }
    return snaps, usage, stats


def _record(
    parts: dict[str, list[np.ndarray]], t: int, rows: np.ndarray, **columns: np.ndarray
) -> None:
    """Keep day t's values of the given rows (account indices)."""
    parts["day"].append(np.full(rows.size, t))
    parts["idx"].append(rows)
    for key, values in columns.items():
        parts[key].append(values[rows])


def _progress(
    book: _Book, stage: np.ndarray, entered: np.ndarray, renewal: np.ndarray, t: int
) -> tuple[np.ndarray, np.ndarray]:
    """Onboarding → adoption → mature by elapsed days; renewal 90 days before the renewal date."""
    to_adoption = (stage == ONBOARDING) & (t >= book.contract_start + book.onboarding_days)
    to_mature = (stage == ADOPTION) & (t >= entered + book.adoption_days)
    to_renewal = np.isin(stage, (ADOPTION, MATURE)) & (t >= renewal - 90)
    changed = to_adoption | to_mature | to_renewal
    stage = np.select([to_renewal, to_adoption, to_mature], [RENEWAL, ADOPTION, MATURE], stage)
    return stage, np.where(changed, t, entered)


def _health(
    util: np.ndarray, usage_ratio: np.ndarray, nps: np.ndarray, tickets: np.ndarray
) -> np.ndarray:
    """0-100 from utilisation, usage against the account's own recent baseline, NPS, tickets."""
    nps_points = np.select([np.isnan(nps), nps >= 9, nps >= 7], [8.0, 14.0, 9.0], 2.0)
    return (
        8
        + 30 * np.minimum(util / 0.85, 1.0)
        + 25 * np.clip((usage_ratio - 0.45) / 0.5, 0.0, 1.0)
        + nps_points
        + 15
        - np.minimum(3.5 * tickets, 15.0)
    )


def _snapshot_frame(
    rng: np.random.Generator,
    book: _Book,
    parts: dict[str, list[np.ndarray]],
    start: date,
) -> pl.DataFrame:
    """Daily per-account arrays plus the static attributes, as contract columns."""
    idx = np.concatenate(parts["idx"])
    static = _static_frame(rng, book, start)
    nps_day = np.concatenate(parts["nps_day"])
    nps = np.concatenate(parts["nps"])
    dynamic = pl.DataFrame(
        {
            "snapshot_date": _dates(start, np.concatenate(parts["day"])),
            "idx": idx,
            "stage": np.array(STAGES)[np.concatenate(parts["stage"])],
            "stage_entered_on": _dates(start, np.concatenate(parts["entered"])),
            "renewal_date": _dates(start, np.concatenate(parts["renewal"])),
            "seats_active": np.concatenate(parts["seats_active"]).astype(np.int32),
            "health_score": np.concatenate(parts["health"]),
            "nps": nps,
            "nps_responded_on": _dates(start, nps_day),
            "open_tickets": np.concatenate(parts["tickets"]).astype(np.int32),
        },
    ).with_columns(
        pl.col("health_score").fill_nan(None),
        pl.col("nps").fill_nan(None).cast(pl.Int32),
        pl.when(pl.col("nps").is_nan())
        .then(None)
        .otherwise(pl.col("nps_responded_on"))
        .alias("nps_responded_on"),
    )
    frame = dynamic.join(static, on="idx", how="left")
    return frame.select(c.name for c in ACCOUNTS.columns)


def _static_frame(rng: np.random.Generator, book: _Book, start: date) -> pl.DataFrame:
    """Names, contacts, owners and contract terms that do not change day to day."""
    n = book.n
    combos = len(_NAME_HEADS) * len(_NAME_BODIES) * len(_NAME_TAILS)
    pick = rng.choice(combos, n, replace=n > combos)
    head, rest = np.divmod(pick, len(_NAME_BODIES) * len(_NAME_TAILS))
    body, tail = np.divmod(rest, len(_NAME_TAILS))
    first = np.array(_FIRST)[rng.integers(0, len(_FIRST), n)]
    last = np.array(_LAST)[rng.integers(0, len(_LAST), n)]
    zones = _pick_zones(rng.integers(0, 1 << 30, n), book.region)  # drawn last: older draws stay
    csm_names = np.array([name for name, _, _ in CSMS])[book.csm]
    number = np.arange(1, n + 1)
    return pl.DataFrame(
        {
            "idx": np.arange(n),
            "account_id": _account_ids(n),
            "head": np.array(_NAME_HEADS)[head],
            "body": np.array(_NAME_BODIES)[body],
            "tail": np.array(_NAME_TAILS)[tail],
            "tier": np.array(TIERS)[book.tier],
            "arr": book.arr.astype(np.float64),
            "seats_purchased": book.seats.astype(np.int32),
            "contract_start": _dates(start, book.contract_start),
            "csm_name": csm_names,
            "first": first,
            "last": last,
            "number": number,
            "region": np.array(REGIONS)[book.region],
            "industry": np.array(INDUSTRIES)[book.industry],
            "time_zone": zones,
        }
    ).select(
        "idx",
        "account_id",
        pl.concat_str("head", "body", "tail", separator=" ").alias("account_name"),
        "tier",
        "arr",
        "seats_purchased",
        "contract_start",
        "csm_name",
        (_email_local("csm_name") + "@example.com").alias("csm_email"),
        pl.concat_str("first", "last", separator=" ").alias("primary_contact_name"),
        pl.concat_str(
            pl.col("first").str.to_lowercase(),
            pl.lit("."),
            pl.col("last").str.to_lowercase(),
            pl.lit("."),
            pl.col("number").cast(pl.String),
            pl.lit("@example.org"),
        ).alias("primary_contact_email"),
        "region",
        "industry",
        "time_zone",
    )


def _pick_zones(draw: np.ndarray, region: np.ndarray) -> np.ndarray:
    """One of its region's zones per account, from a non-negative integer draw per account."""
    table, counts = _padded(list(TIME_ZONES))
    return table[region, draw % counts[region]]


def _email_local(column: str) -> pl.Expr:
    return pl.col(column).str.to_lowercase().str.replace_all(" ", ".")


def _account_ids(n: int) -> np.ndarray:
    width = max(5, len(str(n)))
    return np.char.add("ACC-", np.char.zfill(np.arange(1, n + 1).astype(str), width))


ANSWER_SCHEMA: dict[str, pl.DataType] = {
    "event_type": pl.String(), "event_id": pl.String(), "participant_id": pl.String(),
    "occurred_at": pl.Datetime("us"), "score": pl.Int32(), "account_id": pl.String(),
}


def nps_answers(contacts: pl.DataFrame) -> pl.DataFrame:
    """The NPS answers of the contacts' answer days, as participant events: one a contact and
    day, at a working hour drawn from the contact and the day (no random draw, so the other
    frames stay as they were), with the score and the account as properties."""
    answered = contacts.filter(pl.col(ANSWERED))
    if answered.is_empty():
        return pl.DataFrame(schema=ANSWER_SCHEMA)
    number = pl.col("contact_id").str.extract(r"(\d+)$").cast(pl.Int64)
    day = pl.col("snapshot_date").cast(pl.Int64)
    return answered.select(
        pl.lit("nps_response").alias("event_type"),
        pl.format("nps-{}-{}", "contact_id", "snapshot_date").alias("event_id"),
        pl.col("contact_id").alias("participant_id"),
        (pl.col("snapshot_date").cast(pl.Datetime("us"))
         + pl.duration(hours=8 + (number * 7 + day) % 10, minutes=(number * 13 + day) % 60)
         ).alias("occurred_at"),
        pl.col("nps").alias("score"),
        "account_id",
    ).cast(ANSWER_SCHEMA).sort("occurred_at", "participant_id")


def _write_answers(answers: pl.DataFrame, landing_dir: Path, fmt: str) -> list[Path]:
    """One events file per answer day, events/nps_responses_<day>.<fmt>; stale ones go."""
    by_day = answers.with_columns(pl.col("occurred_at").dt.date().alias("_day"))
    return _write_days(by_day, "_day", landing_dir / EVENTS.name, "nps_responses", fmt,
                       lambda part: part.drop("_day"))


def _dates(start: date, offsets: np.ndarray) -> np.ndarray:
    return np.datetime64(start, "D") + offsets.astype("timedelta64[D]")


def _write_daily(
    frame: pl.DataFrame, landing_dir: Path, obj: LandingObject, fmt: str
) -> list[Path]:
    """One file per day, named <object>_<date>.<fmt>, rows in key order; stale demo files go."""
    date_column, id_column = obj.key
    return _write_days(frame, date_column, landing_dir / obj.name, obj.name, fmt,
                       lambda part: part.sort(id_column))


def _write_days(frame: pl.DataFrame, day_column: str, folder: Path, prefix: str, fmt: str,
                shape: Callable[[pl.DataFrame], pl.DataFrame]) -> list[Path]:
    """`folder/<prefix>_<day>.<fmt>`, one file per day of `day_column` (each part shaped by
    `shape`); the folder's older files of that name from an earlier demo go."""
    pattern = re.compile(rf"^{prefix}_\d{{4}}-\d{{2}}-\d{{2}}\.(csv|parquet)$")
    if frame.is_empty() and not folder.is_dir():
        return []
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for (day,), part in sorted(frame.partition_by(day_column, as_dict=True).items()):
        path = folder / f"{prefix}_{day.isoformat()}.{fmt}"
        part = shape(part)
        if fmt == "csv":
            part.write_csv(path)
        else:
            part.write_parquet(path)
        written.append(path)
    keep = set(written)
    for stale in folder.iterdir():
        if pattern.match(stale.name) and stale not in keep:
            stale.unlink()
    return written
