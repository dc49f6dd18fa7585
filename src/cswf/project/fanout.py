"""A tick's shards run apart (`shards: N` > 1): a prepare step, one step per shard, and the
global step, each its own call, so each can be its own process (defs/fanout.py makes them
Dagster steps).

- `prepare_tick` (the writer, once): checks the snapshots, holds and lifecycle and records the
  spec versions, as `run_ticks` does before a tick; reads the tick's inputs (facts, previous
  facts, state, events, requests) once, cuts them by shard (engine/shards.py `split_tick`, the
  cut one process makes) and publishes each shard's part as its input slice.
- `shard_tick` (once per shard): reads only its input slice (never the working database, so
  a shard step needs no volume holding it), runs the engine on it and publishes its slice.
- `commit_tick` (the writer, once): reads every slice (MissingSlice names a missing one),
  assigns group tasks over all of them (`merge_shards`) and writes the tick in one transaction
  exactly as `run_ticks` does; then removes the tick's slices.

One tick at a time: a tick's prepare step reads the state the previous tick's global step
committed.
The result is `run_ticks`'s for the same ticks (tests/test_fanout.py).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Sequence
from datetime import datetime

import duckdb
import polars as pl

from cswf.calendar import key_of
from cswf.engine.assign import group_tasks
from cswf.engine.bounds import RenderBudget
from cswf.engine.frames import conform, empty
from cswf.engine.shards import (
    ACCOUNT,
    SHARD,
    Buckets,
    ShardParts,
    merge_shards,
    run_shard,
    split_own,
    split_tick,
)
from cswf.engine.tick import DEPLOY_SCHEMA, EVENT_SCHEMA, REMOVAL_SCHEMA, TickResult, combine
from cswf.facts.overlay import apply_field_updates, load_field_updates
from cswf.ingest.deploys import load_deploys
from cswf.ingest.removals import load_removals
from cswf.project.guards import guard_limits, require_no_hold
from cswf.project.specs import with_lifecycle
from cswf.project.ticks import (
    OnTick,
    Respond,
    _by_participant,
    _Feed,
    _guarded,
    _report_overlay_problems,
    require_clean_snapshots,
)
from cswf.settings import Settings
from cswf.specs.groups import load_groups
from cswf.specs.loader import LoadedWorkflow, SpecSet
from cswf.store.holds import approved, launched, write_holds
from cswf.store.pgslices import PostgresSlices
from cswf.store.s3slices import S3Slices
from cswf.store.slices import (
    INPUT,
    FolderSlices,
    Slice,
    SliceStore,
    SliceStoreError,
    shard_column,
)
from cswf.store.tables import ensure_deploy_requests, ensure_engine_tables, ensure_removal_requests
from cswf.store.warehouse import (
    WriteOutcome,
    account_buckets,
    facts_stored,
    load_events,
    load_state,
    load_workload,
    record_versions,
    write_tick,
)

log = logging.getLogger(__name__)

# Test hook: "<shard>:<seconds>" makes that shard sleep after its files are durable and before
# they are published (tests/test_fanout.py kills it there).
PAUSE_BEFORE_PUBLISH = "CSWF_TEST_PAUSE_BEFORE_PUBLISH"
FRAMES = ("state", "actions", "transitions")
INPUTS = ("state", "facts", "prev", "events", "deploys", "removals")  # a shard's, per feed


def prepare_tick(con: duckdb.DuckDBPyConnection, settings: Settings,
                 workflows: Sequence[LoadedWorkflow], as_of: datetime) -> None:
    """What runs once before a tick's shards: the checks `run_ticks` makes before a tick
    (snapshots, holds, lifecycle), the spec versions, the tables, and each shard's inputs
    published as its input slice."""
    ensure_engine_tables(con)
    ensure_deploy_requests(con)
    ensure_removal_requests(con)
    require_clean_snapshots(con, settings, [as_of])
    require_no_hold(con)
    with_lifecycle(SpecSet(list(workflows), []), con).require_valid()
    if any(w.spec.object == "account" for w in workflows) and not facts_stored(con, as_of):
        raise SliceStoreError(  # a tick without them would run with no account in it
            f"tick {key_of(as_of)}: no account facts are stored for this tick — materialize "
            "account_facts for it first (cswf run and cswf tick do), then the tick")
    store = slice_store(settings)
    store.ensure()
    record_versions(con, list(workflows), as_of, settings.default_category)
    shards = settings.shards
    for k, (frames, info) in enumerate(_inputs(con, settings, workflows, as_of, shards)):
        store.publish(as_of, k, shards, frames, info, kind=INPUT)


def _inputs(con: duckdb.DuckDBPyConnection, settings: Settings,
            workflows: Sequence[LoadedWorkflow], as_of: datetime, shards: int
            ) -> list[tuple[dict[str, pl.DataFrame], dict[str, object]]]:
    """Every shard's inputs of the tick (`<feed>-state`, `<feed>-facts`, ... per participant
    type), read once and cut as one process cuts them (`split_own` for accounts, `split_tick`
    for those who follow an account), the field updates already laid over the facts; and
    what each shard's manifest says (the feeds' workflows and versions, which `shard_tick`
    checks against its own specs, and this prepare step's id, which `commit_tick` checks)."""
    before = settings.calendar.previous(as_of)
    feeds = _by_participant(workflows)
    state = load_state(con, as_of, shards=shards)  # each row's shard by its own id
    events = load_events(con, as_of)
    deploys = load_deploys(con, before, as_of).filter(pl.col("requested_at") <= as_of)
    removals = load_removals(con, before, as_of).filter(pl.col("requested_at") <= as_of)
    updates = load_field_updates(con, as_of)
    earlier = load_field_updates(con, before) if before is not None else None
    prepared = uuid.uuid4().hex  # this prepare step's, handed on by each shard's slice
    out: list[tuple[dict[str, pl.DataFrame], dict[str, object]]] = [
        ({}, {"as_of": as_of.isoformat(), "prepared": prepared, "feeds": _versions(feeds)})
        for _ in range(shards)]
    buckets = Buckets()
    for i, (participant, members) in enumerate(feeds.items()):
        feed = _Feed.of(settings, participant, members)
        # Accounts are their own key unless their facts name an account: then DuckDB gives
        # each row its shard as it reads it, and the cut is a partition (`split_own`).
        own = participant == "account" and ACCOUNT not in {*feed.needed, *feed.previous}
        feed.load(con, settings, [as_of], before, None, shard_column(shards) if own else "")
        if feed.prev is not None and earlier is not None:
            feed.prev = _overlaid(feed.prev, earlier, before, report=False)  # said last tick
        seen = _overlaid(feed.at(as_of), updates, as_of, report=True)
        mine = state.filter(pl.col("workflow").is_in(feed.names))
        if own:
            parts = split_own(mine, seen, feed.prev, events, deploys, removals, shards, buckets)
        else:
            if not buckets.learned:  # the accounts contacts name, hashed by DuckDB
                buckets.learn(account_buckets(con, [as_of] if before is None else
                                              [before, as_of]))
            parts = split_tick(mine.drop(SHARD), seen, feed.prev, events, deploys, removals,
                               shards, buckets)
        for k, (frames, _) in enumerate(out):
            frames |= {f"{i}-{name}": frame for name, frame in _shard_inputs(parts, k).items()}
    return out


