"""The safety rules for customer email, decided at send time for a whole batch at once.

In order: a suppressed address gets nothing (final: `suppressed`); inside quiet hours in the
recipient account's time zone the email waits for the next allowed window (`deferred`); past the
daily cap for that address the rest are `capped` (final, the flow goes on). The cap counts every
email that went, or may have gone, to the address since the local midnight: sent (also in dry
run), unknown, and those of this batch ahead of it (oldest tick first).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

import duckdb
import polars as pl

from cswf_pipelines.delivery.config import DeliveryConfig
from cswf_pipelines.delivery.windows import zone_or_none, zone_windows

log = logging.getLogger(__name__)

SEND, SUPPRESSED, DEFERRED, CAPPED = "send", "suppressed", "deferred", "capped"
DECISION_SCHEMA: dict[str, pl.DataType] = {
    "action_id": pl.String(),
    "decision": pl.String(),
    "next_attempt_at": pl.Datetime("us"),
    "reason": pl.String(),
}

TimeZones = Mapping[str, str] | pl.DataFrame


def zones_frame(time_zones: TimeZones | None) -> pl.DataFrame:
    """participant_id → time_zone, from a mapping or a frame with those two columns."""
    if time_zones is None:
        return pl.DataFrame(schema={"participant_id": pl.String, "time_zone": pl.String})
    if isinstance(time_zones, pl.DataFrame):
        frame = time_zones.select(pl.col("participant_id").cast(pl.String),
                                  pl.col("time_zone").cast(pl.String))
    else:
        frame = pl.DataFrame({"participant_id": list(time_zones),
                              "time_zone": list(time_zones.values())},
                             schema={"participant_id": pl.String, "time_zone": pl.String})
    return frame.unique("participant_id", keep="last")


def _with_zones(emails: pl.DataFrame, time_zones: TimeZones | None, default: str
                ) -> pl.DataFrame:
    zones = zones_frame(time_zones)
    valid = {name for name in zones["time_zone"].drop_nulls().unique() if zone_or_none(name)}
    bad = set(zones["time_zone"].drop_nulls().unique()) - valid
    if bad:
        log.warning("unknown time zones %s: using %s for those accounts", sorted(bad), default)
    zones = zones.filter(pl.col("time_zone").is_in(list(valid)))
    return emails.join(zones, on="participant_id", how="left").with_columns(
        pl.col("time_zone").fill_null(default)
    )


def email_decisions(con: duckdb.DuckDBPyConnection, emails: pl.DataFrame,
                    config: DeliveryConfig, now: datetime,
                    time_zones: TimeZones | None = None) -> pl.DataFrame:
    """One decision per due email (columns action_id, participant_id, recipient, tick)."""
    if emails.is_empty():
        return pl.DataFrame(schema=DECISION_SCHEMA)
    frame = _with_zones(emails, time_zones, config.default_time_zone).with_columns(
        pl.col("recipient").str.strip_chars().str.to_lowercase().alias("address")
    )
    windows = zone_windows(frame["time_zone"].unique().to_list(), now, config.quiet_hours)
    frame = frame.join(windows, on="time_zone", how="left")
    suppressed = con.sql("SELECT address FROM suppressions").pl()["address"]
    frame = frame.with_columns(
        pl.col("address").is_in(suppressed.implode()).fill_null(False).alias("suppressed")
    )
    candidates = frame.filter(
        ~pl.col("suppressed") & pl.col("quiet_until").is_null() & pl.col("address").is_not_null()
    ).select("action_id", "address", "day_start", "day_end", "tick")
    already = con.sql(
        "SELECT c.action_id, count(s.at) AS already FROM candidates AS c "
        "LEFT JOIN (SELECT lower(trim(o.recipient)) AS address, "
        "coalesce(d.sent_at, d.updated_at) AS at FROM deliveries AS d "
        "JOIN actions_outbox AS o USING (action_id) WHERE d.action_type = 'email' "
        "AND d.status IN ('sent', 'unknown', 'sending')) AS s "
        "ON s.address = c.address AND s.at >= c.day_start AND s.at < c.day_end "
        "GROUP BY c.action_id"
    ).pl()
    # The n-th email to the address today: those already gone, then this batch oldest first.
    ranked = candidates.sort("tick", "action_id").join(
        already, on="action_id", how="left", maintain_order="left"
    ).select(
        "action_id",
        (pl.col("already").fill_null(0) + pl.int_range(1, pl.len() + 1).over("address"))
        .alias("nth_today"),
    )
    frame = frame.join(ranked, on="action_id", how="left")
    cap = config.cap_per_day
    over_cap = pl.lit(False) if cap is None else (pl.col("nth_today") > cap).fill_null(False)
    return frame.select(
        "action_id",
        pl.when(pl.col("suppressed")).then(pl.lit(SUPPRESSED))
        .when(pl.col("quiet_until").is_not_null()).then(pl.lit(DEFERRED))
        .when(over_cap).then(pl.lit(CAPPED))
        .otherwise(pl.lit(SEND)).alias("decision"),
        pl.when(~pl.col("suppressed")).then(pl.col("quiet_until")).alias("next_attempt_at"),
        pl.when(pl.col("suppressed")).then(pl.lit("address is on the suppression list"))
        .when(pl.col("quiet_until").is_not_null())
        .then(pl.format("quiet hours in {}", pl.col("time_zone")))
        .when(over_cap)
        .then(pl.format("daily cap of {} emails to this address reached ({} local day)",
                        pl.lit(cap), pl.col("local_date")))
        .alias("reason"),
    ).cast(DECISION_SCHEMA)  # type: ignore[arg-type]
