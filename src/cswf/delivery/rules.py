"""The safety rules for customer email, decided at send time for a whole batch at once.

In order: a suppressed address gets nothing (final: `suppressed`); inside quiet hours in the
recipient account's time zone the email waits for the next allowed window (`deferred`); past the
daily cap for that address the rest are `capped` (final, the flow goes on). The cap counts every
email that went, or may have gone, to the address since the local midnight: sent (previewed in dry
run), unknown, and those of this batch ahead of it (oldest tick first). An email to several
contacts is checked address by address: suppressed and capped addresses are dropped, and the
email is held only when none is left.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

import duckdb
import polars as pl

from cswf.delivery.config import DeliveryConfig
from cswf.delivery.windows import zone_or_none, zone_windows
from cswf.store.query import query_frame

log = logging.getLogger(__name__)

SEND, SUPPRESSED, DEFERRED, CAPPED = "send", "suppressed", "deferred", "capped"
DECISION_SCHEMA: dict[str, pl.DataType] = {
    "action_id": pl.String(),
    "decision": pl.String(),
    "next_attempt_at": pl.Datetime("us"),
    "reason": pl.String(),
    # send: the addresses left after suppression and the cap; held: every resolved address
    "recipients": pl.List(pl.String()),
}

TimeZones = Mapping[str, str] | pl.DataFrame


def zones_frame(time_zones: TimeZones | None, participants: pl.Series) -> pl.DataFrame:
    """participant_id → time_zone of `participants`, from a mapping or a frame with those two
    columns (a frame may hold the whole book: only these participants' rows are looked at)."""
    if time_zones is None:
        return pl.DataFrame(schema={"participant_id": pl.String, "time_zone": pl.String})
    if isinstance(time_zones, pl.DataFrame):
        frame = time_zones.select(pl.col("participant_id").cast(pl.String),
                                  pl.col("time_zone").cast(pl.String))
    else:
        frame = pl.DataFrame({"participant_id": list(time_zones),
                              "time_zone": list(time_zones.values())},
                             schema={"participant_id": pl.String, "time_zone": pl.String})
    return frame.filter(pl.col("participant_id").is_in(participants.implode())).unique(
        "participant_id", keep="last")


def _zone_names(time_zones: TimeZones | None) -> set[str]:
    """Every zone name the map holds: an unknown one is reported whoever it belongs to."""
    if time_zones is None:
        return set()
    if isinstance(time_zones, pl.DataFrame):
        return set(time_zones["time_zone"].cast(pl.String).drop_nulls().unique())
    return {str(zone) for zone in time_zones.values() if zone is not None}


def _zones(emails: pl.DataFrame, targets: pl.DataFrame, time_zones: TimeZones | None,
           default: str) -> pl.DataFrame:
    """action_id → time_zone: the account's zone, else its first resolved contact's (emails to
    contacts), else `default`. Unknown zone names are skipped with a warning."""
    zones = zones_frame(time_zones, emails["participant_id"])
    names = _zone_names(time_zones) | set(targets["contact_zone"].drop_nulls())
    valid = {name for name in names if zone_or_none(name)}
    bad = names - valid
    if bad:
        log.warning("unknown time zones %s: using %s for those accounts", sorted(bad), default)
    account = emails.select("action_id", "participant_id").join(
        zones.filter(pl.col("time_zone").is_in(list(valid))), on="participant_id", how="left",
        maintain_order="left",
    )
    contact = targets.filter(pl.col("contact_zone").is_in(list(valid))).group_by(
        "action_id", maintain_order=True).agg(pl.col("contact_zone").first())
    return account.join(contact, on="action_id", how="left", maintain_order="left").select(
        "action_id",
        pl.coalesce("time_zone", "contact_zone", pl.lit(default)).alias("time_zone"),
    )


def _sent_today(con: duckdb.DuckDBPyConnection, candidates: pl.DataFrame,
                dry_run: bool) -> pl.DataFrame:
    """Per candidate (action_id, address): emails that went, or may have gone, to the address
    in its local day so far (any workflow; to each address of an email to several). A dry run
    counts its previews too, so it shows what a real run would do; a real run does not."""
    gone = "'sent', 'unknown', 'sending'" + (", 'previewed'" if dry_run else "")
    sent = query_frame(
        con, "SELECT lower(trim(unnest(coalesce(d.recipients, [o.recipient])))) AS address, "
        "coalesce(d.sent_at, d.updated_at) AS gone_at FROM deliveries AS d "
        # the join also leaves out sends whose action a rewound tick withdrew
        "JOIN actions_outbox AS o USING (action_id) WHERE d.action_type = 'email' "
        f"AND d.status IN ({gone}) "
        # Only the candidates' days: without this every run reads every email ever sent.
        "AND coalesce(d.sent_at, d.updated_at) >= $first AND coalesce(d.sent_at, d.updated_at) "
        "< $last",
        {"first": candidates["day_start"].min(), "last": candidates["day_end"].max()},
    )
    # Counted here rather than joined in SQL: a frame read by DuckDB costs a scan per run.
    in_day = (pl.col("gone_at") >= pl.col("day_start")) & (pl.col("gone_at") < pl.col("day_end"))
    return candidates.join(sent, on="address", how="left").group_by("action_id", "address").agg(
        in_day.sum().cast(pl.Int64).alias("already"))


def email_decisions(con: duckdb.DuckDBPyConnection, emails: pl.DataFrame,
                    config: DeliveryConfig, now: datetime,
                    time_zones: TimeZones | None = None,
                    targets: pl.DataFrame | None = None) -> pl.DataFrame:
    """One decision per due email (columns action_id, participant_id, recipient, tick).

    `targets` (action_id, address, contact_zone) are the addresses of each email, in order
    (resolve_recipients); default: its `recipient`. Suppression and the cap apply per address:
    those addresses are dropped (`recipients` of a `send` decision are the ones left), and the
    email is suppressed / capped only when no address is left. Quiet hours hold the whole email.
    """
    if emails.is_empty():
        return pl.DataFrame(schema=DECISION_SCHEMA)
    if targets is None:
        targets = emails.select("action_id", pl.col("recipient").alias("address"),
                                pl.lit(None, dtype=pl.String).alias("contact_zone"))
    zones = _zones(emails, targets, time_zones, config.default_time_zone)
    windows = zone_windows(zones["time_zone"].unique().to_list(), now, config.quiet_hours)
    actions = emails.select("action_id", "tick").join(
        zones, on="action_id", how="left", maintain_order="left"
    ).join(windows, on="time_zone", how="left", maintain_order="left")
    suppressed = query_frame(con, "SELECT address FROM suppressions")["address"]
    per_address = targets.join(actions, on="action_id", how="inner", maintain_order="left")
    per_address = per_address.with_columns(
        pl.col("address").str.strip_chars().str.to_lowercase().alias("folded")
    ).with_columns(
        pl.col("folded").is_in(suppressed.implode()).fill_null(False).alias("suppressed")
    )
    candidates = per_address.filter(
        ~pl.col("suppressed") & pl.col("quiet_until").is_null() & pl.col("folded").is_not_null()
    ).select("action_id", pl.col("folded").alias("address"), "day_start", "day_end", "tick")
    # The n-th email to the address today: those already gone, then this batch oldest first.
    ranked = candidates.sort("tick", "action_id").join(
        _sent_today(con, candidates, config.dry_run), on=["action_id", "address"], how="left",
        maintain_order="left",
    ).select(
        "action_id", pl.col("address").alias("folded"),
        (pl.col("already").fill_null(0) + pl.int_range(1, pl.len() + 1).over("address"))
        .alias("nth_today"),
    )
    cap = config.cap_per_day
    per_address = per_address.join(ranked, on=["action_id", "folded"], how="left",
                                   maintain_order="left").with_columns(
        (pl.lit(False) if cap is None else (pl.col("nth_today") > cap).fill_null(False))
        .alias("capped")
    )
    keep = ~pl.col("suppressed") & ~pl.col("capped") & pl.col("address").is_not_null()
    per_email = per_address.group_by("action_id", maintain_order=True).agg(
        pl.len().alias("addresses"),
        pl.col("suppressed").sum().alias("n_suppressed"),
        pl.col("capped").sum().alias("n_capped"),
        pl.col("address").filter(keep).alias("send_to"),
        pl.col("address").drop_nulls().alias("resolved"),
    )
    frame = actions.join(per_email, on="action_id", how="left", maintain_order="left")
    one = pl.col("addresses") == 1
    is_suppressed = (pl.col("n_suppressed") == pl.col("addresses")) & (pl.col("addresses") > 0)
    is_quiet = pl.col("quiet_until").is_not_null()
    is_capped = (pl.col("n_capped") > 0) & (pl.col("send_to").list.len() == 0)
    return frame.select(
        "action_id",
        pl.when(is_suppressed).then(pl.lit(SUPPRESSED))
        .when(is_quiet).then(pl.lit(DEFERRED))
        .when(is_capped).then(pl.lit(CAPPED))
        .otherwise(pl.lit(SEND)).alias("decision"),
        pl.when(~is_suppressed).then(pl.col("quiet_until")).alias("next_attempt_at"),
        pl.when(is_suppressed & one).then(pl.lit("address is on the suppression list"))
        .when(is_suppressed).then(pl.format("all {} addresses are on the suppression list",
                                            pl.col("addresses")))
        .when(is_quiet).then(pl.format("quiet hours in {}", pl.col("time_zone")))
        .when(is_capped & one)
        .then(pl.format("daily cap of {} emails to this address reached ({} local day)",
                        pl.lit(cap), pl.col("local_date")))
        .when(is_capped)
        .then(pl.format("daily cap of {} emails reached for every address not suppressed "
                        "({} local day)", pl.lit(cap), pl.col("local_date")))
        .alias("reason"),
        pl.when(~is_suppressed & ~is_quiet & ~is_capped).then(pl.col("send_to"))
        .otherwise(pl.col("resolved")).alias("recipients"),
    ).cast(DECISION_SCHEMA)  # type: ignore[arg-type]
