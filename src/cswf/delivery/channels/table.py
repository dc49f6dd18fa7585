"""table: tasks and field updates written into the CRM export tables (delivery/exports.py) for
a reverse-ETL sync. No sender: the rows and their `sent` status go in one transaction, keyed by
action id, so the channel is exactly once and idempotent without a `sending` step."""

from __future__ import annotations

import polars as pl

from cswf.delivery.channel import Channel, DeliveryRun
from cswf.delivery.channels import register
from cswf.delivery.exports import TABLE_OF, committed, export_actions, sync_parquet
from cswf.delivery.outcomes import fail_now
from cswf.ingest.action_events import EVENT_SCHEMA, record_events
from cswf.store.transaction import transaction


@register
class Table(Channel):
    name = "table"

    def deliver_without_sender(self, run: DeliveryRun, rows: pl.DataFrame) -> bool:
        known = pl.col("action_type").is_in(list(TABLE_OF))
        fail_now(run.con, rows.filter(~known).with_columns(
            pl.format("no CRM export table for action type '{}'", pl.col("action_type"))
            .alias("error")), run.config, run.now, run.report)
        rows = rows.filter(known)
        if rows.is_empty():
            return True
        con, now = run.con, run.now
        ids = rows["action_id"]
        exported = rows.select(  # noqa: F841 (read by DuckDB)
            "action_id", pl.col("action_type").replace_strict(TABLE_OF).alias("export_table"))
        events = pl.DataFrame({"action_id": ids, "event_type": "sent", "occurred_at": now,
                               "detail": "exported", "source": self.name}
                              ).cast(EVENT_SCHEMA)  # type: ignore[arg-type]
        with transaction(con):
            export_actions(con, ids, now)
            con.execute(
                "UPDATE deliveries AS d SET status = 'sent', channel = $channel, "
                "attempts = attempts + 1, next_attempt_at = NULL, last_error = NULL, "
                "sent_at = $now, provider_id = e.export_table, updated_at = $now "
                "FROM exported AS e WHERE d.action_id = e.action_id",
                {"now": now, "channel": self.name},
            ).fetchall()
            record_events(con, events, now)
        run.report.outcomes["sent"] += ids.len()
        committed()
        run.report.export_files += sync_parquet(con, run.config.export_dir)
        return True
