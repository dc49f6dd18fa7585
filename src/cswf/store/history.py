"""Rewriting history without forgetting what was delivered.

A tick re-run with other results rewinds itself and every later tick (warehouse.write_tick).
Actions delivery has already handled ("delivered": sent, previewed, failed after an attempt,
held for good, ...) belong to the record, not to the history: a rewind that would drop some is
refused unless asked for (`rewrite_delivered`), and when asked for, they move to
`superseded_actions` instead of being deleted; their `deliveries` rows stay as they are.

Action ids are derived from enrollment, step and action (engine/emit.py), not from the tick's
content, so a re-run emits the same ids again: an identical re-run is a no-op (the tick is
"unchanged" and nothing moves), and an action the rewritten history emits again with the same
content is taken back out of `superseded_actions` (it is the action that was delivered). One
emitted again with other content stays there with fate `changed`: its id was delivered once and
is not delivered again. Undelivered actions of rewound ticks are simply replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

# A deliveries row delivery may still drop when its action goes (deliver._sync_outbox): never
# handed to a sender and not final. Every other row is part of the record.
DELIVERED = ("NOT (d.attempts = 0 AND d.status IN ('pending', 'deferred', 'failed', "
             "'awaiting_approval'))")
FLAG = "--rewrite-delivered"
# What makes two versions of an action the same action, beyond its id.
_CONTENT = ("action_type", "recipient", "assignee", "owner_group", "due_at", "subject", "body",
            "payload")


@dataclass(frozen=True)
class Rewrite:
    """What rewinding from `from_tick` changes: how many ticks go, and their delivered actions
    by action type."""

    from_tick: datetime
    ticks: int
    delivered: dict[str, int]

    @property
    def actions(self) -> int:
        return sum(self.delivered.values())

    def counts(self) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in sorted(self.delivered.items()))

    def line(self) -> str:
        """What `--rewrite-delivered` announces before it rewrites."""
        return (f"rewriting from tick {self.from_tick:%Y-%m-%d %H:%M}: {self.ticks} ticks, "
                f"{self.actions} delivered actions kept as superseded ({self.counts()})")


class DeliveredHistory(ValueError):
    """A re-run would rewrite ticks whose actions were delivered, and was not told it may."""

    def __init__(self, rewrite: Rewrite) -> None:
        self.rewrite = rewrite
        super().__init__(
            f"tick {rewrite.from_tick:%Y-%m-%d %H:%M}: re-running it would rewind "
            f"{rewrite.ticks} ticks holding {rewrite.actions} delivered actions "
            f"({rewrite.counts()}) — pass {FLAG} to rewrite them (delivered actions are kept "
            "as superseded, never deleted)")


def plan_rewrite(con: duckdb.DuckDBPyConnection, from_tick: datetime) -> Rewrite:
    t = {"t": from_tick}
    ticks = con.execute("SELECT count(*) FROM tick_log WHERE as_of >= $t", t).fetchall()[0][0]
    rows = con.execute(
        "SELECT o.action_type, count(*) FROM actions_outbox AS o JOIN deliveries AS d "
        f"USING (action_id) WHERE o.tick >= $t AND {DELIVERED} GROUP BY ALL", t,
    ).fetchall()
    return Rewrite(from_tick, int(ticks), {kind: int(n) for kind, n in rows})


def supersede_delivered(con: duckdb.DuckDBPyConnection, from_tick: datetime) -> None:
    """Move the delivered actions of ticks from `from_tick` on to `superseded_actions` (in the
    caller's transaction, before the caller deletes those ticks' outbox rows)."""
    con.execute(
        "INSERT INTO superseded_actions SELECT o.* REPLACE ('superseded' AS status), "
        "$t AS superseded_at, $reason AS reason, d.status AS delivery_status, "
        "'withdrawn' AS fate FROM actions_outbox AS o JOIN deliveries AS d USING (action_id) "
        f"WHERE o.tick >= $t AND {DELIVERED}",
        {"t": from_tick, "reason": f"rewound at tick {from_tick:%Y-%m-%d %H:%M} by re-run"},
    ).fetchall()


def reclaim(con: duckdb.DuckDBPyConnection, actions: str) -> None:
    """Actions of a newly written tick (`actions`: a relation DuckDB reads) that were
    superseded: the same content → the delivered action is back in the history; other
    content → it stays superseded, fate `changed`."""
    same = " AND ".join(f"s.{c} IS NOT DISTINCT FROM n.{c}" for c in _CONTENT)
    con.execute(f"DELETE FROM superseded_actions AS s USING {actions} AS n "
                f"WHERE s.action_id = n.action_id AND {same}").fetchall()
    con.execute(f"UPDATE superseded_actions AS s SET fate = 'changed' FROM {actions} AS n "
                "WHERE s.action_id = n.action_id").fetchall()
