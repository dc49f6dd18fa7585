"""Hand-written warehouses for the report tests (the `book` fixture: conftest.py).

A `Book` is an in-memory DuckDB with the engine's and delivery's tables (created as the engine
creates them), specs recorded from YAML as a tick records them, and a few enrollments, actions,
events and facts written as readable rows. `book.build()` runs the same report builder as the
pipeline; `book.rows(...)` reads a report back as tuples a person can check by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
from engine_harness import spec

from cswf.ingest.snapshots import ensure_tables as ensure_landing_tables
from cswf.reports.build import build_reports
from cswf.settings import PACKAGE_SQL
from cswf.store.tables import ensure_engine_tables
from cswf.store.warehouse import record_versions

ACCOUNT_FACTS = (
    "CREATE TABLE account_facts (as_of TIMESTAMP, participant_id VARCHAR, account_id VARCHAR, "
    "account_name VARCHAR, tier VARCHAR, csm_name VARCHAR, stage VARCHAR, health_score DOUBLE, "
    "seat_utilisation_pct DOUBLE)"
)


def at(text: str) -> datetime:
    """'06-07 23:00' (2026) or '2026-06-07 23:00' or '06-07' (midnight)."""
    text = text if text.startswith("20") else f"2026-{text}"
    return datetime.fromisoformat(text if " " in text else f"{text} 00:00")


@dataclass
class Book:
    con: duckdb.DuckDBPyConnection
    ticks: list[datetime] = field(default_factory=list)

    # -- specs and ticks --------------------------------------------------------------------

    def specs(self, *texts: str, first_seen: str = "05-31", default_category: str = "Nurture"
              ) -> None:
        """Record spec versions exactly as a tick does."""
        record_versions(self.con, [spec(t) for t in texts], at(first_seen), default_category)

    def version(self, workflow: str) -> str:
        return self.con.execute("SELECT version FROM workflow_versions WHERE workflow = ? "
                                "ORDER BY first_seen_tick DESC LIMIT 1", [workflow]).fetchone()[0]

    def tick_every(self, start: str, end: str, hours: int = 24) -> None:
        moment, last = at(start), at(end)
        while moment <= last:  # (scenarios may share ticks)
            if moment not in self.ticks:
                self.ticks.append(moment)
                self.con.execute("INSERT INTO tick_log (as_of) VALUES (?)", [moment])
            moment += timedelta(hours=hours)

    # -- engine rows ------------------------------------------------------------------------

    def enrollment(self, workflow: str, participant: str, entered: str, *, status: str = "active",
                   closed: str | None = None, reason: str | None = None, step: int = 0,
                   step_name: str = "", objective_met: str | None = None, n: int = 1,
                   milestones_done: Iterable[str] = (), current_milestone: str | None = None,
                   milestone_due: str | None = None, cohort: str | None = None) -> str:
        enrollment_id = f"{workflow}/{participant}/{n}"
        self.con.execute(
            "INSERT INTO enrollment_history (workflow, participant_id, enrollment_id, "
            "enrollment_number, version, status, entered_at, step, step_name, objective_met_at, "
            "closed_at, close_reason, milestones_done, current_milestone, milestone_due_at, "
            "cohort, valid_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [workflow, participant, enrollment_id, n, self.version(workflow), status,
             at(entered), step, step_name, objective_met and at(objective_met),
             closed and at(closed), reason, list(milestones_done), current_milestone,
             milestone_due and at(milestone_due), cohort, at(entered)])
        return enrollment_id

    def transition(self, enrollment_id: str, kind: str, tick: str, step: int | None = None,
                   step_name: str | None = None, evidence: dict | None = None) -> None:
        workflow, participant, _ = enrollment_id.split("/")
        self.con.execute(
            "INSERT INTO transitions (tick, workflow, participant_id, enrollment_id, transition, "
            "step, step_name, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [at(tick), workflow, participant, enrollment_id, kind, step, step_name,
             json.dumps(evidence) if evidence else None])

    def advanced(self, enrollment_id: str, tick: str, *steps: int) -> None:
        for step in steps:
            self.transition(enrollment_id, "advanced", tick, step)

    def action(self, action_id: str, tick: str, action_type: str, *, due: str | None = None,
               assignee: str | None = None, owner_group: str | None = None,
               category: str = "Onboarding") -> str:
        enrollment_id = action_id.rsplit("/", 1)[0]
        workflow, participant, _ = enrollment_id.split("/")
        self.con.execute(
            "INSERT INTO actions_outbox (action_id, tick, workflow, enrollment_id, "
            "participant_id, action_type, category, assignee, owner_group, due_at, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
            [action_id, at(tick), workflow, enrollment_id, participant, action_type, category,
             assignee, owner_group, due and at(due)])
        return action_id

    def milestone(self, enrollment_id: str, name: str, started: str, due: str,
                  done: str | None = None, assignee: str = "ana@example.com") -> None:
        """A milestone's task (created when it started) and, if done, the tick that saw it."""
        self.action(f"{enrollment_id}/milestone.{name}", started, "task", due=due,
                    assignee=assignee)
        if done:
            self.transition(enrollment_id, "milestone_done", done, evidence={"milestone": name})

    # -- delivery rows ----------------------------------------------------------------------

    def delivered(self, action_id: str, status: str, sent: str | None = None) -> None:
        self.con.execute(
            "INSERT INTO deliveries (action_id, action_type, status, sent_at) VALUES "
            "(?, (SELECT action_type FROM actions_outbox WHERE action_id = ?), ?, ?)",
            [action_id, action_id, status, sent and at(sent)])

    def event(self, action_id: str, event_type: str, occurred: str) -> None:
        self.con.execute("INSERT INTO action_events (action_id, event_type, occurred_at) "
                         "VALUES (?, ?, ?)", [action_id, event_type, at(occurred)])

    # -- facts and landing rows -------------------------------------------------------------

    def account(self, account_id: str, name: str, tier: str = "enterprise",
                csm: str = "Ana") -> None:
        """The account's facts at every tick so far (name, tier and CSM)."""
        for tick in self.ticks:
            self.con.execute(
                "INSERT INTO account_facts (as_of, participant_id, account_id, account_name, "
                "tier, csm_name) VALUES (?, ?, ?, ?, ?, ?)",
                [tick, account_id, account_id, name, tier, csm])

    def facts(self, account_id: str, start: str, end: str, **values: object) -> None:
        """Set fact fields of an account at every tick from start to end (inclusive)."""
        sets = ", ".join(f"{k} = ?" for k in values)
        self.con.execute(
            f"UPDATE account_facts SET {sets} WHERE participant_id = ? AND as_of BETWEEN ? AND ?",
            [*values.values(), account_id, at(start), at(end)])

    def contact(self, contact_id: str, account_id: str, day: str = "05-01") -> None:
        self.con.execute("INSERT INTO raw_contacts (snapshot_date, contact_id, account_id) "
                         "VALUES (?, ?, ?)", [at(day).date(), contact_id, account_id])

    def opportunity(self, opportunity_id: str, account_id: str, day: str = "05-01",
                    stage: str = "proposal") -> None:
        self.con.execute("INSERT INTO raw_opportunities (snapshot_date, opportunity_id, "
                         "account_id, stage) VALUES (?, ?, ?, ?)",
                         [at(day).date(), opportunity_id, account_id, stage])

    # -- reports ----------------------------------------------------------------------------

    def build(self) -> dict[str, int]:
        return build_reports(self.con, PACKAGE_SQL)

    def rows(self, sql: str, *params: object) -> list[tuple]:
        return self.con.execute(sql, list(params)).fetchall()


def new_book() -> Book:
    con = duckdb.connect()
    ensure_engine_tables(con)
    ensure_landing_tables(con)
    con.execute(ACCOUNT_FACTS)
    return Book(con)


REPORTS = Path(PACKAGE_SQL) / "reports"
