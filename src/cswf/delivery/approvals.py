"""Emails that wait for their owner's approval (`require_approval: true` in the spec).

Delivery gives such an email an `awaiting_approval` row instead of a `pending` one; nothing
sends it from there. Each run then settles the waiting rows from the action events, as of the
run's `now`: the first `approved` or `rejected` event at or before the approval deadline (the
tick plus the payload's `approval_days`) decides — approved: `pending`, sent like any other
email; rejected: `rejected`, final, never sent. No answer by the deadline: `not_actioned`,
final, never sent, with a `not_actioned` event at the deadline (what waits and branches read).
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from cswf.delivery.report import DeliveryReport
from cswf.ingest.action_events import record_events
from cswf.store.transaction import transaction

AWAITING = "awaiting_approval"
# The outbox rows that wait for approval: the spec wrote their window into the payload.
NEEDS_APPROVAL = "(o.payload ->> '$.approval_days') IS NOT NULL"

# Per waiting row: its deadline and its first answer by then (a rejection wins a tie).
_DECISIONS = f"""
SELECT d.action_id, w.deadline, a.event_type AS answer, a.occurred_at AS answered_at,
       a.detail, w.days
FROM deliveries AS d
JOIN (SELECT action_id, CAST(payload ->> '$.approval_days' AS INTEGER) AS days,
             tick + to_days(CAST(payload ->> '$.approval_days' AS INTEGER)) AS deadline
      FROM actions_outbox) AS w USING (action_id)
LEFT JOIN (
    SELECT e.action_id, e.event_type, e.occurred_at, e.detail FROM action_events AS e
    JOIN actions_outbox AS o USING (action_id)
    WHERE e.event_type IN ('approved', 'rejected') AND e.occurred_at <= $now
      AND e.occurred_at <= o.tick + to_days(CAST(o.payload ->> '$.approval_days' AS INTEGER))
    QUALIFY row_number() OVER (PARTITION BY e.action_id
                               ORDER BY e.occurred_at, e.event_type = 'approved') = 1
) AS a USING (action_id)
WHERE d.status = '{AWAITING}' AND (a.event_type IS NOT NULL OR w.deadline <= $now)
"""


def settle_approvals(con: duckdb.DuckDBPyConnection, now: datetime,
                     report: DeliveryReport) -> None:
    """Move the waiting emails that got an answer, or whose window closed, on (one
    transaction); count each in the report as approved, rejected or not_actioned."""
    waiting = con.execute(
        f"SELECT count(*) FROM deliveries WHERE status = '{AWAITING}'").fetchall()[0][0]
    report.awaiting_approval = waiting
    if not waiting:  # most runs: nothing waits, so no transaction
        return
    with transaction(con):
        decided = con.sql(_DECISIONS, params={"now": now}).pl()
        report.awaiting_approval = waiting - decided.height
        if decided.is_empty():
            return
        con.execute(
            "UPDATE deliveries AS d SET updated_at = $now, "
            "status = CASE WHEN x.answer = 'approved' THEN 'pending' "
            "WHEN x.answer = 'rejected' THEN 'rejected' ELSE 'not_actioned' END, "
            "last_error = CASE WHEN x.answer = 'approved' THEN NULL "
            "WHEN x.answer = 'rejected' THEN 'not sent: rejected at ' || "
            "strftime(x.answered_at, '%Y-%m-%d %H:%M') || coalesce(' (' || x.detail || ')', '') "
            "ELSE 'not sent: no approval within ' || x.days || ' days (by ' || "
            "strftime(x.deadline, '%Y-%m-%d %H:%M') || ')' END "
            "FROM decided AS x WHERE d.action_id = x.action_id",
            {"now": now},
        ).fetchall()
        silent = con.sql(
            "SELECT action_id, 'not_actioned' AS event_type, deadline AS occurred_at, "
            "'no approval within ' || days || ' days' AS detail, 'delivery' AS source "
            "FROM decided WHERE answer IS NULL"
        ).pl()
        if silent.height:
            record_events(con, silent, now)
    report.outcomes.update(decided["answer"].fill_null("not_actioned").to_list())