def _overlaid(facts: pl.DataFrame, updates: pl.DataFrame, as_of: datetime, *,
              report: bool) -> pl.DataFrame:
    """The facts with the field updates visible at `as_of` laid over them (with `report`, the
    updates that could not be are logged, once for all shards); a shard column read with
    them stays as it was."""
    shard = facts.get_column(SHARD) if SHARD in facts.columns else None
    seen, problems = apply_field_updates(facts.drop(SHARD, strict=False), updates, as_of)
    if report:
        _report_overlay_problems(problems, set())
    return seen if shard is None else seen.with_columns(shard)


def _versions(feeds: dict[str, list[LoadedWorkflow]]) -> list[list[list[str]]]:
    """Each feed's workflows as [name, version]: what a shard checks its own specs against
    (an edited spec keeps its name, not its version)."""
    return [[[w.name, w.version] for w in members] for members in feeds.values()]


def _one_prepare(slices: Sequence[Slice], as_of: datetime) -> None:
    """The shards' slices must come from the inputs of one prepare step: a prepare step run
    again while only some shards ran again would mix two readings of the state."""
    seen: dict[object, int] = {}
    for found in slices:
        seen.setdefault(found.info.get("prepared"), found.shard)
    if len(seen) > 1:
        first, other = sorted(seen.values())[:2]
        raise SliceStoreError(
            f"tick {key_of(as_of)}: shards {first} and {other} ran on the inputs of different "
            "prepare steps: run the whole tick again (its prepare step, its shards, then the "
            "global step)")


def _shard_inputs(parts: ShardParts, k: int) -> dict[str, pl.DataFrame]:
    """Shard k's rows of each input, empty (with its columns) where it has none; no `prev`
    when the tick has no previous facts (a run's first tick)."""
    blank = {**parts.empty, "events": parts.events.clear(), "deploys": empty(DEPLOY_SCHEMA),
             "removals": empty(REMOVAL_SCHEMA)}
    return {name: frame if (frame := parts.by[name].get(k)) is not None else blank[name]
            for name in INPUTS if blank[name] is not None}


def _parts_of(given: Slice, i: int, k: int) -> ShardParts:
    """Feed i's inputs of shard k, as `split_tick` cut them (an empty frame: no rows); its
    `events` are this shard's (only the global step's assignment reads all of them)."""
    frames = {name: given.frames.get(f"{i}-{name}") for name in INPUTS}
    by = {name: {k: frame} if frame is not None and frame.height else {}
          for name, frame in frames.items()}
    prev = frames["prev"]
    return ShardParts(by, frames["events"], {  # type: ignore[arg-type]
        "state": frames["state"], "facts": frames["facts"],
        "prev": None if prev is None else prev.clear()})


