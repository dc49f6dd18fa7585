"""Every table cswf writes after the landing files, defined here and only here.

The raw landing tables (`raw_accounts`, ...) are generated from the data contract
(`ingest/contract.py`); everything else is below, grouped by the stage that first writes it.
Columns are documented in docs/tables.md and docs/delivery.md. Each group is created with
`CREATE ... IF NOT EXISTS`, so calling its `ensure_*` function is cheap and idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import duckdb
import polars as pl

from cswf.engine.frames import ACTION_SCHEMA, ENROLLMENT_SCHEMA, TRANSITION_SCHEMA

HISTORY = "enrollment_history"

# Accepted values of the delivery tables' status and event columns.
STATUSES = ("pending", "sending", "sent", "failed", "suppressed", "capped", "deferred", "unknown")
EVENT_TYPES = ("sent", "delivered", "opened", "clicked", "replied", "bounced", "dropped",
               "complained", "unsubscribed", "completed", "failed")
SUPPRESSING_EVENTS = ("bounced", "complained", "unsubscribed")  # the address gets nothing more

_DUCK_TYPES = {
    pl.String: "VARCHAR",
    pl.Int32: "INTEGER",
    pl.Int64: "BIGINT",
    pl.Boolean: "BOOLEAN",
    pl.Float64: "DOUBLE",
    pl.Datetime: "TIMESTAMP",
    pl.Date: "DATE",
}


def duck_type(dtype: pl.DataType) -> str:
    """The DuckDB type a Polars column is stored as."""
    if isinstance(dtype, pl.List):
        return f"{duck_type(dtype.inner)}[]"
    return _DUCK_TYPES[type(dtype)]


def _columns(schema: Mapping[str, pl.DataType]) -> str:
    return ", ".join(f"{name} {duck_type(dtype)}" for name, dtype in schema.items())


# Which landing files were loaded or rejected (by content hash), so ingest is idempotent.
INGEST_BOOKKEEPING = (
    "CREATE TABLE IF NOT EXISTS ingested_files (source_file VARCHAR, object VARCHAR, "
    "sha256 VARCHAR, row_count BIGINT)",
    "CREATE TABLE IF NOT EXISTS ingest_rejections (source_file VARCHAR, object VARCHAR, "
    "sha256 VARCHAR, reason VARCHAR)",
)

# Manual deploys, from the CLI or landing files; a tick honours or refuses each.
DEPLOY_REQUESTS = (
    "CREATE TABLE IF NOT EXISTS deploy_requests (request_id VARCHAR PRIMARY KEY, "
    "workflow VARCHAR NOT NULL, participant_id VARCHAR NOT NULL, requested_by VARCHAR, "
    "requested_at TIMESTAMP NOT NULL)",
)

# The engine's output: state as versions, what happened, what to do, one row per tick run.
ENGINE = (
    f"CREATE TABLE IF NOT EXISTS {HISTORY} ({_columns(ENROLLMENT_SCHEMA)}, "
    "valid_from TIMESTAMP NOT NULL, valid_to TIMESTAMP)",
    f"CREATE TABLE IF NOT EXISTS transitions ({_columns(TRANSITION_SCHEMA)})",
    f"CREATE TABLE IF NOT EXISTS actions_outbox ({_columns(ACTION_SCHEMA)})",
    "CREATE TABLE IF NOT EXISTS tick_log (as_of TIMESTAMP PRIMARY KEY, participants INTEGER, "
    "workflows INTEGER, entered INTEGER, exited INTEGER, completed INTEGER, "
    "actions INTEGER, changed_enrollments INTEGER)",
    "CREATE TABLE IF NOT EXISTS workflow_versions (workflow VARCHAR, version VARCHAR, "
    "state VARCHAR, category VARCHAR, priority INTEGER, auto_deploy BOOLEAN, "
    "has_objective BOOLEAN, spec_json VARCHAR, source_file VARCHAR, "
    "first_seen_tick TIMESTAMP, spec_text VARCHAR, structure VARCHAR[], "
    "PRIMARY KEY (workflow, version))",
    # Every enrollment ever, at its latest version: what reports and BI tools read.
    f"CREATE OR REPLACE VIEW enrollments AS SELECT * EXCLUDE (valid_from, valid_to) "
    f"FROM {HISTORY} QUALIFY row_number() OVER "
    f"(PARTITION BY enrollment_id ORDER BY valid_from DESC) = 1",
)

# What happened to each action (keyed by action_id, so nothing is sent twice), results coming
# back, addresses that receive nothing more, and the CRM export tables.
DELIVERY = (
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


def create(con: duckdb.DuckDBPyConnection, statements: Iterable[str]) -> None:
    for statement in statements:
        con.execute(statement).fetchall()


def ensure_engine_tables(con: duckdb.DuckDBPyConnection) -> None:
    create(con, ENGINE)


def ensure_delivery_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Delivery's tables (the engine's `actions_outbox` must exist to deliver from)."""
    create(con, DELIVERY)


def ensure_ingest_bookkeeping(con: duckdb.DuckDBPyConnection) -> None:
    create(con, INGEST_BOOKKEEPING)


def ensure_deploy_requests(con: duckdb.DuckDBPyConnection) -> None:
    create(con, DEPLOY_REQUESTS)
