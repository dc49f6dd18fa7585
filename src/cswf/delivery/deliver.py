"""The delivery step: make each outbox action happen exactly once and record what happened.

One run, at an explicit `now` (the caller's clock, so runs replay deterministically):
1. new outbox actions get a `deliveries` row (`pending`; a template that did not render:
   `failed`, final); rows never handed to a sender follow the outbox if a tick was rewound;
2. recovery: a row left in `sending` by a crash is retried if its channel is idempotent
   (webhooks carry the same Idempotency-Key; files and tables are overwritten/upserted), and
   set to `unknown` for a human if it is SMTP, which has no idempotency key;
3. due actions (pending; failed or deferred whose next_attempt_at has come) are routed to the
   channel their action type names (delivery/channels/): a channel may screen them first (SMTP:
   emails get their recipients, contact picks resolved from the contacts snapshot, and go
   through the safety rules), then its sender takes them; a channel without a sender may deliver
   them itself (tasks and field updates into the CRM export tables, in one transaction with
   their status);
4. each send is bracketed: `sending` is committed before the send and `sent` / `failed` /
   `unknown` after, so a crash can only leave a `sending` row, which step 2 resolves. A failure
   is retried per the retry policy unless the action's `on_error` is `continue`; every final
   failure records a `failed` event (the engine exits `on_error: exit` enrollments on it).
Only one delivery run may work on a database at a time (DuckDB allows one writer process).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Literal

import duckdb
import polars as pl

from cswf.calendar import utc_naive
from cswf.delivery.approvals import AWAITING, NEEDS_APPROVAL, settle_approvals
from cswf.delivery.brakes import check_breaker, limit_rates
from cswf.delivery.channel import Channel, DeliveryRun
from cswf.delivery.channels import channel_for, channel_names, channels, is_idempotent
from cswf.delivery.compensate import compensate
from cswf.delivery.config import DeliveryConfig
from cswf.delivery.dry_run import DryRunSender
from cswf.delivery.exports import committed, sync_parquet
from cswf.delivery.model import OutboundAction, Sender, SendResult
from cswf.delivery.outcomes import Sent, fail_now, record_outcomes
from cswf.delivery.report import DeliveryReport
from cswf.delivery.rules import TimeZones
from cswf.ingest.action_events import record_events
from cswf.store.query import query_frame
from cswf.store.tables import delivery_tables_ready
from cswf.store.transaction import transaction

__all__ = ["DeliveryReport", "Fault", "default_senders", "deliver", "resolve_unknown"]

log = logging.getLogger(__name__)

Stage = Literal["before_send", "after_send"]
Fault = Callable[[Stage, OutboundAction], None]
"""Test hook, called after `sending` is committed: before the send and after it (before the
outcome is recorded). Raising from it simulates a crash at that point."""


def _unsafe() -> list[Channel]:
    """Channels on which sending twice is not harmless: a crash mid-send needs a human."""
    return sorted((c for c in channels() if not c.idempotent), key=lambda c: c.name)


def _due_condition(real: bool) -> str:
    """Which deliveries rows are due at $now: pending, failed or deferred whose time has come,
    `sending` rows a crash left on a channel where sending again is harmless, and in a real run
    the rows a dry run previewed (a preview consumes nothing)."""
    unsafe = ", ".join(repr(channel.name) for channel in _unsafe())
    resend = f"coalesce(d.channel, '') NOT IN ({unsafe})" if unsafe else "true"
    waiting = "('pending', 'previewed')" if real else "('pending')"
    return (f"d.status IN {waiting} OR (d.status IN ('failed', 'deferred') AND "
            f"d.next_attempt_at <= $now) OR (d.status = 'sending' AND {resend})")


def default_senders(config: DeliveryConfig) -> dict[str, Sender]:
    """The real senders for this config, by channel (`smtp` for email, `webhook`, ...)."""
    senders = {channel.name: channel.sender(config) for channel in channels()}
    return {name: sender for name, sender in senders.items() if sender is not None}


def _sync_outbox(con: duckdb.DuckDBPyConnection, now: datetime) -> None:
    """A deliveries row for every outbox action up to `now`; untouched rows follow the outbox.
    A template that did not render is a final failure, so it gets its `failed` event."""
    params = {"now": now}
    with transaction(con):
        # Never handed to a sender (attempts = 0): forget it if its action was withdrawn by a
        # rewound tick or changed its render status or its need of approval, so the insert
        # below recreates it.
        dropped = con.execute(
            "DELETE FROM deliveries AS d WHERE d.attempts = 0 "
            f"AND d.status IN ('pending', 'deferred', 'failed', '{AWAITING}') AND NOT EXISTS ("
            "SELECT 1 FROM actions_outbox AS o WHERE o.action_id = d.action_id AND o.tick <= $now "
            "AND (o.status = 'render_failed') = (d.status = 'failed') "
            # a replayed tick whose email no longer needs approval: no longer waiting for it
            f"AND (d.status <> '{AWAITING}' OR {NEEDS_APPROVAL})) RETURNING action_id, status",
            params,
        ).fetchall()
        unrendered = [action_id for action_id, status in dropped if status == "failed"]
        if unrendered:  # its `failed` event goes too: the replayed tick may render it fine
            con.execute(
                "DELETE FROM action_events WHERE event_type = 'failed' AND source = 'delivery' "
                "AND action_id IN (SELECT unnest($ids))", {"ids": unrendered},
            ).fetchall()
        inserted = con.execute(
            "INSERT INTO deliveries (action_id, action_type, status, attempts, last_error, "
            "created_at, updated_at) "
            "SELECT action_id, action_type, "
            "CASE WHEN status = 'render_failed' THEN 'failed' "
            f"WHEN {NEEDS_APPROVAL} THEN '{AWAITING}' ELSE 'pending' END, 0, "
            "CASE WHEN status = 'render_failed' THEN 'template did not render: ' || "
            "coalesce(error, '?') END, $now, $now "
            "FROM actions_outbox AS o WHERE tick <= $now "
            # an anti-join finds the new ones at a third of ON CONFLICT's cost per old row
            "AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.action_id = o.action_id) "
            "ON CONFLICT DO NOTHING RETURNING status",
            params,
        ).fetchall()
        # A `failed` row gets its event in the transaction that makes it (here), so only a
        # row this insert made can lack it.
        if ("failed",) not in inserted:
            return
        failed = query_frame(
            con, "SELECT d.action_id, 'failed' AS event_type, d.created_at AS occurred_at, "
            "d.last_error AS detail, 'delivery' AS source FROM deliveries AS d "
            "WHERE d.status = 'failed' AND d.attempts = 0 AND NOT EXISTS (SELECT 1 FROM "
            "action_events AS e WHERE e.action_id = d.action_id AND e.event_type = 'failed')",
        )
        if failed.height:
            record_events(con, failed, now)


def _recover(con: duckdb.DuckDBPyConnection, now: datetime, report: DeliveryReport) -> None:
    """Rows a crash left in `sending`: on a channel that is not idempotent (SMTP) → unknown (a
    human checks); others are retried."""
    if not con.execute("SELECT count(*) FROM deliveries WHERE status = 'sending'").fetchall()[0][0]:
        return
    stuck = query_frame(con, "SELECT action_id, channel, provider_id FROM deliveries "
                       "WHERE status = 'sending' ORDER BY action_id")
    unsafe = _unsafe()
    ambiguous = stuck.filter(pl.col("channel").is_in([channel.name for channel in unsafe]))
    report.recovered_unknown = ambiguous["action_id"].to_list()
    report.recovered_retried = stuck.filter(~pl.col("action_id").is_in(
        ambiguous["action_id"].implode()))["action_id"].to_list()
    for action_id in report.recovered_unknown:
        log.warning("delivery of %s was interrupted mid-send: marked unknown", action_id)
    for channel in unsafe:
        con.execute(
            "UPDATE deliveries SET status = 'unknown', attempts = attempts + 1, "
            "updated_at = $now, last_error = $note WHERE status = 'sending' AND channel = $name",
            {"now": now, "note": channel.interrupted, "name": channel.name},
        ).fetchall()


def _expire(con: duckdb.DuckDBPyConnection, config: DeliveryConfig, now: datetime,
            report: DeliveryReport) -> None:
    """A real run never sends what has waited too long (a dry run's previews, a backlog):
    pending or previewed actions whose tick is more than `max_age_hours` before `now` are
    `expired`, final, with the reason."""
    if config.max_age_hours is None:
        return
    oldest = now - timedelta(hours=config.max_age_hours)
    expired = con.execute(
        "UPDATE deliveries AS d SET status = 'expired', next_attempt_at = NULL, "
        "updated_at = $now, last_error = 'not sent: emitted at ' || "
        "strftime(o.tick, '%Y-%m-%d %H:%M') || ', more than ' || $age || "
        "' hours (delivery.max_age_hours) before this run' "
        "FROM actions_outbox AS o WHERE o.action_id = d.action_id "
        "AND d.status IN ('pending', 'previewed') AND o.tick < $oldest "
        # an approved email's age counts from its approval
        "AND NOT EXISTS (SELECT 1 FROM action_events AS e WHERE e.action_id = d.action_id "
        "AND e.event_type = 'approved' AND e.occurred_at >= $oldest)",
        {"now": now, "oldest": oldest, "age": f"{config.max_age_hours:g}"},
    ).fetchall()[0][0]
    if expired:
        report.outcomes["expired"] += int(expired)


def _exports_upkeep(con: duckdb.DuckDBPyConnection, config: DeliveryConfig, now: datetime,
                    report: DeliveryReport) -> None:
    """The CRM Parquet files brought back in line with their tables (a crash between the
    table commit and the file write is repaired here), and in a real run the compensating rows
    (delivery/compensate.py) exported."""
    report.export_files += sync_parquet(con, config.export_dir)
    if config.dry_run:
        return
    with transaction(con):
        compensated = compensate(con, now)
    if compensated:
        committed()
        report.outcomes["compensated"] += compensated
        report.export_files += sync_parquet(con, config.export_dir)


def _due(con: duckdb.DuckDBPyConnection, now: datetime, real: bool) -> pl.DataFrame:
    """The due rows with their outbox columns, oldest tick first. A held tick, and every tick
    after it, waits for a person's decision (docs/safety.md): one comparison with the earliest
    held tick, not a look-up in tick_holds per row."""
    return query_frame(
        con, "WITH due AS (SELECT d.action_id, d.status AS delivery_status, d.attempts "
        f"FROM deliveries AS d WHERE {_due_condition(real)}), "
        "held AS (SELECT min(as_of) AS since FROM tick_holds WHERE status = 'held') "
        "SELECT o.* EXCLUDE (status, error), due.delivery_status, due.attempts "
        "FROM due JOIN actions_outbox AS o USING (action_id) "
        "WHERE (o.tick >= (SELECT since FROM held)) IS NOT TRUE "
        "ORDER BY o.tick, o.action_id",
        {"now": now},
    )


def _preview_all(con: duckdb.DuckDBPyConnection, sender: DryRunSender, rows: pl.DataFrame,
                 config: DeliveryConfig, now: datetime, report: DeliveryReport) -> None:
    """A dry run has no outside effect, so its claims and records go in batches."""
    if rows.is_empty():
        return
    batch = rows.select("action_id", "recipients")  # noqa: F841 (read by DuckDB)
    con.execute(
        f"UPDATE deliveries AS d SET status = 'sending', channel = $channel, updated_at = $now, "
        f"recipients = CASE WHEN len(b.recipients) > 0 THEN b.recipients END "
        f"FROM batch AS b WHERE d.action_id = b.action_id AND ({_due_condition(False)})",
        {"channel": sender.channel, "now": now},
    ).fetchall()
    actions = [OutboundAction.from_row(row) for row in rows.iter_rows(named=True)]
    results = sender.send_all(actions, now)  # every file written before anything is recorded
    sent: list[Sent] = [
        (action, attempts if isinstance(attempts, int) else 0, sender.channel, result)
        for action, attempts, result in zip(actions, rows["attempts"], results, strict=True)]
    report.outcomes.update(record_outcomes(con, sent, config, now))


def _attempt(con: duckdb.DuckDBPyConnection, sender: Sender, row: dict[str, object],
             config: DeliveryConfig, now: datetime, fault: Fault | None
             ) -> tuple[SendResult, str] | None:
    """Claim (`sending`, committed), send, record: (result, outcome as counted). None: the row
    was no longer due."""
    action = OutboundAction.from_row(row)
    claimed = con.execute(
        f"UPDATE deliveries AS d SET status = 'sending', channel = $channel, updated_at = $now, "
        f"recipients = CAST($recipients AS VARCHAR[]) WHERE d.action_id = $id AND "
        f"({_due_condition(not config.dry_run)})",
        {"channel": sender.channel, "now": now, "id": action.action_id,
         "recipients": list(action.recipients) or None},
    ).fetchall()[0][0]
    if not claimed:
        return None
    if fault is not None:
        fault("before_send", action)
    try:
        result = sender.send(action, now)
    except Exception as exc:  # a sender bug: only an idempotent channel may try again
        error = f"sender raised {type(exc).__name__}: {exc}"
        log.exception("sender %r raised for %s", sender, action.action_id)
        result = (SendResult.failed(error, retryable=True) if is_idempotent(sender.channel)
                  else SendResult("unknown", error=error))
    if fault is not None:
        fault("after_send", action)
    attempts = row["attempts"]
    (counted,) = record_outcomes(con, [(action, attempts if isinstance(attempts, int) else 0,
                                        sender.channel, result)], config, now)
    return result, counted


def _routes(due: pl.DataFrame) -> pl.Expr:
    """Each row's channel (null: its action type has no registered channel)."""
    routes = {}
    for action_type in due["action_type"].unique().to_list():
        channel = channel_for(action_type)
        if channel is not None:
            routes[action_type] = channel.name
    return pl.col("action_type").replace_strict(routes, default=None, return_dtype=pl.String)


def _screened(due: pl.DataFrame, rows: pl.DataFrame, kept: pl.DataFrame) -> pl.DataFrame:
    """`due` without the `rows` a channel's screen held back, with the `recipients` it set."""
    gone = rows["action_id"].filter(~rows["action_id"].is_in(kept["action_id"].implode()))
    return due.filter(~pl.col("action_id").is_in(gone.implode())).join(
        kept.select("action_id", pl.col("recipients").alias("__screened")), on="action_id",
        how="left", maintain_order="left",
    ).with_columns(pl.coalesce("__screened", "recipients").alias("recipients")).drop(
        "__screened")


def _check_senders(senders: Mapping[str, Sender]) -> None:
    unknown = sorted(set(senders) - set(channel_names()))
    if unknown:
        raise ValueError(f"senders are keyed by channel ({', '.join(channel_names())}); "
                         f"no channel {unknown}")


def deliver(con: duckdb.DuckDBPyConnection, senders: Mapping[str, Sender],
            config: DeliveryConfig, now: datetime, *, time_zones: TimeZones | None = None,
            fault: Fault | None = None) -> DeliveryReport:
    """Deliver every due action once. `senders`: by channel name, e.g. "smtp" and "webhook"
    (see default_senders); with `config.dry_run` they are all replaced by a DryRunSender.
    `time_zones`: participant_id → IANA zone for quiet hours and the daily cap (default:
    config.default_time_zone)."""
    now = utc_naive(now)
    _check_senders(senders)
    delivery_tables_ready(con)
    report = DeliveryReport(now=now, dry_run=config.dry_run)
    preview = None
    if config.dry_run:
        preview = DryRunSender(config)
        senders = dict.fromkeys(channel_names(), preview)
        report.preview_dir = config.dry_run_dir
    run = DeliveryRun(con, config, now, report, time_zones)
    _sync_outbox(con, now)
    settle_approvals(con, now, report)
    _recover(con, now, report)
    _exports_upkeep(con, config, now, report)
    if not config.dry_run:
        _expire(con, config, now, report)
    due = _due(con, now, not config.dry_run)
    due = due.with_columns(_routes(due).alias("route"),
                           pl.lit(None, dtype=pl.List(pl.String)).alias("recipients"))
    routed = pl.col("route").is_not_null()
    braking = not config.dry_run or config.brakes_in_dry_run  # delivery/brakes.py
    if braking:  # far above the norm: send nothing
        report.breaker = check_breaker(con, due, config, now)
    if report.breaker is not None:
        log.warning("delivery at %s: %s", now.isoformat(), report.breaker)
        return report
    fail_now(con, due.filter(~routed).with_columns(
        pl.format("no delivery channel for action type '{}'", pl.col("action_type"))
        .alias("error")), config, now, report)
    if braking:
        due = limit_rates(run, due, {c.name for c in channels() if c.name not in senders})
    for channel in channels():  # a channel with no sender here may deliver its rows itself
        rows = due.filter(pl.col("route") == channel.name)
        if (channel.name not in senders and rows.height
                and channel.deliver_without_sender(run, rows)):
            due = due.filter(pl.col("route") != channel.name)
    for channel in channels():  # then each channel screens what its sender is about to get
        rows = due.filter(pl.col("route") == channel.name)
        if channel.name in senders and rows.height:
            due = _screened(due, rows, channel.screen(run, rows, senders[channel.name]))
    if braking:  # what the senders are about to get
        due = limit_rates(run, due, set(senders))
    down: set[str] = set()
    try:
        if preview is not None and fault is None:
            _preview_all(con, preview, due.filter(routed), config, now, report)
            due = due.clear()
        for row in due.filter(routed).iter_rows(named=True):
            route = str(row["route"])
            sender = senders.get(route)
            if sender is None or route in down:
                report.waiting += 1
                continue
            attempted = _attempt(con, sender, row, config, now, fault)
            if attempted is None:
                continue
            result, counted = attempted
            report.outcomes[counted] += 1
            if result.error:
                report.errors.append(f"{row['action_id']}: {result.error}")
            if result.sender_down:
                down.add(route)
    finally:
        for sender in {id(s): s for s in senders.values()}.values():
            sender.close()
    log.info("delivery at %s: %s", now.isoformat(), report.summary())
    return report


def resolve_unknown(con: duckdb.DuckDBPyConnection, action_id: str,
                    status: Literal["sent", "pending", "failed"], now: datetime,
                    note: str | None = None) -> None:
    """A human's verdict on an `unknown` email: `sent` (the server log shows it), `pending`
    (it never arrived: send it again) or `failed` (give up)."""
    now = utc_naive(now)
    error = note or f"resolved by hand: {status}"
    with transaction(con):
        changed = con.execute(
            "UPDATE deliveries SET status = $status, next_attempt_at = NULL, updated_at = $now, "
            "sent_at = CASE WHEN $status = 'sent' THEN $now END, last_error = $error "
            "WHERE action_id = $id AND status = 'unknown'",
            {"status": status, "now": now, "error": error, "id": action_id},
        ).fetchall()[0][0]
        if changed and status == "failed":  # given up: a final failure like any other
            record_events(con, pl.DataFrame(
                {"action_id": [action_id], "event_type": ["failed"], "occurred_at": [now],
                 "detail": [error], "source": ["delivery"]}), now)
    if not changed:
        raise LookupError(f"{action_id} is not a delivery in status unknown")