def shard_tick(settings: Settings, workflows: Sequence[LoadedWorkflow], as_of: datetime,
               shard: int, shards: int) -> str:
    """Shard `shard`'s part of the tick at `as_of`, from its input slice (published by
    `prepare_tick`), published as its slice (store/slices.py). The working database is not
    opened. Returns where the slice is."""
    store = slice_store(settings)
    [given] = store.read(as_of, shards, kind=INPUT, only=shard)
    feeds = _by_participant(workflows)
    if given.info.get("feeds") != _versions(feeds):
        raise SliceStoreError(
            f"tick {key_of(as_of)}: shard {shard} of {shards}: the workflows changed since "
            "the tick's prepare step read its inputs — run the whole tick again")
    bounds = settings.templates  # this shard's own budget (docs/scaling.md)
    budget = RenderBudget(seconds=bounds.budget_seconds,
                          per_render_seconds=bounds.seconds_per_render,
                          max_chars=bounds.max_chars)
    frames: dict[str, pl.DataFrame] = {}
    participants: dict[str, int] = {}
    for i, members in enumerate(feeds.values()):
        parts = _parts_of(given, i, shard)
        participants[str(i)] = given.frames[f"{i}-facts"].height
        result = run_shard(parts, shard, members, as_of,
                           default_category=settings.default_category, render_budget=budget)
        if result is not None:
            frames |= {f"{i}-{name}": getattr(result, name) for name in FRAMES}
    info = {"as_of": as_of.isoformat(), "participants": participants,
            "prepared": given.info.get("prepared")}
    return str(store.publish(as_of, shard, shards, frames, info,
                             before_publish=lambda: _test_pause(shard)))


def commit_tick(con: duckdb.DuckDBPyConnection, settings: Settings,
                workflows: Sequence[LoadedWorkflow], as_of: datetime, shards: int, *,
                on_tick: OnTick | None = None, respond: Respond | None = None,
                rewrite_delivered: bool = False) -> tuple[WriteOutcome, TickResult]:
    """The global step: every shard's slice of the tick (MissingSlice if one is absent, and
    nothing is written), group tasks assigned over all of them, the tick written in one
    transaction as `run_ticks` writes it; then the tick's slices are removed."""
    store = slice_store(settings)
    slices = store.read(as_of, shards)
    _one_prepare(slices, as_of)
    feeds = _by_participant(workflows)
    groups = load_groups(settings.groups_path)
    state = load_state(con, as_of)
    found_events = load_events(con, as_of)
    events = empty(EVENT_SCHEMA) if found_events is None else conform(found_events,
                                                                      EVENT_SCHEMA)
    workload = load_workload(con, as_of) if groups else None
    kept = state.filter(~pl.col("workflow").is_in([w.name for w in workflows]))
    results = []
    for i, members in enumerate(feeds.values()):
        parts = [TickResult(as_of, 0, 0, *(s.frames[f"{i}-{name}"] for name in FRAMES))
                 for s in slices if f"{i}-state" in s.frames]
        participants = sum(int(s.info["participants"][str(i)]) for s in slices)  # type: ignore[index]
        result = merge_shards(parts, as_of, len(members), groups, workload, events,
                              participants)
        if groups:
            workload = pl.concat([workload, group_tasks(result.actions)])
        results.append(result)
    result = combine(results, as_of, kept)
    found = _guarded(con, settings, state, result, guard_limits(settings, workflows),
                     launched(con, as_of))
    outcome = write_tick(con, result, rewrite_delivered=rewrite_delivered,
                         on_rewrite=lambda rewrite: log.warning(rewrite.line()))
    if not found.is_empty() and not (outcome.status == "unchanged" and approved(con, as_of)):
        write_holds(con, as_of, found)
    store.drop(as_of)
    if on_tick is not None:
        on_tick(outcome, result)
    if respond is not None:
        respond(con, result, settings.calendar.next(as_of))
    return outcome, result


def slice_store(settings: Settings) -> SliceStore:
    """Where the shards hand over their slices: `staging_url`'s S3 bucket or Postgres database
    if set, else the `staging_dir` folder."""
    if settings.staging_url and settings.staging_url.startswith("s3://"):
        return S3Slices(settings.staging_url)
    if settings.staging_url:
        return PostgresSlices(settings.staging_url)
    return FolderSlices(settings.staging_path)


def _test_pause(shard: int) -> None:
    wanted = os.environ.get(PAUSE_BEFORE_PUBLISH, "")
    if wanted and wanted.split(":")[0] == str(shard):
        time.sleep(float(wanted.split(":")[1]))
