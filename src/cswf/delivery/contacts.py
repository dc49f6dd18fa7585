"""Email recipients picked from the contacts snapshot (`to_contacts` in a spec).

The outbox says `contacts:primary` or `contacts:role=<role>` instead of an address; delivery
resolves it when it sends, from the account's latest contacts snapshot on or before the send day
(UTC), so an email deferred or retried for days still goes to whoever holds the role by then.
An email whose pick matches nobody fails for good, with an error naming the account, the pick and
the snapshot it looked at.
"""

from __future__ import annotations

import weakref
from datetime import datetime

import duckdb
import polars as pl

CONTACTS_PREFIX = "contacts:"
CONTACTS_TABLE = "raw_contacts"
TARGET_SCHEMA: dict[str, pl.DataType] = {
    "action_id": pl.String(),
    "address": pl.String(),  # as it will be written in To: (trimmed, case kept)
    "contact_zone": pl.String(),  # the contact's IANA zone, if any (quiet hours fallback)
}
FAILURE_SCHEMA: dict[str, pl.DataType] = {"action_id": pl.String(), "error": pl.String()}

_MATCHES = f"""
SELECT p.action_id, p.account_id, p.kind, p.role, l.snapshot_date,
       trim(c.email) AS address, c.time_zone AS contact_zone
FROM picks AS p
LEFT JOIN (
    SELECT account_id, max(snapshot_date) AS snapshot_date FROM {CONTACTS_TABLE}
    WHERE snapshot_date <= $day AND account_id IN (SELECT account_id FROM picks)
    GROUP BY account_id
) AS l USING (account_id)
LEFT JOIN {CONTACTS_TABLE} AS c
    ON c.account_id = p.account_id AND c.snapshot_date = l.snapshot_date
    AND nullif(trim(c.email), '') IS NOT NULL
    AND CASE p.kind WHEN 'primary' THEN coalesce(c.is_primary, false)
                    ELSE lower(trim(c.role)) = lower(p.role) END
ORDER BY p.action_id, c.is_primary DESC NULLS LAST, c.contact_id
"""


def is_contact_pick(recipient: pl.Expr) -> pl.Expr:
    return recipient.str.starts_with(CONTACTS_PREFIX).fill_null(False)


_CONTACTS_ON: weakref.WeakSet[duckdb.DuckDBPyConnection] = weakref.WeakSet()


def _has_contacts(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the contacts snapshot table exists; once it does it stays (nothing drops a raw
    table), so a connection asks the catalog (a millisecond or two) only until it is there."""
    if con in _CONTACTS_ON:
        return True
    found = bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = $t "
        "AND table_schema = current_schema()", {"t": CONTACTS_TABLE},
    ).fetchall()[0][0])
    if found:
        _CONTACTS_ON.add(con)
    return found


def resolve_recipients(con: duckdb.DuckDBPyConnection, emails: pl.DataFrame, now: datetime
                       ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(targets, failures) for due emails (columns action_id, participant_id, recipient,
    payload).

    targets: one row per email and address, in send order (the primary contact first, then by
    contact_id; one row per address, compared case-insensitively); an email addressed from a
    fact field is one row, its recipient as is. failures: the contact picks nobody matched.
    """
    picked = is_contact_pick(pl.col("recipient"))
    direct = emails.filter(~picked).select(
        "action_id", pl.col("recipient").alias("address"),
        pl.lit(None, dtype=pl.String).alias("contact_zone"),
    )
    pick = pl.col("recipient").str.strip_prefix(CONTACTS_PREFIX).str.strip_chars()
    # The account: the payload's `account_id` if the engine wrote one (a contact or opportunity
    # workflow), else the participant (an account workflow).
    account = pl.coalesce(pl.col("payload").str.json_path_match("$.account_id"),
                          pl.col("participant_id"))
    picks = emails.filter(picked).select(
        "action_id", "recipient", account.alias("account_id"),
        pl.when(pick == "primary").then(pl.lit("primary"))
        .when(pick.str.starts_with("role=")).then(pl.lit("role")).alias("kind"),
        pick.str.strip_prefix("role=").str.strip_chars().alias("role"),
    )
    malformed = (pl.col("kind").is_null()
                 | ((pl.col("kind") == "role") & (pl.col("role").fill_null("") == "")))
    failures = [picks.filter(malformed).select(
        "action_id",
        pl.format("recipient '{}' is not contacts:primary or contacts:role=<role>",
                  pl.col("recipient")).alias("error"),
    )]
    picks = picks.filter(~malformed).drop("recipient")
    if picks.is_empty():
        return direct.cast(TARGET_SCHEMA), pl.concat(failures).cast(FAILURE_SCHEMA)  # type: ignore[arg-type]
    day = now.date()
    if not _has_contacts(con):
        failures.append(picks.select(
            "action_id",
            pl.format("no contacts snapshot loaded ({} is missing) for account {}",
                      pl.lit(CONTACTS_TABLE), pl.col("account_id")).alias("error"),
        ))
        return direct.cast(TARGET_SCHEMA), pl.concat(failures).cast(FAILURE_SCHEMA)  # type: ignore[arg-type]
    matches = con.sql(_MATCHES, params={"day": day}).pl()
    found = matches.filter(pl.col("address").is_not_null()).with_columns(
        pl.col("address").str.to_lowercase().alias("folded")
    ).unique(["action_id", "folded"], keep="first", maintain_order=True).select(
        list(TARGET_SCHEMA))
    missing = matches.filter(pl.col("address").is_null())
    what = (pl.when(pl.col("kind") == "primary").then(pl.lit("no primary contact"))
            .otherwise(pl.format("no contact with role '{}'", pl.col("role"))))
    failures.append(missing.select(
        "action_id",
        pl.when(pl.col("snapshot_date").is_null())
        .then(pl.format("{} for account {}: no contacts snapshot of the account on or before {}",
                        what, pl.col("account_id"), pl.lit(day.isoformat())))
        .otherwise(pl.format("{} for account {} in the contacts snapshot of {}", what,
                             pl.col("account_id"), pl.col("snapshot_date").cast(pl.String)))
        .alias("error"),
    ))
    targets = pl.concat([direct.cast(TARGET_SCHEMA), found.cast(TARGET_SCHEMA)])  # type: ignore[arg-type]
    return targets, pl.concat(failures).cast(FAILURE_SCHEMA)  # type: ignore[arg-type]
