"""The delivery step: make each outbox action happen exactly once and record what happened.

One run, at an explicit `now` (the caller's clock, so runs replay deterministically):
1. new outbox actions get a `deliveries` row (`pending`; a template that did not render:
   `failed`, final); rows never handed to a sender follow the outbox if a tick was rewound;
2. recovery: a row left in `sending` by a crash is retried if its channel is idempotent
   (webhooks carry the same Idempotency-Key; files and tables are overwritten/upserted), and
   set to `unknown` for a human if it is SMTP, which has no idempotency key;
3. due actions (pending; failed or deferred whose next_attempt_at has come) are routed: emails
   get their recipients (contacts picks resolved from the contacts snapshot) and go through the
   safety rules, then their sender; webhooks to theirs; tasks and field updates into the CRM
   export tables (one transaction with their status);
4. each send is bracketed: `sending` is committed before the send and `sent` / `failed` /
   `unknown` after, so a crash can only leave a `sending` row, which step 2 resolves. A failure
   is retried per the retry policy unless the action's `on_error` is `continue`; every final
   failure records a `failed` event (the engine exits `on_error: exit` enrollments on it).
Only one delivery run may work on a database at a time (DuckDB allows one writer process).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import duckdb
import polars as pl

from cswf.calendar import utc_naive
from cswf.delivery.config import DeliveryConfig
from cswf.delivery.contacts import resolve_recipients
from cswf.delivery.dry_run import DryRunSender
from cswf.delivery.exports import export_actions, write_parquet
from cswf.delivery.model import (
    EMAIL,
    TABLE_TYPES,
    WEBHOOK_TYPES,
    OutboundAction,
    Sender,
    SendResult,
)
from cswf.delivery.rules import SEND, TimeZones, email_decisions
from cswf.delivery.smtp import SmtpSender
from cswf.delivery.webhook import WebhookSender
from cswf.ingest.action_events import EVENT_SCHEMA, record_events
from cswf.store.tables import ensure_delivery_tables
from cswf.store.transaction import transaction

log = logging.getLogger(__name__)

# Channels on which sending twice is not harmless: a crash mid-send needs a human.
NON_IDEMPOTENT_CHANNELS = frozenset({"smtp"})
Stage = Literal["before_send", "after_send"]
Fault = Callable[[Stage, OutboundAction], None]
"""Test hook, called after `sending` is committed: before the send and after it (before the
outcome is recorded). Raising from it simulates a crash at that point."""

_DUE = ("d.status = 'pending' OR (d.status IN ('failed', 'deferred') AND d.next_attempt_at <= $now)"
        " OR (d.status = 'sending' AND coalesce(d.channel, '') NOT IN "
        f"({', '.join(repr(c) for c in sorted(NON_IDEMPOTENT_CHANNELS))}))")


@dataclass
class DeliveryReport:
    now: datetime
    dry_run: bool
    outcomes: Counter[str] = field(default_factory=Counter)  # status → actions this run
    recovered_unknown: list[str] = field(default_factory=list)  # emails cut off mid-send
    recovered_retried: list[str] = field(default_factory=list)  # idempotent, sent again
    waiting: int = 0  # due, but no sender for their channel this run (none given, or down)
    errors: list[str] = field(default_factory=list)  # "<action_id>: <error>"
    preview_dir: Path | None = None
    export_files: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{n} {status}" for status, n in sorted(self.outcomes.items())]
        if self.recovered_unknown:
            parts.append(f"{len(self.recovered_unknown)} interrupted emails marked unknown")
        if self.waiting:
            parts.append(f"{self.waiting} waiting for a sender")
        text = ", ".join(parts) or "nothing due"
        if self.preview_dir is not None:
            text += f" (dry run: would-be messages in {self.preview_dir})"
        return text


def default_senders(config: DeliveryConfig) -> dict[str, Sender]:
    """The real senders for this config: `email` over SMTP, `webhook` over HTTP."""
    return {"email": SmtpSender(config), "webhook": WebhookSender(config.webhook)}


def _sync_outbox(con: duckdb.DuckDBPyConnection, now: datetime) -> None:
    """A deliveries row for every outbox action up to `now`; untouched rows follow the outbox.
    A template that did not render is a final failure, so it gets its `failed` event."""
    params = {"now": now}
    with transaction(con):
        # Never handed to a sender (attempts = 0): forget it if its action was withdrawn by a
        # rewound tick or changed its render status, so the insert below recreates it.
        dropped = con.execute(
            "DELETE FROM deliveries AS d WHERE d.attempts = 0 "
            "AND d.status IN ('pending', 'deferred', 'failed') AND NOT EXISTS ("
            "SELECT 1 FROM actions_outbox AS o WHERE o.action_id = d.action_id AND o.tick <= $now "
            "AND (o.status = 'render_failed') = (d.status = 'failed')) RETURNING action_id, status",
            params,
        ).fetchall()
        unrendered = [action_id for action_id, status in dropped if status == "failed"]
        if unrendered:  # its `failed` event goes too: the replayed tick may render it fine
            con.execute(
                "DELETE FROM action_events WHERE event_type = 'failed' AND source = 'delivery' "
                "AND action_id IN (SELECT unnest($ids))", {"ids": unrendered},
            ).fetchall()
        con.execute(
            "INSERT INTO deliveries (action_id, action_type, status, attempts, last_error, "
            "created_at, updated_at) "
            "SELECT action_id, action_type, "
            "CASE WHEN status = 'render_failed' THEN 'failed' ELSE 'pending' END, 0, "
            "CASE WHEN status = 'render_failed' THEN 'template did not render: ' || "
            "coalesce(error, '?') END, $now, $now "
            "FROM actions_outbox WHERE tick <= $now ON CONFLICT DO NOTHING",
            params,
        ).fetchall()
        failed = con.sql(
            "SELECT d.action_id, 'failed' AS event_type, d.created_at AS occurred_at, "
            "d.last_error AS detail, 'delivery' AS source FROM deliveries AS d "
            "WHERE d.status = 'failed' AND d.attempts = 0 AND NOT EXISTS (SELECT 1 FROM "
            "action_events AS e WHERE e.action_id = d.action_id AND e.event_type = 'failed')"
        ).pl()
        if failed.height:
            record_events(con, failed, now)


def _recover(con: duckdb.DuckDBPyConnection, now: datetime, report: DeliveryReport) -> None:
    """Rows a crash left in `sending`: SMTP → unknown (a human checks); others are retried."""
    stuck = con.sql("SELECT action_id, channel, provider_id FROM deliveries "
                    "WHERE status = 'sending' ORDER BY action_id").pl()
    if stuck.is_empty():
        return
    ambiguous = stuck.filter(pl.col("channel").is_in(list(NON_IDEMPOTENT_CHANNELS)))
    report.recovered_unknown = ambiguous["action_id"].to_list()
    report.recovered_retried = stuck.filter(~pl.col("action_id").is_in(
        ambiguous["action_id"].implode()))["action_id"].to_list()
    for action_id in report.recovered_unknown:
        log.warning("delivery of %s was interrupted mid-send: marked unknown", action_id)
    con.execute(
        "UPDATE deliveries SET status = 'unknown', attempts = attempts + 1, updated_at = $now, "
        "last_error = 'interrupted between handing the email to the SMTP server and recording "
        "the result: it may or may not have been sent. Check the mail server log for its "
        "Message-ID, then resolve_unknown() it as sent or pending (docs/delivery.md)' "
        "WHERE status = 'sending' AND channel IN (SELECT unnest($channels))",
        {"now": now, "channels": sorted(NON_IDEMPOTENT_CHANNELS)},
    ).fetchall()


def _due(con: duckdb.DuckDBPyConnection, now: datetime) -> pl.DataFrame:
    return con.sql(
        "SELECT o.* EXCLUDE (status, error), d.status AS delivery_status, d.attempts "
        f"FROM deliveries AS d JOIN actions_outbox AS o USING (action_id) WHERE {_DUE} "
        "ORDER BY o.tick, o.action_id",
        params={"now": now},
    ).pl()


Sent = tuple[OutboundAction, int, str, SendResult]  # action, attempts before, channel, result


def _record(con: duckdb.DuckDBPyConnection, sent: list[Sent], config: DeliveryConfig,
            now: datetime) -> list[str]:
    """Store the outcomes of sends (status, backoff, events) in one transaction; returns each
    outcome as counted in the report."""
    rows, events, counted = [], [], []
    for action, attempts, channel, result in sent:
        tried = attempts + 1
        # on_error: continue → the first failure is final; retry and exit → the retry policy.
        final = (not result.retryable or tried >= config.retry.max_attempts
                 or action.on_error == "continue")
        next_at = None
        if result.outcome == "sent":
            status, count = "sent", "sent"
        elif result.outcome == "unknown":
            status, count = "unknown", "unknown"
        else:
            status, count = "failed", "failed" if final else "retrying"
            if not final:
                next_at = now + timedelta(seconds=config.retry.delay_seconds(tried))
        kinds = list(result.events)
        if status == "failed" and final and all(kind != "failed" for kind, _ in kinds):
            kinds.append(("failed", result.error))  # what on_error: exit waits for
        events += [(action.action_id, kind, now, detail, channel) for kind, detail in kinds]
        rows.append((action.action_id, status, tried, next_at, result.error, result.provider_id))
        counted.append(count)
    outcomes = pl.DataFrame(  # noqa: F841 (read by DuckDB)
        rows, orient="row",
        schema={"action_id": pl.String, "status": pl.String, "tried": pl.Int64,
                "next_at": pl.Datetime("us"), "error": pl.String, "provider": pl.String},
    )
    frame = pl.DataFrame(events, schema=EVENT_SCHEMA, orient="row")
    with transaction(con):
        con.execute(
            "UPDATE deliveries AS d SET status = o.status, attempts = o.tried, "
            "next_attempt_at = o.next_at, last_error = o.error, "
            "provider_id = coalesce(o.provider, d.provider_id), "
            "sent_at = CASE WHEN o.status = 'sent' THEN $now END, updated_at = $now "
            "FROM outcomes AS o WHERE d.action_id = o.action_id",
            {"now": now},
        ).fetchall()
        if frame.height:
            record_events(con, frame, now)
    return counted


def _preview_all(con: duckdb.DuckDBPyConnection, sender: Sender, rows: pl.DataFrame,
                 config: DeliveryConfig, now: datetime, report: DeliveryReport) -> None:
    """A dry run has no outside effect, so its claims and records go in batches."""
    batch = rows.select("action_id", "recipients")  # noqa: F841 (read by DuckDB)
    con.execute(
        f"UPDATE deliveries AS d SET status = 'sending', channel = $channel, updated_at = $now, "
        f"recipients = CASE WHEN len(b.recipients) > 0 THEN b.recipients END "
        f"FROM batch AS b WHERE d.action_id = b.action_id AND ({_DUE})",
        {"channel": sender.channel, "now": now},
    ).fetchall()
    sent: list[Sent] = []
    for row in rows.iter_rows(named=True):
        action = OutboundAction.from_row(row)
        attempts = row["attempts"]
        sent.append((action, attempts if isinstance(attempts, int) else 0, sender.channel,
                     sender.send(action, now)))
    report.outcomes.update(_record(con, sent, config, now))


def _attempt(con: duckdb.DuckDBPyConnection, sender: Sender, row: dict[str, object],
             config: DeliveryConfig, now: datetime, fault: Fault | None
             ) -> tuple[SendResult, str] | None:
    """Claim (`sending`, committed), send, record: (result, outcome as counted). None: the row
    was no longer due."""
    action = OutboundAction.from_row(row)
    claimed = con.execute(
        f"UPDATE deliveries AS d SET status = 'sending', channel = $channel, updated_at = $now, "
        f"recipients = CAST($recipients AS VARCHAR[]) WHERE d.action_id = $id AND ({_DUE})",
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
        result = (SendResult("unknown", error=error)
                  if sender.channel in NON_IDEMPOTENT_CHANNELS
                  else SendResult.failed(error, retryable=True))
    if fault is not None:
        fault("after_send", action)
    attempts = row["attempts"]
    (counted,) = _record(con, [(action, attempts if isinstance(attempts, int) else 0,
                                sender.channel, result)], config, now)
    return result, counted


def _apply_decisions(con: duckdb.DuckDBPyConnection, decisions: pl.DataFrame, channel: str,
                     now: datetime) -> None:
    held = decisions.filter(pl.col("decision") != SEND)  # noqa: F841 (read by DuckDB)
    con.execute(
        "UPDATE deliveries AS d SET status = h.decision, next_attempt_at = h.next_attempt_at, "
        "last_error = h.reason, channel = $channel, updated_at = $now, "
        "recipients = CASE WHEN len(h.recipients) > 0 THEN h.recipients END FROM held AS h "
        "WHERE d.action_id = h.action_id",
        {"channel": channel, "now": now},
    ).fetchall()


def _export_tables(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame, config: DeliveryConfig,
                   now: datetime, report: DeliveryReport) -> None:
    ids = rows["action_id"]
    exported = ids.to_frame()  # noqa: F841 (read by DuckDB)
    events = pl.DataFrame({"action_id": ids, "event_type": "sent", "occurred_at": now,
                           "detail": "exported", "source": "table"}).cast(EVENT_SCHEMA)  # type: ignore[arg-type]
    with transaction(con):
        export_actions(con, ids, now)
        con.execute(
            "UPDATE deliveries AS d SET status = 'sent', channel = 'table', "
            "attempts = attempts + 1, next_attempt_at = NULL, last_error = NULL, sent_at = $now, "
            "provider_id = CASE d.action_type WHEN 'task' THEN 'crm_tasks' "
            "ELSE 'crm_field_updates' END, updated_at = $now "
            "FROM exported AS e WHERE d.action_id = e.action_id",
            {"now": now},
        ).fetchall()
        record_events(con, events, now)
    report.outcomes["sent"] += ids.len()
    report.export_files = write_parquet(con, config.export_dir)


def _fail_now(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame, config: DeliveryConfig,
              now: datetime, report: DeliveryReport) -> None:
    """Due rows that cannot be sent at all (column `error` says why): failed, final, with a
    `failed` event."""
    failed: list[Sent] = []
    for row in rows.iter_rows(named=True):
        action, error = OutboundAction.from_row(row), str(row["error"])
        failed.append((action, int(row["attempts"] or 0), "delivery",
                       SendResult.failed(error, retryable=False)))
        report.errors.append(f"{action.action_id}: {error}")
    if failed:
        report.outcomes.update(_record(con, failed, config, now))


def _route_emails(con: duckdb.DuckDBPyConnection, due: pl.DataFrame, sender: Sender,
                  config: DeliveryConfig, now: datetime, time_zones: TimeZones | None,
                  report: DeliveryReport) -> pl.DataFrame:
    """Resolve the due emails' recipients and apply the safety rules; returns `due` without
    the emails that failed or are held, and with each email's `recipients` to send to."""
    emails = due.filter(pl.col("route") == "email")
    targets, unresolved = resolve_recipients(con, emails, now)
    _fail_now(con, emails.join(unresolved, on="action_id", how="inner", maintain_order="left"),
              config, now, report)
    emails = emails.join(unresolved, on="action_id", how="anti")
    decisions = email_decisions(con, emails, config, now, time_zones, targets)
    _apply_decisions(con, decisions, sender.channel, now)
    held = decisions.filter(pl.col("decision") != SEND)
    report.outcomes.update(held["decision"].to_list())
    gone = pl.concat([held["action_id"], unresolved["action_id"]])
    return due.filter(~pl.col("action_id").is_in(gone.implode())).drop("recipients").join(
        decisions.select("action_id", "recipients"), on="action_id", how="left",
        maintain_order="left",
    )


