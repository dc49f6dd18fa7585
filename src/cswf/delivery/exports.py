"""Tasks and field updates leave as tables shaped for a reverse-ETL sync into a CRM.

`crm_tasks` and `crm_field_updates` are append-only, keyed by (action_id, operation): exporting
the same action again changes nothing, and a compensation (a task cancelled, a field restored:
delivery/compensate.py) is a row of its own. The rows and the actions' `sent` status are
written in one transaction, so this channel is exactly once without a `sending` step.

Each table is also a Parquet file (`<export_dir>/<table>.parquet`), derived from the table:
`sync_parquet` rewrites a file (temp file + atomic rename) whenever its rows or its latest
`exported_at` differ from the table's. Delivery calls it at the start of every run and after
every export, so a crash between the commit and the file write is repaired by the next run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from cswf.store.private import private_file, private_folder

TABLE_OF = {"task": "crm_tasks", "field_update": "crm_field_updates"}  # action type → table
TABLES = tuple(TABLE_OF.values())

# Test hook: called after the export transaction commits, before the Parquet files are
# written (a test kills the process here to show the next run repairs the files).
after_commit: Callable[[], None] | None = None

_TASK_ROWS = """
SELECT o.action_id, o.workflow, o.step_name,
       coalesce(json_extract_string(v.spec_json, '$.object'), 'account') AS object_type,
       o.participant_id AS object_id, o.assignee AS owner, o.subject AS title,
       o.body AS description, o.category,
       json_extract_string(o.payload, '$.priority') AS priority,
       coalesce(from_json(json_extract(o.payload, '$.subtasks'), '["VARCHAR"]'), [])
           AS subtasks,
       o.due_at, CAST(o.due_at AS DATE) AS due_date, o.tick AS created_at, $now AS exported_at,
       'create' AS operation,
       coalesce(from_json(json_extract(o.payload, '$.references'),
                          '[{"title": "VARCHAR", "url": "VARCHAR"}]'), []) AS reference_links
FROM export_ids JOIN actions_outbox AS o USING (action_id)
LEFT JOIN workflow_versions AS v USING (workflow, version)
WHERE o.action_type = 'task'
"""

_UPDATE_ROWS = """
SELECT o.action_id, o.workflow, o.step_name,
       coalesce(json_extract_string(v.spec_json, '$.object'), 'account') AS object_type,
       o.participant_id AS object_id, json_extract_string(o.payload, '$.field') AS field,
       json_extract_string(o.payload, '$.value') AS value, o.tick AS requested_at,
       $now AS exported_at, 'set' AS operation
FROM export_ids JOIN actions_outbox AS o USING (action_id)
LEFT JOIN workflow_versions AS v USING (workflow, version)
WHERE o.action_type = 'field_update'
"""


def export_actions(con: duckdb.DuckDBPyConnection, action_ids: pl.Series, now: datetime) -> int:
    """Upsert these task / field-update actions into the CRM tables and mark them sent, in the
    caller's transaction; returns how many actions were exported."""
    export_ids = pl.DataFrame({"action_id": action_ids.cast(pl.String)})  # noqa: F841
    params = {"now": now}
    con.execute(f"INSERT INTO crm_tasks BY NAME ({_TASK_ROWS}) ON CONFLICT DO NOTHING",
                params).fetchall()
    con.execute(f"INSERT INTO crm_field_updates BY NAME ({_UPDATE_ROWS}) ON CONFLICT DO NOTHING",
                params).fetchall()
    return int(action_ids.len())


def committed() -> None:
    """The export transaction has committed (see `after_commit`)."""
    if after_commit is not None:
        after_commit()


def _marker(frame: pl.DataFrame | pl.LazyFrame) -> tuple[int, object]:
    """Rows and latest `exported_at`: the tables only grow, so these say whether two agree."""
    row = frame.lazy().select(pl.len(), pl.col("exported_at").max()).collect().row(0)
    return int(row[0]), row[1]


def sync_parquet(con: duckdb.DuckDBPyConnection, folder: Path) -> list[Path]:
    """Rewrite each CRM table's Parquet file that does not hold what the table holds (missing,
    older, or left behind by a crash); returns the files written. A table with no rows and no
    file gets none."""
    written = []
    for table in TABLES:
        path = folder / f"{table}.parquet"
        count, latest = con.execute(f"SELECT count(*), max(exported_at) FROM {table}").fetchall()[0]
        if not path.exists() and not count:
            continue
        if path.exists() and _marker(pl.scan_parquet(path)) == (count, latest):
            continue
        written.append(_write(con, table, path))
    return written


def write_parquet(con: duckdb.DuckDBPyConnection, folder: Path) -> list[Path]:
    """Each CRM table as one Parquet file, replaced atomically (a sync never reads half)."""
    return [_write(con, table, folder / f"{table}.parquet") for table in TABLES]


def _write(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> Path:
    private_folder(path.parent)  # customers' tasks: 0700, files 0600 (store/private.py)
    frame = con.sql(f"SELECT * FROM {table} ORDER BY action_id, exported_at, operation").pl()
    partial = path.with_name(path.name + ".partial")
    frame.write_parquet(partial)
    private_file(partial)
    os.replace(partial, path)
    return path
