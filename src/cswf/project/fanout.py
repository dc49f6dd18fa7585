"""A tick's shards run apart (`shards: N` > 1): a prepare step, one step per shard, and the
global step, each its own call, so each can be its own process (defs/fanout.py makes them
Dagster steps).

- `prepare_tick` (the writer, once): checks the snapshots, holds and lifecycle and records the
  spec versions, as `run_ticks` does before a tick; makes the tables the shards read.
- `shard_tick` (read-only, once per shard): reads only its participants' account facts (the
  bucket SQL of store/slices.py), the previous state, events and requests, cuts them to its
  shard (engine/shards.py `split_tick`), runs the engine on them and publishes its slice.
- `commit_tick` (the writer, once): reads every slice (MissingSlice names a missing one),
  assigns group tasks over all of them (`merge_shards`) and writes the tick in one transaction
  exactly as `run_ticks` does; then removes the tick's slices.

One tick at a time: a tick's shards read the state the previous tick's global step committed.
The result is `run_ticks`'s for the same ticks (tests/test_fanout.py).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from datetime import datetime

import duckdb
import polars as pl

from cswf.engine.assign import group_tasks
from cswf.engine.bounds import RenderBudget
from cswf.engine.frames import conform, empty
from cswf.engine.shards import Buckets, merge_shards, run_shard, split_tick
from cswf.engine.tick import EVENT_SCHEMA, TickResult, combine
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
from cswf.store.slices import FolderSlices, SliceStore, shard_sql
from cswf.store.tables import ensure_deploy_requests, ensure_engine_tables, ensure_removal_requests
from cswf.store.warehouse import (
    WriteOutcome,
    connect,
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


def prepare_tick(con: duckdb.DuckDBPyConnection, settings: Settings,
                 workflows: Sequence[LoadedWorkflow], as_of: datetime) -> None:
    """What runs once before a tick's shards: the checks `run_ticks` makes before a tick
    (snapshots, holds, lifecycle), the spec versions, and the tables the shards read."""
    ensure_engine_tables(con)
    ensure_deploy_requests(con)
    ensure_removal_requests(con)
    require_clean_snapshots(con, settings, [as_of])
    require_no_hold(con)
    with_lifecycle(SpecSet(list(workflows), []), con).require_valid()
    slice_store(settings).ensure()
    record_versions(con, list(workflows), as_of, settings.default_category)


def shard_tick(settings: Settings, workflows: Sequence[LoadedWorkflow], as_of: datetime,
               shard: int, shards: int, wait: float = 0.0) -> str:
    """Shard `shard`'s part of the tick at `as_of`, published as its slice (store/slices.py);
    the working database is opened read-only. Returns where the slice is."""
    con = connect(settings.database_path, read_only=True, wait=wait)
    try:
        frames, info = _shard_part(con, settings, workflows, as_of, shard, shards)
    finally:
        con.close()
    return str(slice_store(settings).publish(as_of, shard, shards, frames, info,
                                             before_publish=lambda: _test_pause(shard)))


def _shard_part(con: duckdb.DuckDBPyConnection, settings: Settings,
                workflows: Sequence[LoadedWorkflow], as_of: datetime, shard: int,
                shards: int) -> tuple[dict[str, pl.DataFrame], dict[str, object]]:
    """The shard's frames (`<feed>-state`, ... per participant type with anyone in it) and
    its facts' row count per participant type."""
    before = settings.calendar.previous(as_of)
    mine = shard_sql(shards, shard)
    feeds = _by_participant(workflows)
    # An account's rows are its own id's shard: only this shard's are read. Contacts and
    # opportunities follow their account, which only their facts name: read whole, then cut.
    others = [w.name for p, members in feeds.items() if p != "account" for w in members]
    state = load_state(con, as_of, f"list_contains({_sql_list(others)}, workflow) OR {mine}")
    events = load_events(con, as_of)
    deploys = load_deploys(con, before, as_of).filter(pl.col("requested_at") <= as_of)
    removals = load_removals(con, before, as_of).filter(pl.col("requested_at") <= as_of)
    updates = load_field_updates(con, as_of)
    earlier = load_field_updates(con, before) if before is not None else None
    bounds = settings.templates  # this shard's own budget (docs/scaling.md)
    budget = RenderBudget(seconds=bounds.budget_seconds,
                          per_render_seconds=bounds.seconds_per_render,
                          max_chars=bounds.max_chars)
    frames: dict[str, pl.DataFrame] = {}
    participants: dict[str, int] = {}
    buckets = Buckets()
    for i, (participant, members) in enumerate(feeds.items()):
        feed = _Feed.of(settings, participant, members)
        # account facts: only this shard's rows are read; the others' are built and cut
        feed.load(con, settings, [as_of], before, None, mine if participant == "account"
                  else "TRUE")
        if feed.prev is not None and earlier is not None:
            feed.prev = apply_field_updates(feed.prev, earlier, before).facts
        seen, problems = apply_field_updates(feed.at(as_of), updates, as_of)
        _report_overlay_problems(problems, set())
        parts = split_tick(state.filter(pl.col("workflow").is_in(feed.names)), seen, feed.prev,
                           events, deploys, removals, shards, buckets)
        facts = parts.by["facts"].get(shard)
        participants[str(i)] = 0 if facts is None else facts.height
        result = run_shard(parts, shard, feed.workflows, as_of,
                           default_category=settings.default_category, render_budget=budget)
        if result is not None:
            frames |= {f"{i}-{name}": getattr(result, name) for name in FRAMES}
    return frames, {"as_of": as_of.isoformat(), "participants": participants}


def commit_tick(con: duckdb.DuckDBPyConnection, settings: Settings,
                workflows: Sequence[LoadedWorkflow], as_of: datetime, shards: int, *,
                on_tick: OnTick | None = None, respond: Respond | None = None,
                rewrite_delivered: bool = False) -> tuple[WriteOutcome, TickResult]:
    """The global step: every shard's slice of the tick (MissingSlice if one is absent, and
    nothing is written), group tasks assigned over all of them, the tick written in one
    transaction as `run_ticks` writes it; then the tick's slices are removed."""
    store = slice_store(settings)
    slices = store.read(as_of, shards)
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


def _sql_list(names: Sequence[str]) -> str:
    """Names as a DuckDB list literal (workflow names are checked identifiers)."""
    return "[" + ", ".join("'" + name.replace("'", "''") + "'" for name in names) + "]::VARCHAR[]"



def _test_pause(shard: int) -> None:
    wanted = os.environ.get(PAUSE_BEFORE_PUBLISH, "")
    if wanted and wanted.split(":")[0] == str(shard):
        time.sleep(float(wanted.split(":")[1]))