def deliver(con: duckdb.DuckDBPyConnection, senders: Mapping[str, Sender],
            config: DeliveryConfig, now: datetime, *, time_zones: TimeZones | None = None,
            fault: Fault | None = None) -> DeliveryReport:
    """Deliver every due action once. `senders`: "email" and "webhook" (see default_senders);
    with `config.dry_run` they are all replaced by a DryRunSender. `time_zones`: participant_id
    → IANA zone for quiet hours and the daily cap (default: config.default_time_zone)."""
    now = utc_naive(now)
    ensure_delivery_tables(con)
    report = DeliveryReport(now=now, dry_run=config.dry_run)
    if config.dry_run:
        preview = DryRunSender(config)
        senders = {"email": preview, "webhook": preview, "table": preview}
        report.preview_dir = config.dry_run_dir
    _sync_outbox(con, now)
    _recover(con, now, report)
    due = _due(con, now)
    kind = (pl.when(pl.col("action_type") == EMAIL).then(pl.lit("email"))
            .when(pl.col("action_type").is_in(list(WEBHOOK_TYPES))).then(pl.lit("webhook"))
            .when(pl.col("action_type").is_in(list(TABLE_TYPES))).then(pl.lit("table"))
            .otherwise(pl.lit("none")))
    due = due.with_columns(kind.alias("route"),
                           pl.lit(None, dtype=pl.List(pl.String)).alias("recipients"))
    _fail_now(con, due.filter(pl.col("route") == "none").with_columns(
        pl.format("no delivery channel for action type '{}'", pl.col("action_type"))
        .alias("error")), config, now, report)
    tables = due.filter(pl.col("route") == "table")
    if "table" not in senders and tables.height:
        _export_tables(con, tables, config, now, report)
        due = due.filter(pl.col("route") != "table")
    if "email" in senders and due.filter(pl.col("route") == "email").height:
        due = _route_emails(con, due, senders["email"], config, now, time_zones, report)
    down: set[str] = set()
    try:
        if config.dry_run and fault is None:
            _preview_all(con, senders["email"], due.filter(pl.col("route") != "none"), config,
                         now, report)
            due = due.clear()
        for row in due.filter(pl.col("route") != "none").iter_rows(named=True):
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
