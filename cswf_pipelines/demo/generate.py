"""A deterministic demo book of business: daily account snapshots and usage as landing files.

The simulation runs one vectorized step per day over all accounts, so that workflows have
something to react to: onboarding arrivals, stage progression, renewals and churn, usage drops,
health scores crossing 60, NPS answers, and low seat utilisation that sometimes recovers.
Only example.com / example.org addresses are generated.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from cswf_pipelines.facts.contract import ACCOUNTS, STAGES, TIERS, USAGE


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

BURN_IN_DAYS = 35  # usage history before day 0, so the first health scores have a baseline
TIER_SHARES = (0.15, 0.35, 0.50)
# per tier: median seats, lognormal sigma, min, max
SEATS = ((500.0, 0.6, 150, 5000), (100.0, 0.5, 25, 600), (15.0, 0.5, 3, 60))
PRICE_PER_SEAT = np.array([420.0, 480.0, 600.0])
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
    files_written: list[Path] = field(default_factory=list)


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
) -> BookSummary:
    """Write one accounts and one usage file per day under `landing_dir`.

    Earlier demo files (same naming pattern) in the two folders are replaced, so switching the
    format or the length never leaves a second snapshot of the same day behind.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', not {fmt!r}")
    snapshots, usage, stats = simulate_book(accounts=accounts, days=days, start=start, seed=seed)
    written = _write_daily(snapshots, landing_dir / ACCOUNTS.name, ACCOUNTS.date_column, fmt)
    written += _write_daily(usage, landing_dir / USAGE.name, USAGE.date_column, fmt)
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
        files_written=written,
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
    )


def _email_local(column: str) -> pl.Expr:
    return pl.col(column).str.to_lowercase().str.replace_all(" ", ".")


def _account_ids(n: int) -> np.ndarray:
    width = max(5, len(str(n)))
    return np.char.add("ACC-", np.char.zfill(np.arange(1, n + 1).astype(str), width))


def _dates(start: date, offsets: np.ndarray) -> np.ndarray:
    return np.datetime64(start, "D") + offsets.astype("timedelta64[D]")


def _write_daily(frame: pl.DataFrame, folder: Path, date_column: str, fmt: str) -> list[Path]:
    """One file per day, named <object>_<date>.<fmt>; stale demo files are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(rf"^{folder.name}_\d{{4}}-\d{{2}}-\d{{2}}\.(csv|parquet)$")
    written = []
    for (day,), part in sorted(frame.partition_by(date_column, as_dict=True).items()):
        path = folder / f"{folder.name}_{day.isoformat()}.{fmt}"
        part = part.sort("account_id")
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
