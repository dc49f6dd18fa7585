"""Running ticks: facts for the run, then each tick in order through the pure engine, stored.

State and facts flow from one tick to the next in memory; field updates the workflows made are
facts at later ticks until a newer snapshot supersedes them. Facts are built and held a chunk of
days at a time (`CHUNK_DAYS`): a quarter's contact facts at once are 5M rows and gigabytes, a
week's are a few hundred megabytes at most, and the fact SQL costs no more per tick in chunks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import duckdb
import polars as pl

from cswf.calendar import TickCalendar
from cswf.engine.assign import group_tasks
from cswf.engine.bounds import RenderBudget
from cswf.engine.flow import TIME_ZONE
from cswf.engine.guard import (
    TRIPPED_SCHEMA,
    Tally,
    active_by_workflow,
    could_trip,
    tally_of,
    tripped,
)
from cswf.engine.shards import ACCOUNT, Buckets, run_sharded_tick
from cswf.engine.tick import TickResult, combine
from cswf.facts.models import FACT_MODELS, build_facts, fact_schema
from cswf.facts.overlay import (
    SNAPSHOT_DATE,
    apply_field_updates,
    field_updates_of,
    load_field_updates,
)
from cswf.ingest.checks import snapshot_problems, stale_snapshots
from cswf.ingest.deploys import load_deploys
from cswf.ingest.removals import load_removals
from cswf.project.guards import guard_limits, require_no_hold
from cswf.project.specs import with_lifecycle
from cswf.settings import Settings
from cswf.specs.groups import load_groups
from cswf.specs.loader import LoadedWorkflow, SpecSet
from cswf.specs.workflow import DelayStep
from cswf.store.holds import approved, launched, trailing_norms, write_holds
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

CHUNK_DAYS = 7  # facts are built and held for this many days of ticks at a time

# Told of each stored tick. Its result's `state` is the whole state in one process, but only
# the enrollments the tick changed (`changed_state`) when the tick ran in shards
# (project/fanout.py): read `changed_state`, actions and transitions, which are the same.
OnTick = Callable[[WriteOutcome, TickResult], None]
# A simulated audience (the demo's): after a tick, the action events up to the next tick,
# recorded; the next tick sees them. Production runs pass none.
Respond = Callable[[duckdb.DuckDBPyConnection, TickResult, datetime], pl.DataFrame]


class BlockedTick(RuntimeError):
    """The snapshots failed a blocking check: nothing is evaluated or emitted."""


def require_clean_snapshots(con: duckdb.DuckDBPyConnection, settings: Settings | None = None,
                            ticks: Sequence[datetime] = ()) -> None:
    """BlockedTick when the snapshots are unusable, incomplete or (at one of `ticks`) stale.
    Problems dated after the last of `ticks` do not block: those ticks cannot see them."""
    rules = settings.snapshots if settings is not None else None
    until = max(ticks).date() if ticks else None
    problems = snapshot_problems(con, rules, until) + stale_snapshots(con, ticks, rules)
    if problems:
        raise BlockedTick("snapshots failed their checks; no tick ran:\n- " + "\n- ".join(problems))


def tick_chunks(ticks: Sequence[datetime], days: int | None = None) -> list[list[datetime]]:
    """Consecutive ticks, `days` (default CHUNK_DAYS) calendar dates per chunk: the fact SQL
    works per date, so a chunk never splits a date (its work would be done twice)."""
    days = days or CHUNK_DAYS
    chunks: list[list[datetime]] = []
    dates: set[object] = set()
    for tick in ticks:
        if not chunks or (tick.date() not in dates and len(dates) == days):
            chunks.append([])
            dates = set()
        dates.add(tick.date())
        chunks[-1].append(tick)
    return chunks


@dataclass(frozen=True)
class StoredFacts:
    """What `store_facts` stored, without the facts themselves: rows and participants per tick
    (as_of, rows, participants) and the last tick's facts (a preview; they carry the schema)."""

    per_tick: pl.DataFrame
    latest: pl.DataFrame

    @property
    def rows(self) -> int:
        return int(self.per_tick["rows"].sum())


