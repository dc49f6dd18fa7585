"""Every table cswf writes after the landing files, defined here and only here.

The raw landing tables (`raw_accounts`, ...) are generated from the data contract
(`ingest/contract.py`); everything else is below, grouped by the stage that first writes it.
Columns are documented in docs/tables.md and docs/delivery.md. Each group is created with
`CREATE ... IF NOT EXISTS`, so calling its `ensure_*` function is cheap and idempotent.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import duckdb

HISTORY = "enrollment_history"

# Accepted values of the delivery tables' status and event columns.
STATUSES = ("pending", "sending", "sent", "previewed", "failed", "suppressed", "capped", "deferred",
            "unknown", "expired", "awaiting_approval", "rejected", "not_actioned")
EVENT_TYPES = ("sent", "delivered", "opened", "clicked", "replied", "bounced", "dropped",
               "complained", "unsubscribed", "completed", "failed")
SUPPRESSING_EVENTS = ("bounced", "complained", "unsubscribed")  # the address gets nothing more

# Which landing files were loaded or rejected (by content hash), so ingest is idempotent.
INGEST_BOOKKEEPING = (
    "CREATE TABLE IF NOT EXISTS ingested_files (source_file VARCHAR, object VARCHAR, "
    "sha256 VARCHAR, row_count BIGINT)",
    "CREATE TABLE IF NOT EXISTS ingest_rejections (source_file VARCHAR, object VARCHAR, "
    "sha256 VARCHAR, reason VARCHAR)",
    # Rows loaded with a value the contract flags (an unknown tier, an extra field that does
    # not convert): the file loads, each such row is noted here with the value as written.
    "CREATE TABLE IF NOT EXISTS ingest_row_flags (source_file VARCHAR, object VARCHAR, "
    "row_number BIGINT, column_name VARCHAR, value VARCHAR, reason VARCHAR)",
)

# Manual deploys, from the CLI or landing files; a tick honours or refuses each.
DEPLOY_REQUESTS = (
    "CREATE TABLE IF NOT EXISTS deploy_requests (request_id VARCHAR PRIMARY KEY, "
    "workflow VARCHAR NOT NULL, participant_id VARCHAR NOT NULL, requested_by VARCHAR, "
    "requested_at TIMESTAMP NOT NULL)",
)

# Manual exits (`cswf remove`), with their reason; the next tick exits each participant.
REMOVAL_REQUESTS = (
    "CREATE TABLE IF NOT EXISTS removal_requests (request_id VARCHAR PRIMARY KEY, "
    "workflow VARCHAR NOT NULL, participant_id VARCHAR NOT NULL, requested_by VARCHAR, "
    "reason VARCHAR NOT NULL, requested_at TIMESTAMP NOT NULL)",
)

# The engine's output: state as versions, what happened, what to do, one row per tick run.
# The first three hold the engine's frames (engine/frames.py); tests/test_store.py checks that
# they agree column for column.
ENGINE = (
    f"CREATE TABLE IF NOT EXISTS {HISTORY} ("
    "workflow VARCHAR, participant_id VARCHAR, enrollment_id VARCHAR, "
    "enrollment_number INTEGER, version VARCHAR, status VARCHAR, entered_at TIMESTAMP, "
    "step INTEGER, step_name VARCHAR, wait_until TIMESTAMP, objective_met_at TIMESTAMP, "
    "closed_at TIMESTAMP, close_reason VARCHAR, requalify_armed BOOLEAN, "
    "milestones_started INTEGER, milestones_done VARCHAR[], current_milestone VARCHAR, "
    "milestone_due_at TIMESTAMP, updated_at TIMESTAMP, cohort VARCHAR, "
    "valid_from TIMESTAMP NOT NULL, valid_to TIMESTAMP)",
    # Added after the first release (holdouts): an older warehouse gets it at the end; rows are
    # written by name, so the order does not matter.
    f"ALTER TABLE {HISTORY} ADD COLUMN IF NOT EXISTS cohort VARCHAR",
    "CREATE TABLE IF NOT EXISTS transitions ("
    "tick TIMESTAMP, workflow VARCHAR, version VARCHAR, participant_id VARCHAR, "
    "enrollment_id VARCHAR, transition VARCHAR, step INTEGER, step_name VARCHAR, "
    "reason VARCHAR, evidence VARCHAR)",
    "CREATE TABLE IF NOT EXISTS actions_outbox ("
    "action_id VARCHAR, tick TIMESTAMP, workflow VARCHAR, version VARCHAR, "
    "enrollment_id VARCHAR, participant_id VARCHAR, step INTEGER, step_name VARCHAR, "
    "action_index INTEGER, action_type VARCHAR, category VARCHAR, assignee VARCHAR, "
    "owner_group VARCHAR, recipient VARCHAR, due_at TIMESTAMP, subject VARCHAR, body VARCHAR, "
    "payload VARCHAR, status VARCHAR, on_error VARCHAR, error VARCHAR)",
    # Actions delivery had handled that a rewritten history no longer holds as they were: kept,
    # never deleted (store/history.py). fate: `withdrawn` (the new history lacks the action) or
    # `changed` (it emits the same action id with other content, which is not delivered again).
    "CREATE TABLE IF NOT EXISTS superseded_actions ("
    "action_id VARCHAR, tick TIMESTAMP, workflow VARCHAR, version VARCHAR, "
    "enrollment_id VARCHAR, participant_id VARCHAR, step INTEGER, step_name VARCHAR, "
    "action_index INTEGER, action_type VARCHAR, category VARCHAR, assignee VARCHAR, "
    "owner_group VARCHAR, recipient VARCHAR, due_at TIMESTAMP, subject VARCHAR, body VARCHAR, "
    "payload VARCHAR, status VARCHAR, on_error VARCHAR, error VARCHAR, "
    "superseded_at TIMESTAMP, reason VARCHAR, delivery_status VARCHAR, fate VARCHAR)",
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

# Ticks a guard held before anything left (docs/safety.md): one row per tripped guard, with
# the decision a person took. Delivery reads it (nothing is sent from a held tick), so both
# the engine's and delivery's tables include it.
HOLDS = (
    "CREATE TABLE IF NOT EXISTS tick_holds (as_of TIMESTAMP NOT NULL, workflow VARCHAR NOT NULL, "
    "guard VARCHAR NOT NULL, observed BIGINT, norm DOUBLE, threshold DOUBLE, minimum BIGINT, "
    "sample VARCHAR, status VARCHAR NOT NULL, decided_at TIMESTAMP, decided_by VARCHAR, "
    "reason VARCHAR)",
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
    # Dry runs once recorded `sent`: such rows of an older warehouse are previews, still due
    # for a real run (none is written any more, so this finds nothing after the first time).
    "UPDATE deliveries SET status = 'previewed' WHERE status = 'sent' AND channel = 'dry_run'",
    "CREATE TABLE IF NOT EXISTS action_events ("
    "action_id VARCHAR NOT NULL, event_type VARCHAR NOT NULL, occurred_at TIMESTAMP NOT NULL, "
    "detail VARCHAR, source VARCHAR, recorded_at TIMESTAMP, "
    "PRIMARY KEY (action_id, event_type, occurred_at))",
    "CREATE TABLE IF NOT EXISTS suppressions ("
    "address VARCHAR PRIMARY KEY, reason VARCHAR NOT NULL, since TIMESTAMP, action_id VARCHAR)",
    # The CRM exports are append-only: `operation` create | cancel (tasks), set | restore |
    # review (field updates); a compensation is a row of its own (delivery/compensate.py).
    "CREATE TABLE IF NOT EXISTS crm_tasks ("
    "action_id VARCHAR, workflow VARCHAR, step_name VARCHAR, "
    "object_type VARCHAR, object_id VARCHAR, owner VARCHAR, title VARCHAR, description VARCHAR, "
    "category VARCHAR, priority VARCHAR, subtasks VARCHAR[], due_at TIMESTAMP, due_date DATE, "
    "created_at TIMESTAMP, exported_at TIMESTAMP, operation VARCHAR NOT NULL DEFAULT 'create', "
    "reason VARCHAR, reference_links STRUCT(title VARCHAR, url VARCHAR)[], "
    "PRIMARY KEY (action_id, operation))",
    # Added later: the reference documents (title + url) of the workflow and milestone.
    "ALTER TABLE crm_tasks ADD COLUMN IF NOT EXISTS reference_links "
    "STRUCT(title VARCHAR, url VARCHAR)[]",
    "CREATE TABLE IF NOT EXISTS crm_field_updates ("
    "action_id VARCHAR, workflow VARCHAR, step_name VARCHAR, "
    "object_type VARCHAR, object_id VARCHAR, field VARCHAR, value VARCHAR, "
    "requested_at TIMESTAMP, exported_at TIMESTAMP, operation VARCHAR NOT NULL DEFAULT 'set', "
    "reason VARCHAR, PRIMARY KEY (action_id, operation))",
)


def create(con: duckdb.DuckDBPyConnection, statements: Iterable[str]) -> None:
    """Run the CREATE ... IF NOT EXISTS statements; on a read-only connection (a shard step's)
    nothing: the writer made the tables before (project/fanout.py `prepare_tick`)."""
    if con.execute("SELECT readonly FROM duckdb_databases() "
                   "WHERE database_name = current_database()").fetchall() == [(True,)]:
        return
    for statement in statements:
        con.execute(statement).fetchall()


def ensure_engine_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The engine's tables, and delivery's (empty until delivery runs): the reports read both."""
    create(con, (*ENGINE, *HOLDS))
    ensure_delivery_tables(con)


# Connections whose delivery runs found delivery's tables current (see delivery_tables_ready).
_CURRENT_ON: weakref.WeakSet[duckdb.DuckDBPyConnection] = weakref.WeakSet()


def ensure_delivery_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Delivery's tables (the engine's `actions_outbox` must exist to deliver from), and the
    holds it reads: one query finds them current, and only a new or older warehouse runs the
    statements."""
    if _delivery_tables_current(con):
        return
    _rekey_crm_tables(con)
    create(con, (*HOLDS, *DELIVERY))


def delivery_tables_ready(con: duckdb.DuckDBPyConnection) -> None:
    """`ensure_delivery_tables` once per connection, for a delivery run: nothing in cswf drops
    the tables, and the catalog query costs milliseconds (the demo delivers 700 times). Only
    for callers outside any transaction (a delivery run opens its own), so tables a rollback
    undoes are never remembered."""
    if con not in _CURRENT_ON:
        ensure_delivery_tables(con)
        _CURRENT_ON.add(con)


# The tables ensure_delivery_tables makes, and a column of each added after the first release.
_CURRENT = {"tick_holds": "reason", "deliveries": "recipients", "action_events": "recorded_at",
            "suppressions": "action_id", "crm_tasks": "reference_links",
            "crm_field_updates": "operation"}


def _delivery_tables_current(con: duckdb.DuckDBPyConnection) -> bool:
    found = con.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND (table_name, column_name) IN (SELECT unnest($t), unnest($c))",
        {"t": list(_CURRENT), "c": list(_CURRENT.values())},
    ).fetchall()[0][0]
    return found == len(_CURRENT)


def _rekey_crm_tables(con: duckdb.DuckDBPyConnection) -> None:
    """CRM tables of a warehouse made before compensations were rows of their own (keyed by
    action_id alone, no `operation`): rebuilt under the new key, every row kept."""
    for table, first in (("crm_tasks", "create"), ("crm_field_updates", "set")):
        columns = [name for (name,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $t",
            {"t": table}).fetchall()]
        if not columns or "operation" in columns:
            continue
        con.execute(f"ALTER TABLE {table} RENAME TO {table}_before_rekey").fetchall()
        create(con, [s for s in DELIVERY if f"EXISTS {table} (" in s])
        con.execute(f"INSERT INTO {table} BY NAME SELECT *, '{first}' AS operation "
                    f"FROM {table}_before_rekey").fetchall()
        con.execute(f"DROP TABLE {table}_before_rekey").fetchall()


def ensure_ingest_bookkeeping(con: duckdb.DuckDBPyConnection) -> None:
    create(con, INGEST_BOOKKEEPING)


def ensure_deploy_requests(con: duckdb.DuckDBPyConnection) -> None:
    create(con, DEPLOY_REQUESTS)


def ensure_removal_requests(con: duckdb.DuckDBPyConnection) -> None:
    create(con, REMOVAL_REQUESTS)

