"""Record what came of sends: the deliveries row (status, attempts, backoff) and the events.

Shared by the delivery loop and the channels' own steps (an email whose recipients cannot be
resolved fails before any sender sees it), so every outcome is stored the same way.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import polars as pl

from cswf.delivery.config import DeliveryConfig
from cswf.delivery.model import OutboundAction, SendResult
from cswf.delivery.report import DeliveryReport
from cswf.ingest.action_events import EVENT_SCHEMA, record_events
from cswf.store.transaction import transaction

DRY_RUN = "dry_run"  # the channel whose sends are previews
Sent = tuple[OutboundAction, int, str, SendResult]  # action, attempts before, channel, result


def record_outcomes(con: duckdb.DuckDBPyConnection, sent: list[Sent], config: DeliveryConfig,
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
        if result.outcome == "sent":  # a dry run's "sent" consumes nothing: previewed
            status = count = "previewed" if channel == DRY_RUN else "sent"
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
        rows.append((action.action_id, status, tried, next_at, result.error or result.note,
                     result.provider_id))
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
            "sent_at = CASE WHEN o.status IN ('sent', 'previewed') THEN $now END, "
            "updated_at = $now "
            "FROM outcomes AS o WHERE d.action_id = o.action_id",
            {"now": now},
        ).fetchall()
        if frame.height:
            record_events(con, frame, now)
    return counted


def fail_now(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame, config: DeliveryConfig,
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
        report.outcomes.update(record_outcomes(con, failed, config, now))
