"""A tick's shards run apart (`shards: N` > 1): a prepare step, one step per shard, and the
global step, each its own call, so each can be its own process (defs/fanout.py makes them
Dagster steps).

- `prepare_tick` (the writer, once): checks the snapshots, holds and lifecycle and records the
  spec versions, as `run_ticks` does before a tick; has DuckDB cut the tick's inputs (facts,
  previous facts, state, events, requests, field updates) by shard into Parquet files
  (store/cut.py, the cut engine/shards.py `split_tick` makes in one process), never holding
  the book in Python, and publishes each shard's files as its input slice.
- `shard_tick` (once per shard): reads only its input slice (never the working database, so
  a shard step needs no volume holding it), lays the field updates over its facts, runs the
  engine on it and publishes its slice.
- `commit_tick` (the writer, once): finds every slice (MissingSlice names a missing one),
  assigns group tasks over all of them and writes the tick in one transaction exactly as
  `run_ticks` does; then removes the tick's slices. A slice holds what its shard's tick did
  (changed enrollments, actions, transitions), not its state, and DuckDB streams those rows
  from the slices' Parquet files into the tables: the global step holds neither the book nor
  the tick (the guards count a shard at a time; their counts of the state come from DuckDB).

One tick at a time: a tick's prepare step reads the state the previous tick's global step
committed.
The tables written are `run_ticks`'s for the same ticks (tests/test_fanout.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from cswf.calendar import key_of
from cswf.engine.assign import WORKLOAD_SCHEMA, assign_tasks, group_tasks
from cswf.engine.bounds import RenderBudget
from cswf.engine.frames import ACTION_SCHEMA, ENROLLMENT_SCHEMA, TRANSITION_SCHEMA, conform, empty
from cswf.engine.guard import Tally
from cswf.engine.shards import ShardParts, run_shard
from cswf.engine.tick import DEPLOY_SCHEMA, EVENT_SCHEMA, REMOVAL_SCHEMA
from cswf.facts.models import FACT_MODELS, build_facts_table
from cswf.facts.overlay import UPDATE_SCHEMA, apply_field_updates
from cswf.ingest.checks import existing_tables
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
from cswf.store.cut import (
    BUILT,
    ORDER,
    Cut,
    cut_feed,
    read_frame,
    schemas_of,
    sql_path,
    timestamp,
)
from cswf.store.holds import approved, launched, write_holds
from cswf.store.pgslices import PostgresSlices
from cswf.store.s3slices import S3Slices
from cswf.store.slices import (
    INPUT,
    TMP_PREFIX,
    FolderSlices,
    MissingSlice,
    Slice,
    SliceFiles,
    SliceStore,
    SliceStoreError,
    local_files,
    staging_folder,
    tick_folder,
)
from cswf.store.tables import ensure_deploy_requests, ensure_engine_tables, ensure_removal_requests
from cswf.store.warehouse import (
    LOGGED_COUNTS,
    TickRows,
    WriteOutcome,
    active_before,
    arrow,
    fact_projection,
    facts_stored,
    load_completions,
    load_tick,
    load_workload,
    record_versions,
    write_rows,
)

log = logging.getLogger(__name__)

# Test hook: "<shard>:<seconds>[:<pid file>]" makes that shard sleep after its files are durable
# and before they are published (tests/test_fanout.py kills it there).
PAUSE_BEFORE_PUBLISH = "CSWF_TEST_PAUSE_BEFORE_PUBLISH"
# What a shard hands the global step: the enrollments its tick changed (never its whole
# state: the global step writes only those), its actions and transitions.
CHANGED = "changed"
FRAMES = (CHANGED, "actions", "transitions")


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
    # DuckDB writes the cut on disk, in the tick's folder under staging_dir (a rename away from
    # a folder store's slices; that store's commit removes the folder), never in memory
    near = staging_folder(tick_folder(settings.staging_path, as_of))
    for left in near.glob(f"{TMP_PREFIX}*"):  # a killed prepare step's cut, a killed shard's
        shutil.rmtree(left, ignore_errors=True)  # slice: nothing else runs on the tick now
    cut = Cut(Path(tempfile.mkdtemp(prefix=TMP_PREFIX + "cut-", dir=near)), shards)
    try:
        info = _cut_inputs(con, settings, workflows, as_of, cut)
        for k in range(shards):
            store.publish(as_of, k, shards, cut.of(k), info, kind=INPUT)
    finally:
        cut.remove()
        if not isinstance(store, FolderSlices) and not any(near.iterdir()):
            near.rmdir()  # the slices live elsewhere: leave no empty folder behind


def _cut_inputs(con: duckdb.DuckDBPyConnection, settings: Settings,
                workflows: Sequence[LoadedWorkflow], as_of: datetime, cut: Cut
                ) -> dict[str, object]:
    """Every shard's inputs of the tick (`<feed>-facts`, `<feed>-state`, ... per participant
    type), cut in DuckDB as one process cuts them (store/cut.py `cut_feed`; each shard lays
    the field updates over its facts); and what each shard's manifest says: the inputs'
    types, the feeds' workflows and versions (which `shard_tick` checks against its own
    specs) and this prepare step's id (which `commit_tick` checks)."""
    before = settings.calendar.previous(as_of)
    feeds = _by_participant(workflows)
    for i, (participant, members) in enumerate(feeds.items()):
        feed = _Feed.of(settings, participant, members)
        facts, prev = _facts_queries(con, settings, feed, as_of, before)
        try:
            cut_feed(con, cut, str(i), facts, prev, feed.names, as_of, before, participant)
        finally:
            con.execute(f"DROP TABLE IF EXISTS temp.{BUILT}").fetchall()
    zone = con.execute("SELECT current_setting('TimeZone')").fetchall()[0][0]
    return {"as_of": as_of.isoformat(), "prepared": uuid.uuid4().hex,
            "feeds": _versions(feeds), "types": cut.types, "time_zone": zone}


