"""Compensating rows in the CRM exports: what was exported and no longer holds is undone by a
row of its own (the exports are append-only; delivery/exports.py).

- A task whose action was superseded by a rewritten history (fate `withdrawn`:
  store/history.py) gets a `cancel` row; so does an open task (no `completed` event) of an
  enrollment that exited after emitting it. Enrollments that complete are left alone: the
  tasks of a flow's last step are what it completes with.
- A field update whose action was superseded gets a `restore` row with the value the latest
  earlier exported update of that field set (not itself superseded), or, when there is none, a
  `review` row with no value: the value before cswf is unknown, a person checks it.

Each compensation is written once (keyed by action id and operation), as of the run's `now`.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

_WITHDRAWN = ("SELECT action_id FROM superseded_actions WHERE fate = 'withdrawn' "
              "AND superseded_at <= $now AND action_id NOT IN (SELECT action_id FROM "
              "actions_outbox)")

_CANCELLED_TASKS = f"""
WITH created AS (
    SELECT * FROM crm_tasks AS c WHERE c.operation = 'create' AND NOT EXISTS (
        SELECT 1 FROM crm_tasks AS x WHERE x.action_id = c.action_id AND x.operation = 'cancel')
),
superseded AS (
    SELECT c.action_id, s.reason FROM created AS c
    JOIN (SELECT action_id, arg_max(reason, superseded_at) AS reason FROM superseded_actions
          WHERE action_id IN ({_WITHDRAWN}) GROUP BY action_id) AS s USING (action_id)
),
exited AS (
    SELECT c.action_id, 'enrollment exited at ' || strftime(min(t.tick), '%Y-%m-%d %H:%M')
           || coalesce(': ' || arg_min(t.reason, t.tick), '') AS reason
    FROM created AS c JOIN actions_outbox AS o USING (action_id)
    JOIN transitions AS t ON t.enrollment_id = o.enrollment_id AND t.transition = 'exited'
         AND t.tick >= o.tick AND t.tick <= $now
    WHERE NOT EXISTS (SELECT 1 FROM action_events AS e WHERE e.action_id = c.action_id
                      AND e.event_type = 'completed' AND e.occurred_at <= $now)
    GROUP BY c.action_id
),
why AS (
    SELECT action_id, first(reason ORDER BY rank) AS reason FROM (
        SELECT *, 1 AS rank FROM superseded UNION ALL SELECT *, 2 AS rank FROM exited)
    GROUP BY action_id
)
SELECT c.* REPLACE ('cancel' AS operation, w.reason AS reason, $now AS exported_at)
FROM created AS c JOIN why AS w USING (action_id)
"""

_RESTORED_UPDATES = f"""
WITH undone AS (
    SELECT u.*, s.reason AS why FROM crm_field_updates AS u
    JOIN (SELECT action_id, arg_max(reason, superseded_at) AS reason FROM superseded_actions
          WHERE action_id IN ({_WITHDRAWN}) GROUP BY action_id) AS s USING (action_id)
    WHERE u.operation = 'set' AND NOT EXISTS (
        SELECT 1 FROM crm_field_updates AS x WHERE x.action_id = u.action_id
        AND x.operation IN ('restore', 'review'))
),
previous AS (
    SELECT d.action_id, arg_max(p.value, (p.requested_at, p.action_id)) AS value,
           count(p.action_id) AS known
    FROM undone AS d LEFT JOIN crm_field_updates AS p
         ON p.operation = 'set' AND p.object_type = d.object_type
         AND p.object_id = d.object_id AND p.field = d.field
         AND (p.requested_at, p.action_id) < (d.requested_at, d.action_id)
         AND p.action_id NOT IN ({_WITHDRAWN})
    GROUP BY d.action_id
)
SELECT d.* EXCLUDE (why) REPLACE (
    CASE WHEN p.known > 0 THEN 'restore' ELSE 'review' END AS operation,
    CASE WHEN p.known > 0 THEN p.value END AS value,
    CASE WHEN p.known > 0 THEN d.why || ': restored to the value set before'
         ELSE d.why || ': the value before ' || coalesce(d.value, 'null')
              || ' is unknown, check it' END AS reason,
    $now AS exported_at)
FROM undone AS d JOIN previous AS p USING (action_id)
"""


def compensate(con: duckdb.DuckDBPyConnection, now: datetime) -> int:
    """Write the compensating rows due at `now` (in the caller's transaction); returns how
    many were written."""
    params = {"now": now}
    written = 0
    for table, rows in (("crm_tasks", _CANCELLED_TASKS), ("crm_field_updates", _RESTORED_UPDATES)):
        written += con.execute(f"INSERT INTO {table} BY NAME ({rows}) ON CONFLICT DO NOTHING",
                               params).fetchall()[0][0]
    return written
