"""A small harness for tick scenarios: specs from YAML text, facts from readable rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from cswf.engine.assign import WORKLOAD_SCHEMA
from cswf.engine.frames import ENROLLMENT_SCHEMA, empty
from cswf.engine.tick import TickResult, run_tick
from cswf.specs.groups import UserGroup
from cswf.specs.loader import LoadedWorkflow, parse_spec

START = datetime(2026, 6, 1)

# Every asset of the Dagster definitions and its group: the pipeline's stages.
ASSET_GROUPS = {
    "landing_snapshots": "ingest",
    "account_facts": "facts",
    "enrollments": "engine",
    "transitions": "engine",
    "actions_outbox": "engine",
    "workflow_summary": "reports",
    "workflow_dashboard": "reports",
    "milestone_history": "reports",
    "team_performance": "reports",
    "objective_after_exit": "reports",
    "objective_outcomes": "reports",
    "objective_performance": "reports",
    "objective_lift": "reports",
    "objective_trend": "reports",
    "step_funnel": "reports",
    "workflow_daily": "reports",
    "execution_metrics": "reports",
    "deliveries": "delivery",
    "action_insights": "delivery",
}


def spec(text: str, folder: Path = Path(".")) -> LoadedWorkflow:
    name = next(line.split(":", 1)[1].strip() for line in text.splitlines()
                if line.startswith("name:"))
    return parse_spec(text, folder / f"{name}.yaml")


def facts(as_of: datetime, rows: Sequence[dict]) -> pl.DataFrame:
    frame = pl.DataFrame(list(rows))
    return frame.with_columns(pl.lit(as_of).alias("as_of")).select(
        "participant_id", "as_of", pl.exclude("participant_id", "as_of")
    )


@dataclass
class Run:
    """Feeds ticks one by one, keeping state and the previous facts like the pipeline does."""

    workflows: list[LoadedWorkflow]
    state: pl.DataFrame = field(default_factory=lambda: empty(ENROLLMENT_SCHEMA))
    prev: pl.DataFrame | None = None
    results: list[TickResult] = field(default_factory=list)
    events: list[tuple[str, str, datetime]] = field(default_factory=list)
    groups: dict[str, UserGroup] = field(default_factory=dict)

    def event(self, action_id: str, event_type: str, at: datetime) -> None:
        """An action result arriving (email opened, task completed, ...)."""
        self.events.append((action_id, event_type, at))

    def tick(self, as_of: datetime, rows: Sequence[dict]) -> TickResult:
        current = facts(as_of, rows)
        events = pl.DataFrame(self.events, schema=["action_id", "event_type", "occurred_at"],
                              orient="row")
        workload = (self.actions().filter(pl.col("owner_group").is_not_null())
                    .select(list(WORKLOAD_SCHEMA)) if self.results else None)
        result = run_tick(self.state, current, self.prev, events, self.workflows, as_of,
                          groups=self.groups, workload=workload)
        self.state, self.prev = result.state, current
        self.results.append(result)
        return result

    def days(self, rows_per_day: Sequence[Sequence[dict]], start: datetime = START,
             step: timedelta = timedelta(days=1)) -> list[TickResult]:
        return [self.tick(start + i * step, rows) for i, rows in enumerate(rows_per_day)]

    def transitions(self, participant: str | None = None) -> list[tuple[str, str, str]]:
        """(day, transition, step name) for every transition so far."""
        out = []
        for result in self.results:
            frame = result.transitions
            if participant is not None:
                frame = frame.filter(pl.col("participant_id") == participant)
            out += [(t.strftime("%m-%d"), kind, step)
                    for t, kind, step in frame.select("tick", "transition", "step_name").rows()]
        return out

    def entered_days(self, participant: str) -> list[str]:
        return [d for d, kind, _ in self.transitions(participant) if kind == "entered"]

    def actions(self) -> pl.DataFrame:
        return pl.concat([r.actions for r in self.results])

    def row(self, workflow: str, participant: str) -> dict:
        return self.state.filter(
            (pl.col("workflow") == workflow) & (pl.col("participant_id") == participant)
        ).row(0, named=True)