def _facts_queries(con: duckdb.DuckDBPyConnection, settings: Settings, feed: _Feed,
                   as_of: datetime, before: datetime | None) -> tuple[str, str | None]:
    """The queries of a feed's facts at the tick and at the tick before (None: no facts
    before it, a run's first tick), as `_Feed.load` reads them: accounts' from the stored
    facts, the others' built by the fact models into a temp table."""
    at = timestamp(as_of)
    earlier = None if before is None else timestamp(before)
    if feed.participant == "account":
        prev = None if earlier is None else (
            f"SELECT {fact_projection(feed.previous)} FROM account_facts "
            f"WHERE as_of = {earlier}")
        if prev is not None and not con.execute(f"SELECT count(*) FROM ({prev})"
                                                ).fetchall()[0][0]:
            prev = None  # as `load_facts` has it: no stored facts before is no previous tick
        return (f"SELECT {fact_projection(feed.needed)} FROM account_facts "
                f"WHERE as_of = {at}", prev)
    build_facts_table(con, BUILT, [as_of] if before is None else [before, as_of],
                      settings.facts_sql_path, FACT_MODELS[feed.participant], feed.needed,
                      calendar=settings.calendar)
    return (f"SELECT * FROM {BUILT} WHERE as_of = {at}",
            None if earlier is None else f"SELECT * FROM {BUILT} WHERE as_of = {earlier}")


def _versions(feeds: dict[str, list[LoadedWorkflow]]) -> list[list[list[str]]]:
    """Each feed's workflows as [name, version]: what a shard checks its own specs against
    (an edited spec keeps its name, not its version)."""
    return [[[w.name, w.version] for w in members] for members in feeds.values()]


def _our_frames(slices: Sequence[SliceFiles], feeds: int, as_of: datetime) -> None:
    """Every frame of every slice must be one this code writes: a slice of another version of
    cswf (one that handed over whole states) would otherwise be read as a shard that did
    nothing."""
    known = {f"{i}-{name}" for i in range(feeds) for name in FRAMES}
    for found in slices:
        if unknown := sorted(set(found.files) - known):
            raise SliceStoreError(
                f"tick {key_of(as_of)}: shard {found.shard}'s slice holds '{unknown[0]}', which "
                "this version of cswf does not write (it was published by another version, or "
                "for other workflows): run the whole tick again (its prepare step, its shards, "
                "then the global step)")


