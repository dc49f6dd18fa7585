"""The queries behind the asset checks on facts, the outbox and the reports: each returns a
`Finding` (how many offending keys, up to five examples), so a check only reports it.

`ticks` narrows a query to the ticks a run computed; None reads the whole table (a run without
ticks, e.g. the delivery job, checks everything it could deliver).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb

from cswf.ingest.checks import MAX_EXAMPLES, Finding, existing_tables

# Counts in workflow_summary that cannot be negative.
SUMMARY_COUNTS = ("deployed", "active", "completed", "exited", "participants", "objective_met")


def _in_ticks(column: str, ticks: Sequence[datetime] | None) -> tuple[str, list[object]]:
    """A WHERE clause keeping the given ticks (all when None), and its parameter."""
    if ticks is None:
        return "true", []
    return f"list_contains(?::TIMESTAMP[], {column})", [list(ticks)]


def _finding(rows: list[tuple], describe: str) -> Finding:
    """Rows whose last column is the total count and the rest fill `describe`."""
    return Finding(rows[0][-1] if rows else 0, [describe.format(*row) for row in rows])


def duplicate_facts(
    con: duckdb.DuckDBPyConnection, ticks: Sequence[datetime] | None
) -> Finding:
    """(as_of, participant_id) pairs with more than one row in account_facts."""
    if "account_facts" not in existing_tables(con):
        return Finding(0)
    where, params = _in_ticks("as_of", ticks)
    rows = con.execute(
        f"""
        SELECT strftime(as_of, '%Y-%m-%d %H:%M'), participant_id, count(*), count(*) OVER ()
        FROM account_facts WHERE {where}
        GROUP BY as_of, participant_id HAVING count(*) > 1
        ORDER BY as_of, participant_id LIMIT {MAX_EXAMPLES}
        """,
        params,
    ).fetchall()
    return _finding(rows, "tick {0}: {1} x{2}")


def duplicate_action_ids(
    con: duckdb.DuckDBPyConnection, ticks: Sequence[datetime] | None
) -> Finding:
    """Action ids emitted at these ticks that the outbox holds more than once (at any tick):
    delivery keys on action_id, so a duplicate would be sent once and recorded twice."""
    if "actions_outbox" not in existing_tables(con):
        return Finding(0)
    where, params = _in_ticks("tick", ticks)
    rows = con.execute(
        f"""
        SELECT action_id, count(*), count(*) OVER ()
        FROM actions_outbox
        WHERE action_id IN (SELECT action_id FROM actions_outbox WHERE {where})
        GROUP BY action_id HAVING count(*) > 1
        ORDER BY action_id LIMIT {MAX_EXAMPLES}
        """,
        params,
    ).fetchall()
    return _finding(rows, "{0} x{1}")


def multiple_active_enrollments(
    con: duckdb.DuckDBPyConnection, ticks: Sequence[datetime] | None
) -> Finding:
    """(workflow, participant) pairs with more than one active enrollment: after each of these
    ticks (the state each tick left), or now (the enrollments view) when `ticks` is None."""
    if "enrollment_history" not in existing_tables(con):
        return Finding(0)
    if ticks is None:
        sql = """
            SELECT 'now', workflow, participant_id, count(*), count(*) OVER ()
            FROM enrollments WHERE status = 'active'
            GROUP BY workflow, participant_id HAVING count(*) > 1
            ORDER BY workflow, participant_id
        """
        params: list[object] = []
    else:
        sql = """
            SELECT strftime(t.as_of, '%Y-%m-%d %H:%M'), h.workflow, h.participant_id, count(*),
                   count(*) OVER ()
            FROM (SELECT unnest(?::TIMESTAMP[]) AS as_of) AS t
            JOIN enrollment_history AS h
              ON h.valid_from <= t.as_of AND (h.valid_to IS NULL OR h.valid_to > t.as_of)
            WHERE h.status = 'active'
            GROUP BY t.as_of, h.workflow, h.participant_id HAVING count(*) > 1
            ORDER BY t.as_of, h.workflow, h.participant_id
        """
        params = [list(ticks)]
    rows = con.execute(f"{sql} LIMIT {MAX_EXAMPLES}", params).fetchall()
    return _finding(rows, "{0}: {1} / {2} x{3}")


def bad_summary_counts(con: duckdb.DuckDBPyConnection) -> Finding:
    """workflow_summary rows with a negative count, an objective rate outside [0, 1], or
    active + completed + exited differing from deployed (every enrollment has one status)."""
    negative = " OR ".join(f"{c} < 0" for c in SUMMARY_COUNTS)
    rows = con.execute(
        f"""
        SELECT workflow, {", ".join(SUMMARY_COUNTS)}, objective_met_rate, count(*) OVER ()
        FROM workflow_summary
        WHERE {negative} OR objective_met_rate NOT BETWEEN 0 AND 1
           OR active + completed + exited <> deployed
        ORDER BY workflow LIMIT {MAX_EXAMPLES}
        """
    ).fetchall()
    names = ", ".join(f"{c} {{{i + 1}}}" for i, c in enumerate(SUMMARY_COUNTS))
    return _finding(rows, f"{{0}}: {names}, objective_met_rate {{{len(SUMMARY_COUNTS) + 1}}}")


def workflows_missing_from_summary(
    con: duckdb.DuckDBPyConnection, workflows: Sequence[str]
) -> Finding:
    """Workflows with a spec but no workflow_summary row (they have not run a tick since)."""
    present = {name for (name,) in con.execute("SELECT workflow FROM workflow_summary").fetchall()}
    missing = sorted(set(workflows) - present)
    return Finding(len(missing), missing[:MAX_EXAMPLES])
