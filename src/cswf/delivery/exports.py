"""Tasks and field updates leave as tables shaped for a reverse-ETL sync into a CRM.

`crm_tasks` and `crm_field_updates` hold one row per action, keyed by action_id: exporting the
same action again changes nothing. The rows and the actions' `sent` status are written in one
transaction, so this channel is exactly once without a `sending` step. After the commit each
table is also written whole as Parquet (`<export_dir>/<table>.parquet`, replaced atomically).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from cswf.store.private import private_file, private_folder

TABLE_OF = {"task": "crm_tasks", "field_update": "crm_field_updates"}  # action type → table
TABLES = tuple(TABLE_OF.values())

_TASK_ROWS = """
SELECT o.action_id, o.workflow, o.step_name,
       coalesce(json_extract_string(v.spec_json, '$.object'), 'account') AS object_type,
       o.participant_id AS object_id, o.assignee AS owner, o.subject AS title,
       o.body AS description, o.category,
       json_extract_string(o.payload, '$.priority') AS priority,
       coalesce(from_json(json_extract(o.payload, '$.subtasks'), '["VARCHAR"]'), [])
           AS subtasks,
       o.due_at, CAST(o.due_at AS DATE) AS due_date, o.tick AS created_at, $now AS exported_at
FROM export_ids JOIN actions_outbox AS o USING (action_id)
LEFT JOIN workflow_versions AS v USING (workflow, version)
WHERE o.action_type = 'task'
"""

_UPDATE_ROWS = """
SELECT o.action_id, o.workflow, o.step_name,
       coalesce(json_extract_string(v.spec_json, '$.object'), 'account') AS object_type,
       o.participant_id AS object_id, json_extract_string(o.payload, '$.field') AS field,
       json_extract_string(o.payload, '$.value') AS value, o.tick AS requested_at,
       $now AS exported_at
FROM export_ids JOIN actions_outbox AS o USING (action_id)
LEFT JOIN workflow_versions AS v USING (workflow, version)
WHERE o.action_type = 'field_update'
"""


def export_actions(con: duckdb.DuckDBPyConnection, action_ids: pl.Series, now: datetime) -> int:
    """Upsert these task / field-update actions into the CRM tables and mark them sent, in the
    caller's transaction; returns how many actions were exported."""
    export_ids = pl.DataFrame({"action_id": action_ids.cast(pl.String)})  # noqa: F841
    params = {"now": now}
    con.execute(f"INSERT INTO crm_tasks BY NAME {_TASK_ROWS} ON CONFLICT DO NOTHING",
                params).fetchall()
    con.execute(f"INSERT INTO crm_field_updates BY NAME {_UPDATE_ROWS} ON CONFLICT DO NOTHING",
                params).fetchall()
    return int(action_ids.len())


def write_parquet(con: duckdb.DuckDBPyConnection, folder: Path) -> list[Path]:
    """Each CRM table as one Parquet file, replaced atomically (a sync never reads half)."""
    private_folder(folder)  # customers' tasks: 0700, files 0600 (store/private.py)
    written = []
    for table in TABLES:
        frame = con.sql(f"SELECT * FROM {table} ORDER BY action_id").pl()
        path = folder / f"{table}.parquet"
        partial = path.with_name(path.name + ".partial")
        frame.write_parquet(partial)
        private_file(partial)
        os.replace(partial, path)
        written.append(path)
    return written