def _one_prepare(slices: Sequence[SliceFiles], as_of: datetime) -> None:
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


def shard_inputs(given: Slice, i: int, k: int, as_of: datetime,
                 before: datetime | None) -> tuple[ShardParts, int]:
    """Feed i's inputs of shard k as `split_tick` cuts them, read back with the types the
    prepare step's DuckDB gave them, the field updates laid over the facts; and how many
    participants its facts hold. Each input read is taken out of `given`, so its rows are
    held once."""
    types: dict[str, list[list[str]]] = given.info["types"]  # type: ignore[assignment]
    mine = {key: columns for key, columns in types.items() if key.startswith(f"{i}-")}
    schemas = schemas_of(mine, str(given.info["time_zone"]))

    def read(name: str) -> pl.DataFrame | None:
        key = f"{i}-{name}"
        return None if key not in schemas else read_frame(given.frames.pop(key, None),
                                                          schemas[key])

    facts, prev = read("facts"), read("prev")
    assert facts is not None  # every feed has facts, if no rows
    facts = facts.sort("participant_id", maintain_order=True)
    updates, earlier = read("updates"), read("earlier")
    if updates is not None:
        facts = _overlaid(facts, updates, as_of, report=True)
    if prev is not None:
        prev = prev.sort("participant_id", maintain_order=True)
        if earlier is not None and before is not None:
            prev = _overlaid(prev, earlier, before, report=False)  # said last tick
    state = conform(read("state"), ENROLLMENT_SCHEMA)  # type: ignore[arg-type]
    found = read("events")
    events = empty(EVENT_SCHEMA) if found is None else conform(found, EVENT_SCHEMA)
    deploys, removals = (conform(read(name).sort(ORDER).drop(ORDER), schema)  # type: ignore[union-attr]
                         for name, schema in (("deploys", DEPLOY_SCHEMA),
                                              ("removals", REMOVAL_SCHEMA)))
    frames = {"state": state, "facts": facts, "prev": prev, "events": events,
              "deploys": deploys, "removals": removals}
    by = {name: {k: frame} if frame is not None and frame.height else {}
          for name, frame in frames.items()}
    return ShardParts(by, events, {
        "state": state.clear(), "facts": facts.clear(),
        "prev": None if prev is None else prev.clear()}), facts.height


def _overlaid(facts: pl.DataFrame, updates: pl.DataFrame, as_of: datetime, *,
              report: bool) -> pl.DataFrame:
    """The facts with the field updates visible at `as_of` laid over them (with `report`, the
    updates that could not be are logged, each by the shard of its participant)."""
    seen, problems = apply_field_updates(facts, conform(updates, UPDATE_SCHEMA), as_of)
    if report:
        _report_overlay_problems(problems, set())
    return seen


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
    before = settings.calendar.previous(as_of)
    for i, members in enumerate(feeds.values()):
        parts, participants[str(i)] = shard_inputs(given, i, shard, as_of, before)
        result = run_shard(parts, shard, members, as_of,
                           default_category=settings.default_category, render_budget=budget)
        if result is not None:
            frames |= {f"{i}-{CHANGED}": result.changed_state,
                       f"{i}-actions": result.actions, f"{i}-transitions": result.transitions}
    info = {"as_of": as_of.isoformat(), "participants": participants,
            "prepared": given.info.get("prepared"), "feeds": given.info.get("feeds")}
    return str(store.publish(as_of, shard, shards, frames, info,
                             before_publish=lambda: _test_pause(shard)))


@dataclass(frozen=True)
class Committed:
    """What the global step wrote, counted: it streams the tick's rows from the shards'
    files into the tables and never holds them."""

    participants: int
    changed: int
    actions: int
    transitions: int


