"""Delivery's tables, created from here only (documented column by column in docs/delivery.md).

`actions_outbox` (written by ticks) says what to do; these tables say what happened. They are
keyed by `action_id`, so a re-run or a rewound and replayed tick never sends an action twice.
"""

from __future__ import annotations

import duckdb

STATUSES = ("pending", "sending", "sent", "failed", "suppressed", "capped", "deferred", "unknown")
EVENT_TYPES = ("sent", "delivered", "opened", "clicked", "replied", "bounced", "dropped",
               "complained", "unsubscribed", "completed", "failed")
# Events after which an address receives nothing more.
SUPPRESSING_EVENTS = ("bounced", "complained", "unsubscribed")
CHANNELS = ("smtp", "webhook", "dry_run", "table")

DDL = (
    "CREATE TABLE IF NOT EXISTS deliveries ("
    "action_id VARCHAR PRIMARY KEY, action_type VARCHAR NOT NULL, channel VARCHAR, "
    "status VARCHAR NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TIMESTAMP, "
    "last_error VARCHAR, provider_id VARCHAR, sent_at TIMESTAMP, created_at TIMESTAMP, "
    "updated_at TIMESTAMP, recipients VARCHAR[])",
    # Added after the first release: a warehouse made before gets it (null in old rows).
    "ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS recipients VARCHAR[]",
    "CREATE TABLE IF NOT EXISTS action_events ("
    "action_id VARCHAR NOT NULL, event_type VARCHAR NOT NULL, occurred_at TIMESTAMP NOT NULL, "
    "detail VARCHAR, source VARCHAR, recorded_at TIMESTAMP, "
    "PRIMARY KEY (action_id, event_type, occurred_at))",
    "CREATE TABLE IF NOT EXISTS suppressions ("
    "address VARCHAR PRIMARY KEY, reason VARCHAR NOT NULL, since TIMESTAMP, action_id VARCHAR)",
    "CREATE TABLE IF NOT EXISTS crm_tasks ("
    "action_id VARCHAR PRIMARY KEY, workflow VARCHAR, step_name VARCHAR, "
    "object_type VARCHAR, object_id VARCHAR, owner VARCHAR, title VARCHAR, description VARCHAR, "
    "category VARCHAR, priority VARCHAR, subtasks VARCHAR[], due_at TIMESTAMP, due_date DATE, "
    "created_at TIMESTAMP, exported_at TIMESTAMP)",
    "CREATE TABLE IF NOT EXISTS crm_field_updates ("
    "action_id VARCHAR PRIMARY KEY, workflow VARCHAR, step_name VARCHAR, "
    "object_type VARCHAR, object_id VARCHAR, field VARCHAR, value VARCHAR, "
    "requested_at TIMESTAMP, exported_at TIMESTAMP)",
)


def ensure_delivery_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the delivery tables if missing (the engine's `actions_outbox` must exist)."""
    for statement in DDL:
        con.execute(statement).fetchall()