def store_facts(
    con: duckdb.DuckDBPyConnection, settings: Settings, ticks: Sequence[datetime]
) -> StoredFacts:
    """Facts for many ticks, stored by tick, a chunk of days at a time; only their counts and
    the last tick's facts are kept (a quarter's facts held at once are a gigabyte of RSS)."""
    counts, latest = [], None
    for chunk in tick_chunks(ticks):
        facts = build_facts(con, chunk, settings.facts_sql_path, calendar=settings.calendar)
        save_facts(con, facts)
        counts.append(facts.group_by("as_of").agg(
            pl.len().alias("rows"), pl.col("participant_id").n_unique().alias("participants")))
        latest = facts.filter(pl.col("as_of") == chunk[-1])
    if latest is None:
        latest = build_facts(con, [], settings.facts_sql_path)
    per_tick = pl.concat(counts) if counts else pl.DataFrame(
        schema={"as_of": pl.Datetime("us"), "rows": pl.UInt32, "participants": pl.UInt32})
    return StoredFacts(per_tick.sort("as_of"), latest)


def materialize_facts(
    con: duckdb.DuckDBPyConnection, settings: Settings, ticks: Sequence[datetime]
) -> pl.DataFrame:
    """Facts for many ticks, stored by tick; returns them all (built a chunk of days at a time:
    one SQL run over a quarter peaks at several times the size of its result)."""
    parts = []
    for chunk in tick_chunks(ticks):
        facts = build_facts(con, chunk, settings.facts_sql_path, calendar=settings.calendar)
        save_facts(con, facts)
        parts.append(facts)
    return pl.concat(parts) if parts else build_facts(con, [], settings.facts_sql_path)


@dataclass(frozen=True)
class RunSummary:
    ticks: int
    written: int
    unchanged: int
    rewritten: int
    actions: int
    transitions: int
    held: datetime | None = None  # the tick a guard held; the run stopped after it