def commit_tick(con: duckdb.DuckDBPyConnection, settings: Settings,
                workflows: Sequence[LoadedWorkflow], as_of: datetime, shards: int, *,
                on_tick: OnTick | None = None, respond: Respond | None = None,
                rewrite_delivered: bool = False) -> tuple[WriteOutcome, Committed]:
    """The global step: every shard's slice of the tick (MissingSlice if one is absent, and
    nothing is written), group tasks assigned over all of them, the tick written in one
    transaction as `run_ticks` writes it; then the tick's slices are removed.

    DuckDB reads the tick's rows from the shards' Parquet files straight into the tables
    (another store's slices are fetched into files first, one at a time). What Python holds
    is the group tasks, and per shard the guards' counts and first few participants: never
    the tick, never the book (the guards' active counts and the group tasks' completions
    are read by DuckDB). An observer (`on_tick`, `respond`) is given the tick read back from
    the tables, `state` holding the enrollments it changed."""
    store = slice_store(settings)
    feeds = _by_participant(workflows)
    if not store.published(as_of, shards) and not store.published(as_of, shards, kind=INPUT) \
            and _committed(con, as_of):
        raise MissingSlice(
            f"tick {key_of(as_of)} is already committed, and its slices went when it was: "
            "there is nothing for the global step to do. To run the tick again, run the whole "
            "tick (its prepare step, its shards, then the global step), as cswf tick does")
    with local_files(store, as_of, shards, tick_folder(settings.staging_path, as_of)
                     ) as slices:
        _one_prepare(slices, as_of)
        _our_frames(slices, len(feeds), as_of)
        if slices and "feeds" not in slices[0].info:
            raise SliceStoreError(
                f"tick {key_of(as_of)}: shard {slices[0].shard}'s slice does not say which "
                "workflow versions it ran (it was published by another version of cswf): run "
                "the whole tick again (its prepare step, its shards, then the global step)")
        if slices and slices[0].info["feeds"] != _versions(feeds):
            raise SliceStoreError(
                f"tick {key_of(as_of)}: the workflows changed since the tick's prepare step "
                "read its inputs — run the whole tick again (its prepare step, its shards, "
                "then the global step)")
        files = {name: [found.files[key] for i in range(len(feeds)) for found in slices
                        if (key := f"{i}-{name}") in found.files] for name in FRAMES}
        assigned = _assigned(con, settings, slices, len(feeds), as_of)
        participants = sum(int(count) for found in slices  # type: ignore[call-overload]
                           for count in found.info["participants"].values())  # type: ignore[attr-defined]
        with _tick_rows(con, as_of, files, assigned, participants, len(workflows)) as rows:
            found = _guarded(con, settings, lambda: active_before(con, as_of), as_of,
                             lambda: _tally(slices), guard_limits(settings, workflows),
                             launched(con, as_of))
            outcome = write_rows(con, rows, rewrite_delivered=rewrite_delivered,
                                 on_rewrite=lambda rewrite: log.warning(rewrite.line()))
    if not found.is_empty() and not (outcome.status == "unchanged" and approved(con, as_of)):
        write_holds(con, as_of, found)
    store.drop(as_of)
    if on_tick is not None or respond is not None:
        stored = load_tick(con, as_of)
        if on_tick is not None:
            on_tick(outcome, stored)
        if respond is not None:
            respond(con, stored, settings.calendar.next(as_of))
    counts = rows.counts
    return outcome, Committed(rows.participants, counts["changed"], counts["actions"],
                              counts["transitions"])


def _assigned(con: duckdb.DuckDBPyConnection, settings: Settings,
              slices: Sequence[SliceFiles], feeds: int, as_of: datetime) -> pl.DataFrame:
    """The group tasks of every shard, assigned as one process assigns them (feed by feed,
    each in action-id order, round robin going on from the feeds before): action_id and
    assignee (WORKLOAD_SCHEMA's). Only these rows are read from the actions' files."""
    groups = load_groups(settings.groups_path)
    if not groups:
        return empty(WORKLOAD_SCHEMA)
    completions = load_completions(con, as_of)
    workload = load_workload(con, as_of)
    picks = []
    for i in range(feeds):
        paths = [s.files[f"{i}-actions"] for s in slices if f"{i}-actions" in s.files]
        if not paths:
            continue
        tasks = pl.scan_parquet(paths, glob=False).filter(
            (pl.col("action_type") == "task") & pl.col("owner_group").is_not_null()).select(
            "action_id", "action_type", "owner_group", "assignee").collect()
        done = group_tasks(assign_tasks(tasks, groups, workload, completions, as_of))
        workload = pl.concat([workload, done])
        picks.append(done)
    return pl.concat(picks) if picks else empty(WORKLOAD_SCHEMA)


