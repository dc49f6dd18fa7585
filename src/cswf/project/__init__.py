"""The stages end to end: ingest → facts (SQL) → tick (Polars core) → store → reports.

Both thin layers call these functions: the `cswf` CLI and the Dagster assets. They load, call the
pure core, and store; nothing here decides workflow behaviour.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import duckdb
import polars as pl

from cswf.delivery import (
    DeliveryReport,
    default_senders,
    deliver,
    ingest_action_events,
)
from cswf.delivery.zones import participant_time_zones
from cswf.engine.assign import group_tasks
from cswf.engine.compile import compile_condition
from cswf.engine.evaluate import evaluate, verdict_column
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
from cswf.ingest.deploy_requests import ingest_deploy_requests
from cswf.ingest.deploys import load_deploys, request_deploys
from cswf.ingest.snapshots import IngestReport, ingest_landing
from cswf.settings import Settings
from cswf.specs.conditions import Condition, fields_used, leaves
from cswf.specs.groups import load_groups
from cswf.specs.lifecycle import RUNNING, refusal, structural_changes
from cswf.specs.loader import (
    LoadedWorkflow,
    SpecError,
    SpecErrors,
    SpecSet,
    check_leaf,
    load_specs,
)
from cswf.specs.workflow import DelayStep
from cswf.store.tables import ensure_engine_tables
from cswf.store.warehouse import (
    WriteOutcome,
    connect,
    load_events,
    load_facts,
    load_facts_range,
    load_state,
    load_workload,
    record_versions,
    running_versions,
    save_facts,
    write_tick,
)

__all__ = ["SpecErrors"]

log = logging.getLogger(__name__)

EVENTS_FOLDER = "action_events"  # landing sub-folder of action results (opened, completed, ...)

OnTick = Callable[[WriteOutcome, TickResult], None]
# A simulation's audience (demo/responses.py): after a tick, the action events up to the next
# tick, recorded; the next tick sees them.
Respond = Callable[[duckdb.DuckDBPyConnection, TickResult, datetime], pl.DataFrame]


class BlockedTick(RuntimeError):
    """The snapshots failed a blocking check: nothing is evaluated or emitted."""


def check_specs(settings: Settings, con: duckdb.DuckDBPyConnection | None = None) -> SpecSet:
    """Every spec against the fact fields of its participant type, the categories, the user
    groups and, when the warehouse can be read, the lifecycle rule for running workflows."""
    objects = {name: fact_schema(settings.facts_sql_path, model)
               for name, model in FACT_MODELS.items()}
    groups = load_groups(settings.groups_path)
    checked = load_specs(settings.specs_path, categories=settings.categories, objects=objects,
                         groups=list(groups) if settings.groups_path.exists() else None)
    if con is None and settings.database_path.exists():
        try:
            with connect(settings.database_path, read_only=True) as reader:
                return _with_lifecycle(checked, reader)
        except duckdb.Error:  # the warehouse is busy (a run holds it): the tick checks again
            return checked
    return _with_lifecycle(checked, con) if con is not None else checked


def _with_lifecycle(checked: SpecSet, con: duckdb.DuckDBPyConnection) -> SpecSet:
    exists = con.execute("SELECT count(*) FROM information_schema.tables "
                         "WHERE table_name = 'workflow_versions'").fetchall()[0][0]
    if not exists:
        return checked
    running = running_versions(con)
    errors = list(checked.errors)
    for workflow in checked.workflows:
        stored = running.get(workflow.name)
        if stored is None or stored[0] == workflow.version:
            continue
        _, state, before = stored
        if state in RUNNING and workflow.spec.state.value != "disabled":  # draft keeps them
            changes = structural_changes(before, workflow.structure())
            if changes:
                errors.append(SpecError(workflow.file.name, "steps",
                                        refusal(workflow.name, state, changes)))
    refused = {e.file for e in errors}
    return SpecSet([w for w in checked.workflows if w.file.name not in refused], errors)


def workflow_names(settings: Settings) -> list[str]:
    """The workflows a deploy request may name: every spec that parses (no fact or warehouse
    checks needed for that)."""
    return [w.name for w in load_specs(settings.specs_path).workflows]


def load_workflows(settings: Settings) -> list[LoadedWorkflow]:
    return check_specs(settings).require_valid()


def ingest(con: duckdb.DuckDBPyConnection, settings: Settings, now: datetime | None = None,
           known_workflows: Sequence[str] | None = None) -> IngestReport:
    """Snapshots, action results landed as files (they feed waits and branches) and, given the
    time they arrive (`now`, which a request without `requested_at` takes), deploy requests."""
    events = settings.landing_path / EVENTS_FOLDER
    if events.is_dir():
        ingest_action_events(con, events)
    report = ingest_landing(con, settings.landing_path)
    if now is not None:
        ingest_deploy_requests(con, settings.landing_path, now, known_workflows)
    return report


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
    lifecycle = _with_lifecycle(SpecSet(list(workflows), []), con)
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
    record_versions(con, list(workflows), ticks[0])
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


@dataclass(frozen=True)
class Preview:
    participants: int
    matching: int
    already_inside: int
    would_enter: int
    sample: pl.DataFrame


def preview(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    workflow: LoadedWorkflow,
    as_of: datetime,
    sample: int = 10,
) -> Preview:
    """Catalyst's live match count: who meets the entry conditions now, before enabling.

    Runs the real tick on the stored state with the workflow taken as enabled, and stores
    nothing, so "would enter" honours re-entry rules exactly as a live tick would.
    """
    ensure_engine_tables(con)
    before = settings.calendar.previous(as_of)
    wanted = [t for t in (before, as_of) if t is not None]
    facts = build_facts(con, wanted, settings.facts_sql_path, FACT_MODELS[workflow.spec.object])
    now = facts.filter(pl.col("as_of") == as_of)
    prev_facts = facts.filter(pl.col("as_of") == before) if before is not None else None
    enabled = replace(workflow, spec=workflow.spec.model_copy(update={"state": "enabled"}))
    verdicts = evaluate(now, prev_facts, [enabled])
    matching = verdicts.filter(pl.col(verdict_column("entry", workflow.name)))
    state = load_state(con, as_of).filter(pl.col("workflow") == workflow.name)
    inside = matching.join(state.filter(pl.col("status") == "active"), on="participant_id",
                           how="semi").height
    result = run_tick(state, now, prev_facts, None, [enabled], as_of,
                      default_category=settings.default_category)
    entered = result.transitions.filter(pl.col("transition") == "entered").height
    shown = ["participant_id", *(c for c in ("account_name", "csm_name") if c in now.columns)]
    used = sorted(fields_used(workflow.spec.entry)) if workflow.spec.entry else []
    rows = now.join(matching.select("participant_id"), on="participant_id", how="semi")
    return Preview(
        participants=now.height,
        matching=matching.height,
        already_inside=inside,
        would_enter=entered,
        sample=rows.select(*shown, *(c for c in used if c not in shown)).head(sample),
    )


def deliver_outbox(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: datetime
) -> DeliveryReport:
    """Results back in first (so a fresh unsubscribe wins), then send what is due, once."""
    config = settings.delivery_config()
    events = settings.landing_path / EVENTS_FOLDER
    if events.is_dir():
        ingest_action_events(con, events, now)
    return deliver(con, default_senders(config), config, now,
                   time_zones=participant_time_zones(con, now))


def deploy(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    workflow: LoadedWorkflow,
    requested_by: str,
    requested_at: datetime,
    participants: Sequence[str] = (),
    where: Condition | None = None,
) -> tuple[int, int]:
    """Request a manual deploy, to chosen participants or to every match of a filter (read as
    of the last tick at or before the request); the next tick honours or refuses each one.
    Returns (participants chosen, requests stored)."""
    chosen = list(participants)
    model = FACT_MODELS[workflow.spec.object]
    if where is not None:
        schema = fact_schema(settings.facts_sql_path, model)
        problems = [m for _, leaf in leaves(where) for _, m in check_leaf(leaf, schema)]
        if problems:
            raise ValueError("; ".join(problems))
        ticks = _last_tick_at(settings, requested_at)
        facts = build_facts(con, ticks, settings.facts_sql_path, model)
        hits = facts.filter(compile_condition(where, dict(facts.schema)))
        chosen += hits["participant_id"].to_list()
    stored = request_deploys(con, workflow.name, chosen, requested_by, requested_at)
    return len(set(chosen)), stored


def _last_tick_at(settings: Settings, at: datetime) -> list[datetime]:
    """The last tick at or before `at` (a filter is read as the engine last saw the facts)."""
    last = settings.calendar.latest(at)
    if last is None:
        raise ValueError(f"no tick at or before {at}")
    return [last]