def run_ticks(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    workflows: Sequence[LoadedWorkflow],
    ticks: Sequence[datetime],
    *,
    facts: pl.DataFrame | None = None,
    on_tick: OnTick | None = None,
    respond: Respond | None = None,
    rewrite_delivered: bool = False,
) -> RunSummary:
    """Run ticks in order; state and facts flow from one tick to the next in memory.

    A tick whose re-run differs from what is stored rewinds it and the later ticks; if those
    hold delivered actions it raises DeliveredHistory unless `rewrite_delivered` (then the
    delivered actions are kept as superseded: store/history.py).

    `facts` are the facts of these ticks if the caller has them; else they are read from the
    account_facts table, where the facts stage stored them. A tick a guard holds is stored,
    and the run stops after it (`RunSummary.held`); a run never starts past a held tick.
    """
    ensure_engine_tables(con)
    if not ticks:
        return RunSummary(0, 0, 0, 0, 0, 0)
    require_clean_snapshots(con, settings, ticks)
    require_no_hold(con)
    limits = guard_limits(settings, workflows)
    started = launched(con, ticks[0])
    held = None
    lifecycle = with_lifecycle(SpecSet(list(workflows), []), con)
    lifecycle.require_valid()
    calendar = settings.calendar
    before = calendar.previous(ticks[0])
    feeds = [_Feed.of(settings, participant, members)
             for participant, members in _by_participant(workflows).items()]
    groups = load_groups(settings.groups_path)
    state = load_state(con, ticks[0])
    events = load_events(con, ticks[-1])
    deploys = load_deploys(con, before, ticks[-1])
    removals = load_removals(con, before, ticks[-1])
    workload = load_workload(con, ticks[0]) if groups else None
    record_versions(con, list(workflows), ticks[0], settings.default_category)
    running = {w.name for w in workflows}
    kept = state.filter(~pl.col("workflow").is_in(list(running)))
    # Field updates the workflows made are facts until a newer snapshot supersedes them.
    updates = load_field_updates(con, ticks[0])
    reported: set[str] = set()
    buckets = Buckets()  # the shards' account hashes, once per account for the run
    outcomes: list[WriteOutcome] = []
    actions = transitions = 0
    chunks = {chunk[0]: chunk for chunk in tick_chunks(ticks)}
    for i, as_of in enumerate(ticks):
        if as_of in chunks:  # the next chunk's facts replace the last one's
            _load_chunk(con, settings, feeds, chunks[as_of], before if i == 0 else None, facts)
        window = pl.col("requested_at") <= as_of
        results = []
        bounds = settings.templates  # one render budget for the whole tick, every feed
        budget = RenderBudget(seconds=bounds.budget_seconds,
                              per_render_seconds=bounds.seconds_per_render,
                              max_chars=bounds.max_chars)
        for feed in feeds:
            seen, problems = apply_field_updates(feed.at(as_of), updates, as_of)
            _report_overlay_problems(problems, reported)
            result = run_sharded_tick(
                state.filter(pl.col("workflow").is_in(feed.names)), seen, feed.prev,
                events, feed.workflows, as_of, default_category=settings.default_category,
                deploys=deploys.filter(window), groups=groups, workload=workload,
                render_budget=budget, removals=removals.filter(window),
                shards=settings.shards, buckets=buckets,
            )
            if groups:
                workload = pl.concat([workload, group_tasks(result.actions)], rechunk=True)
            feed.prev = seen
            results.append(result)
        result = combine(results, as_of, kept)
        made = field_updates_of(result.actions)
        if not made.is_empty():
            updates = pl.concat([updates, made], rechunk=True)
        deploys = deploys.filter(~window)
        removals = removals.filter(~window)
        found = _guarded(con, settings, partial(active_by_workflow, state), result.as_of,
                         partial(tally_of, result), limits, started)
        outcome = write_tick(con, result, rewrite_delivered=rewrite_delivered,
                             on_rewrite=lambda rewrite: log.warning(rewrite.line()))
        # Held again unless a person approved this very result (a crash between the tick and
        # its holds must not let it through unheld).
        if not found.is_empty() and not (outcome.status == "unchanged" and approved(con, as_of)):
            write_holds(con, as_of, found)
            held = as_of
        started.update(result.transitions.filter(pl.col("transition") == "entered")["workflow"])
        outcomes.append(outcome)
        actions += result.actions.height
        transitions += result.transitions.height
        if on_tick is not None:
            on_tick(outcome, result)
        state = result.state
        if held is not None:
            break
        if respond is not None:
            answered = respond(con, result, answers_until(ticks, i, calendar))
            # one chunk: every tick filters the events, and a chunk per tick slows that down
            events = answered if events is None else pl.concat(
                [events, answered], how="vertical_relaxed", rechunk=True)
    for feed in feeds:
        feed.release()
    statuses = [o.status for o in outcomes]
    return RunSummary(
        ticks=len(ticks),
        written=statuses.count("written"),
        unchanged=statuses.count("unchanged"),
        rewritten=statuses.count("rewritten"),
        actions=actions,
        transitions=transitions,
        held=held,
    )


def _guarded(con: duckdb.DuckDBPyConnection, settings: Settings,
             active: Callable[[], pl.DataFrame], as_of: datetime,
             count: Callable[[], Tally], limits: pl.DataFrame, started: set[str]
             ) -> pl.DataFrame:
    """The guards this tick trips against the norms of the ticks before it; `active` gives
    each workflow's active participants before the tick, asked only if a guard could trip."""
    if limits.is_empty():
        return pl.DataFrame(schema=TRIPPED_SCHEMA)
    tally = count()
    if not could_trip(tally, limits):
        return pl.DataFrame(schema=TRIPPED_SCHEMA)
    norms = trailing_norms(con, as_of, settings.guards.history_ticks)
    return tripped(active(), tally, norms, limits, sorted(started))


def _load_chunk(con: duckdb.DuckDBPyConnection, settings: Settings, feeds: list[_Feed],
                chunk: list[datetime], before: datetime | None,
                facts: pl.DataFrame | None) -> None:
    """Every feed's facts for `chunk`; with `before` (the run's first chunk) also the facts of
    the tick before, with the field updates made by then."""
    for feed in feeds:
        feed.load(con, settings, chunk, before, facts if feed.participant == "account" else None)
    if before is not None:
        earlier = load_field_updates(con, before)
        for feed in feeds:
            if feed.prev is not None:
                feed.prev = apply_field_updates(feed.prev, earlier, before).facts