ASSIGNED = "cswf_assigned_tasks"  # the group tasks' assignees, registered while written
EMPTY = {CHANGED: ENROLLMENT_SCHEMA, "actions": ACTION_SCHEMA, "transitions": TRANSITION_SCHEMA}


@contextmanager
def _tick_rows(con: duckdb.DuckDBPyConnection, as_of: datetime,
               files: dict[str, list[Path]], assigned: pl.DataFrame, participants: int,
               workflows: int) -> Iterator[TickRows]:
    """The tick's rows as DuckDB reads them from the shards' files (TickRows), the actions
    with the group tasks' assignees laid over them; counted from the files."""
    relations: dict[str, str] = {}
    registered: list[str] = []
    try:
        for name, paths in files.items():
            if paths:  # (a folder named like `key=value` is no column: hive_partitioning off)
                listed = ", ".join(f"'{sql_path(path)}'" for path in paths)
                relations[name] = f"read_parquet([{listed}], hive_partitioning = false)"
            else:
                registered.append(f"cswf_no_{name}")
                con.register(registered[-1], arrow(empty(EMPTY[name])))
                relations[name] = registered[-1]
        plain = dict(relations)
        if not assigned.is_empty():
            registered.append(ASSIGNED)
            con.register(ASSIGNED, arrow(assigned.select("action_id", "assignee")))
            relations["actions"] = (
                "(SELECT a.* REPLACE (coalesce(m.assignee, a.assignee) AS assignee) FROM "
                f"{plain['actions']} AS a LEFT JOIN {ASSIGNED} AS m USING (action_id))")
        sizes = con.execute("SELECT " + ", ".join(
            f"(SELECT count(*) FROM {plain[name]})" for name in FRAMES)).fetchall()[0]
        logged = con.execute("SELECT " + ", ".join(
            f"count(*) FILTER (WHERE transition = '{kind}')" for kind in LOGGED_COUNTS)
            + f" FROM {plain['transitions']}").fetchall()[0]
        counts = {"changed": sizes[0], "actions": sizes[1], "transitions": sizes[2],
                  **dict(zip(LOGGED_COUNTS, logged, strict=True))}
        yield TickRows(as_of, participants, workflows, relations[CHANGED], relations["actions"],
                       relations["transitions"], counts)
    finally:
        for name in registered:
            con.unregister(name)


def _tally(slices: Sequence[SliceFiles]) -> Tally:
    """The guards' tally of the tick, a shard at a time (engine/guard.py `Tally`): only the
    columns the guards count are scanned, and the few sampled participants' evidence."""
    parts = []
    for found in slices:
        scans = {name: [path for key, path in sorted(found.files.items())
                        if key.endswith(f"-{name}")] for name in ("actions", "transitions")}
        transitions, actions = (
            pl.scan_parquet(scans[name], glob=False) if scans[name]
            else empty(EMPTY[name]).lazy()
            for name in ("transitions", "actions"))
        parts.append(Tally.of(transitions, actions))
    return Tally.combine(parts)


def slice_store(settings: Settings) -> SliceStore:
    """Where the shards hand over their slices: `staging_url`'s S3 bucket or Postgres database
    if set, else the `staging_dir` folder."""
    if settings.staging_url and settings.staging_url.startswith("s3://"):
        return S3Slices(settings.staging_url)
    if settings.staging_url:
        return PostgresSlices(settings.staging_url)
    return FolderSlices(settings.staging_path)


def _committed(con: duckdb.DuckDBPyConnection, as_of: datetime) -> bool:
    return "tick_log" in existing_tables(con) and bool(con.execute(
        "SELECT count(*) FROM tick_log WHERE as_of = $t", {"t": as_of}).fetchall()[0][0])


def _test_pause(shard: int) -> None:
    """The crash tests' hook: "<shard>:<seconds>[:<file>]" makes that shard sleep, having
    written its process id to the file if one is named."""
    wanted = os.environ.get(PAUSE_BEFORE_PUBLISH, "").split(":")
    if wanted[0] == str(shard):
        if len(wanted) > 2:
            Path(wanted[2]).write_text(str(os.getpid()))
        time.sleep(float(wanted[1]))
