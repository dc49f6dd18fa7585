"""Running ticks: facts for the run, then each tick in order through the pure engine, stored.

State and facts flow from one tick to the next in memory; field updates the workflows made are
facts at later ticks until a newer snapshot supersedes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from cswf.engine.assign import group_tasks
from cswf.engine.flow import TIME_ZONE
from cswf.engine.tick import TickResult, combine, run_tick
from cswf.facts.models import FACT_MODELS, build_facts, fact_schema
from cswf.facts.overlay import (
    SNAPSHOT_DATE,
    apply_field_updates,
    field_updates_of,
    load_field_updates,
)
from cswf.ingest.checks import snapshot_problems
from cswf.ingest.deploys import load_deploys
from cswf.project.specs import with_lifecycle
from cswf.settings import Settings
from cswf.specs.groups import load_groups
from cswf.specs.loader import LoadedWorkflow, SpecSet
from cswf.specs.workflow import DelayStep
from cswf.store.tables import ensure_engine_tables
from cswf.store.warehouse import (
    WriteOutcome,
    load_events,
    load_facts,
    load_facts_range,
    load_state,
    load_workload,
    record_versions,
    save_facts,
    write_tick,
)

log = logging.getLogger(__name__)

OnTick = Callable[[WriteOutcome, TickResult], None]
# A simulated audience (the demo's): after a tick, the action events up to the next tick,
# recorded; the next tick sees them. Production runs pass none.
Respond = Callable[[duckdb.DuckDBPyConnection, TickResult, datetime], pl.DataFrame]


class BlockedTick(RuntimeError):
    """The snapshots failed a blocking check: nothing is evaluated or emitted."""


def require_clean_snapshots(con: duckdb.DuckDBPyConnection) -> None:
    problems = snapshot_problems(con)
    if problems:
        raise BlockedTick("snapshots failed their checks; no tick ran:\n- " + "\n- ".join(problems))


def materialize_facts(
    con: duckdb.DuckDBPyConnection, settings: Settings, ticks: Sequence[datetime]
) -> pl.DataFrame:
    """Facts for many ticks in one SQL run, stored by tick."""
    facts = build_facts(con, list(ticks), settings.facts_sql_path)
    save_facts(con, facts)
    return facts


@dataclass(frozen=True)
class RunSummary:
    ticks: int
    written: int
    unchanged: int
    rewritten: int
    actions: int
    transitions: int


def run_ticks(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    workflows: Sequence[LoadedWorkflow],
    ticks: Sequence[datetime],
    *,
    facts: pl.DataFrame | None = None,
    on_tick: OnTick | None = None,
    respond: Respond | None = None,
) -> RunSummary:
    """Run ticks in order; state and facts flow from one tick to the next in memory.

    `facts` are the facts of these ticks if the caller has them; else they are read from the
    account_facts table, where the facts stage stored them.
    """
    ensure_engine_tables(con)
    if not ticks:
        return RunSummary(0, 0, 0, 0, 0, 0)
    require_clean_snapshots(con)
    lifecycle = with_lifecycle(SpecSet(list(workflows), []), con)
    lifecycle.require_valid()
    calendar = settings.calendar
    before = calendar.previous(ticks[0])
    feeds = [_Feed.load(con, settings, participant, members, ticks, before,
                        facts if participant == "account" else None)
             for participant, members in _by_participant(workflows).items()]
    groups = load_groups(settings.groups_path)
    state = load_state(con, ticks[0])
    events = load_events(con, ticks[-1])
    deploys = load_deploys(con, before, ticks[-1])
    workload = load_workload(con, ticks[0]) if groups else None
    record_versions(con, list(workflows), ticks[0], settings.default_category)
    running = {w.name for w in workflows}
    kept = state.filter(~pl.col("workflow").is_in(list(running)))
    # Field updates the workflows made are facts until a newer snapshot supersedes them.
    updates = load_field_updates(con, ticks[0])
    if before is not None:
        earlier = load_field_updates(con, before)
        for feed in feeds:
            if feed.prev is not None:
                feed.prev = apply_field_updates(feed.prev, earlier, before).facts
    reported: set[str] = set()
    outcomes: list[WriteOutcome] = []
    actions = transitions = 0
    for i, as_of in enumerate(ticks):
        window = pl.col("requested_at") <= as_of
        results = []
        for feed in feeds:
            seen, problems = apply_field_updates(feed.at(as_of), updates, as_of)
            _report_overlay_problems(problems, reported)
            result = run_tick(
                state.filter(pl.col("workflow").is_in(feed.names)), seen, feed.prev,
                events, feed.workflows, as_of, default_category=settings.default_category,
                deploys=deploys.filter(window), groups=groups, workload=workload,
            )
            if groups:
                workload = pl.concat([workload, group_tasks(result.actions)])
            feed.prev = seen
            results.append(result)
        result = combine(results, as_of, kept)
        made = field_updates_of(result.actions)
        if not made.is_empty():
            updates = pl.concat([updates, made])
        deploys = deploys.filter(~window)
        outcome = write_tick(con, result)
        outcomes.append(outcome)
        actions += result.actions.height
        transitions += result.transitions.height
        if on_tick is not None:
            on_tick(outcome, result)
        state = result.state
        if respond is not None:
            until = ticks[i + 1] if i + 1 < len(ticks) else calendar.next(as_of)
            answered = respond(con, result, until)
            events = answered if events is None else pl.concat([events, answered],
                                                                how="vertical_relaxed")
    statuses = [o.status for o in outcomes]
    return RunSummary(
        ticks=len(ticks),
        written=statuses.count("written"),
        unchanged=statuses.count("unchanged"),
        rewritten=statuses.count("rewritten"),
        actions=actions,
        transitions=transitions,
    )


def _report_overlay_problems(problems: pl.DataFrame, reported: set[str]) -> None:
    """A field update whose value does not fit its fact is logged once (the fact keeps its
    snapshot value); the same update would be reported at every tick it is visible."""
    for action_id, message in problems.select("action_id", "problem").rows():
        if action_id not in reported:
            reported.add(action_id)
            log.warning(message)


@dataclass
class _Feed:
    """One participant type's workflows and their facts for a run of ticks."""

    workflows: list[LoadedWorkflow]
    by_tick: dict[datetime, pl.DataFrame]
    empty: pl.DataFrame
    prev: pl.DataFrame | None

    @property
    def names(self) -> list[str]:
        return [w.name for w in self.workflows]

    def at(self, as_of: datetime) -> pl.DataFrame:
        return self.by_tick.get(as_of, self.empty)

    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection, settings: Settings, participant: str,
             workflows: list[LoadedWorkflow], ticks: Sequence[datetime],
             before: datetime | None, given: pl.DataFrame | None) -> _Feed:
        """Account facts come from the stored account_facts; contact and opportunity facts are
        built for the run's ticks in one query (with only the fields their workflows read)."""
        needed = set().union(*(w.fact_fields() for w in workflows))
        model = FACT_MODELS[participant]
        if any(isinstance(n.step, DelayStep) for w in workflows for n in w.flow) and \
                TIME_ZONE in fact_schema(settings.facts_sql_path, model):
            needed.add(TIME_ZONE)  # day delays run on local time
        needed = sorted(needed | {SNAPSHOT_DATE})  # the field-update overlay reads it
        previous = sorted(set().union(*(w.previous_fields() for w in workflows))
                          | {SNAPSHOT_DATE})
        if participant == "account":
            frame = given if given is not None else load_facts_range(con, ticks, needed)
            prev = load_facts(con, before, previous) if before is not None else None
        else:
            wanted = [before, *ticks] if before is not None else list(ticks)
            built = build_facts(con, wanted, settings.facts_sql_path, model, needed)
            frame = built.filter(pl.col("as_of").is_in(list(ticks)))
            prev = built.filter(pl.col("as_of") == before) if before is not None else None
        by_tick = {key[0]: part for key, part in frame.partition_by("as_of", as_dict=True).items()}
        return cls(workflows, by_tick, frame.clear(), prev)


def _by_participant(workflows: Sequence[LoadedWorkflow]) -> dict[str, list[LoadedWorkflow]]:
    out: dict[str, list[LoadedWorkflow]] = {}
    for workflow in workflows:
        out.setdefault(workflow.spec.object, []).append(workflow)
    return out


def ticks_in(settings: Settings, start: datetime, end: datetime) -> list[datetime]:
    return settings.calendar.between(start, end)
