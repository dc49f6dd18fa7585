"""The stages end to end: ingest → facts (SQL) → tick (Polars core) → store → reports.

Both thin layers call these functions: the `cswf` CLI and the Dagster assets. They load, call the
pure core, and store; nothing here decides workflow behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import duckdb
import polars as pl

from cswf_pipelines.config import Settings
from cswf_pipelines.delivery import (
    DeliveryReport,
    default_senders,
    deliver,
    ingest_action_events,
)
from cswf_pipelines.engine.compile import compile_condition
from cswf_pipelines.engine.evaluate import evaluate, verdict_column
from cswf_pipelines.engine.tick import TickResult, run_tick
from cswf_pipelines.facts.build import build_facts, fact_schema
from cswf_pipelines.facts.checks import snapshot_problems
from cswf_pipelines.facts.ingest import IngestReport, ingest_landing
from cswf_pipelines.specs.conditions import Condition, fields_used, leaves
from cswf_pipelines.specs.loader import (
    LoadedWorkflow,
    SpecErrors,
    SpecSet,
    check_leaf,
    load_specs,
)
from cswf_pipelines.store.deploys import load_deploys, request_deploys
from cswf_pipelines.store.warehouse import (
    WriteOutcome,
    ensure_schema,
    load_events,
    load_facts,
    load_facts_range,
    load_state,
    record_versions,
    save_facts,
    write_tick,
)
from cswf_pipelines.ticks import previous_tick, tick_partitions, ticks_between

__all__ = ["SpecErrors"]

EVENTS_FOLDER = "action_events"  # landing sub-folder of action results (opened, completed, ...)

OnTick = Callable[[WriteOutcome, TickResult], None]


class BlockedTick(RuntimeError):
    """The snapshots failed a blocking check: nothing is evaluated or emitted."""


def check_specs(settings: Settings) -> SpecSet:
    schema = fact_schema(settings.facts_sql_path)
    return load_specs(settings.specs_path, schema, settings.categories)


def load_workflows(settings: Settings) -> list[LoadedWorkflow]:
    return check_specs(settings).require_valid()


def ingest(con: duckdb.DuckDBPyConnection, settings: Settings) -> IngestReport:
    """Snapshots, and action results landed as files (they feed waits and branches)."""
    events = settings.landing_path / EVENTS_FOLDER
    if events.is_dir():
        ingest_action_events(con, events)
    return ingest_landing(con, settings.landing_path)


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
) -> RunSummary:
    """Run ticks in order; state and facts flow from one tick to the next in memory.

    `facts` are the facts of these ticks if the caller has them; else they are read from the
    account_facts table, where the facts stage stored them.
    """
    ensure_schema(con)
    if not ticks:
        return RunSummary(0, 0, 0, 0, 0, 0)
    require_clean_snapshots(con)
    partitions = tick_partitions(settings.tick_cron, settings.tick_start)
    needed = set().union(*(w.fact_fields() for w in workflows))
    previous = set().union(*(w.previous_fields() for w in workflows))
    all_facts = facts if facts is not None else load_facts_range(con, ticks, needed)
    facts_by_tick = {
        key[0]: frame for key, frame in all_facts.partition_by("as_of", as_dict=True).items()
    }
    before = previous_tick(partitions, ticks[0])
    prev_facts = load_facts(con, before, previous) if before is not None else None
    state = load_state(con, ticks[0])
    events = load_events(con, ticks[-1])
    deploys = load_deploys(con, before, ticks[-1])
    empty_facts = all_facts.clear()
    record_versions(con, list(workflows), ticks[0])
    outcomes: list[WriteOutcome] = []
    actions = transitions = 0
    for as_of in ticks:
        tick_facts = facts_by_tick.get(as_of, empty_facts)
        window = pl.col("requested_at") <= as_of
        result = run_tick(state, tick_facts, prev_facts, events, workflows, as_of,
                          default_category=settings.default_category,
                          deploys=deploys.filter(window))
        deploys = deploys.filter(~window)
        outcome = write_tick(con, result)
        outcomes.append(outcome)
        actions += result.actions.height
        transitions += result.transitions.height
        if on_tick is not None:
            on_tick(outcome, result)
        state, prev_facts = result.state, tick_facts
    statuses = [o.status for o in outcomes]
    return RunSummary(
        ticks=len(ticks),
        written=statuses.count("written"),
        unchanged=statuses.count("unchanged"),
        rewritten=statuses.count("rewritten"),
        actions=actions,
        transitions=transitions,
    )


def ticks_in(settings: Settings, start: datetime, end: datetime) -> list[datetime]:
    return ticks_between(tick_partitions(settings.tick_cron, settings.tick_start), start, end)


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
    ensure_schema(con)
    before = previous_tick(tick_partitions(settings.tick_cron, settings.tick_start), as_of)
    wanted = [t for t in (before, as_of) if t is not None]
    facts = build_facts(con, wanted, settings.facts_sql_path)
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
    return deliver(con, default_senders(config), config, now)


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
    if where is not None:
        schema = fact_schema(settings.facts_sql_path)
        problems = [m for _, leaf in leaves(where) for _, m in check_leaf(leaf, schema)]
        if problems:
            raise ValueError("; ".join(problems))
        ticks = _last_tick_at(settings, requested_at)
        facts = build_facts(con, ticks, settings.facts_sql_path)
        hits = facts.filter(compile_condition(where, dict(facts.schema)))
        chosen += hits["participant_id"].to_list()
    stored = request_deploys(con, workflow.name, chosen, requested_by, requested_at)
    return len(set(chosen)), stored


def _last_tick_at(settings: Settings, at: datetime) -> list[datetime]:
    """The last tick at or before `at` (a filter is read as the engine last saw the facts)."""
    partitions = tick_partitions(settings.tick_cron, settings.tick_start)
    last = ticks_between(partitions, at - timedelta(days=1), at)
    if not last:
        raise ValueError(f"no tick at or before {at}")
    return last[-1:]