def _report_overlay_problems(problems: pl.DataFrame, reported: set[str]) -> None:
    """A field update whose value does not fit its fact is logged once (the fact keeps its
    snapshot value); the same update would be reported at every tick it is visible."""
    for action_id, message in problems.select("action_id", "problem").rows():
        if action_id not in reported:
            reported.add(action_id)
            log.warning(message)


@dataclass
class _Feed:
    """One participant type's workflows and their facts for the chunk of ticks being run.

    `prev` (the facts the previous tick saw) flows from chunk to chunk; `by_tick` holds one
    chunk's facts and is replaced by the next chunk's."""

    participant: str
    workflows: list[LoadedWorkflow]
    needed: list[str]  # the fields the workflows read at a tick
    previous: list[str]  # the fields they read of the previous tick
    by_tick: dict[datetime, pl.DataFrame]
    empty: pl.DataFrame | None
    prev: pl.DataFrame | None

    @property
    def names(self) -> list[str]:
        return [w.name for w in self.workflows]

    def at(self, as_of: datetime) -> pl.DataFrame:
        found = self.by_tick.get(as_of, self.empty)
        if found is None:
            raise LookupError(f"no facts loaded for {as_of}")
        return found

    @classmethod
    def of(cls, settings: Settings, participant: str, workflows: list[LoadedWorkflow]) -> _Feed:
        """The fields to read: only those the workflows use (plus what the overlay needs)."""
        needed = set().union(*(w.fact_fields() for w in workflows))
        model = FACT_MODELS[participant]
        if any(isinstance(n.step, DelayStep) for w in workflows for n in w.flow) and \
                TIME_ZONE in fact_schema(settings.facts_sql_path, model):
            needed.add(TIME_ZONE)  # day delays run on local time
        if settings.shards > 1 and participant != "account" and \
                ACCOUNT in fact_schema(settings.facts_sql_path, model):
            needed.add(ACCOUNT)  # a contact's or opportunity's shard is its account's
        previous = set().union(*(w.previous_fields() for w in workflows))
        return cls(participant, workflows, sorted(needed | {SNAPSHOT_DATE}),
                   sorted(previous | {SNAPSHOT_DATE}), {}, None, None)

    def load(self, con: duckdb.DuckDBPyConnection, settings: Settings,
             ticks: Sequence[datetime], before: datetime | None,
             given: pl.DataFrame | None) -> None:
        """The facts of `ticks`, and with `before` (a run's first chunk) those of the tick
        before. Account facts come from the stored account_facts (or `given`); contact and
        opportunity facts are built for the chunk's ticks in one query."""
        self.release()
        if self.participant == "account":
            if given is not None:
                frame = given.filter(pl.col("as_of").is_in(list(ticks)))
            else:
                frame = load_facts_range(con, ticks, self.needed)
            if before is not None:
                self.prev = load_facts(con, before, self.previous)
        else:
            wanted = [before, *ticks] if before is not None else list(ticks)
            built = build_facts(con, wanted, settings.facts_sql_path,
                                FACT_MODELS[self.participant], self.needed,
                                calendar=settings.calendar)
            frame = built.filter(pl.col("as_of").is_in(list(ticks)))
            if before is not None:
                self.prev = built.filter(pl.col("as_of") == before)
        self.by_tick = {key[0]: part
                        for key, part in frame.partition_by("as_of", as_dict=True).items()}
        self.empty = frame.clear()

    def release(self) -> None:
        """Drop the chunk's facts (the previous tick's stay in `prev`)."""
        self.by_tick = {}


def _by_participant(workflows: Sequence[LoadedWorkflow]) -> dict[str, list[LoadedWorkflow]]:
    out: dict[str, list[LoadedWorkflow]] = {}
    for workflow in workflows:
        out.setdefault(workflow.spec.object, []).append(workflow)
    return out


def answers_until(ticks: Sequence[datetime], i: int, calendar: TickCalendar) -> datetime:
    """Until when an audience answers what tick `i` of a run sent: the run's next tick, or
    the calendar's after the last."""
    return ticks[i + 1] if i + 1 < len(ticks) else calendar.next(ticks[i])


def ticks_in(settings: Settings, start: datetime, end: datetime) -> list[datetime]:
    return settings.calendar.between(start, end)
