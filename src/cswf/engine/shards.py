"""Participant shards: one tick run as several parts, one per shard, and a global step after them,
with the same result as one part holding everyone.

A participant's shard follows its account: the bucket of the account id (as text) is the first 8
bytes of SHA-256 of its UTF-8, read as a big-endian unsigned integer, modulo 10,000 (the hash of
engine/holdout.py, stable across Python, Polars and DuckDB versions), and shard k of N holds the
buckets b with floor(b * N / 10000) == k: contiguous ranges, so a new shard count moves ranges
and never re-hashes. In DuckDB: `('0x' || sha256(account_id)[1:16])::UBIGINT % 10000 * N // 10000`.
Contacts and opportunities carry their account (`account_id` in their facts), so everything about
one account sits in one shard. A participant absent from the facts (its state row, or a deploy or
removal for it, outlives its facts) falls back to its own id's bucket: each participant is in
exactly one shard, which is all the engine needs to give the same result.

What a shard holds: its participants' state rows, facts, previous facts, deploy and removal
requests, and the action events of their enrollments (action ids are `<enrollment id>/<key>`).
What is global: assigning group tasks (round robin and least loaded continue from every shard's
tasks, in action-id order), so `run_sharded_tick` assigns once after the shards; the render budget
is one object every shard charges, as the workflows of one process do; spec versions,
lifecycle checks and the tick guard run once per tick in project/ticks.py, outside this module.

One difference is allowed: a template's render is shared by the participants of one call with
the same inputs, and each shard is a call of its own, so shards render (and charge the budget
for) what one process renders once. A tick that spends its render budget (30 s by default) may
then fail other, and more, renders than one process; a tick within it is identical.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import polars as pl

from cswf.engine.assign import WORKLOAD_SCHEMA, assign_tasks
from cswf.engine.bounds import RenderBudget
from cswf.engine.frames import ENROLLMENT_SCHEMA, conform, empty
from cswf.engine.holdout import BUCKETS, sha256_buckets
from cswf.engine.tick import (
    DEPLOY_SCHEMA,
    EVENT_SCHEMA,
    REMOVAL_SCHEMA,
    TickResult,
    combine,
    run_tick,
)
from cswf.specs.groups import UserGroup
from cswf.specs.loader import LoadedWorkflow

PARTICIPANT, ACCOUNT, SHARD = "participant_id", "account_id", "__shard"
MAX_SHARDS = BUCKETS  # a shard holds one bucket at least


def shard_of_bucket(bucket: pl.Expr, shards: int) -> pl.Expr:
    """The shard (0..shards-1) of a bucket: contiguous ranges of the 10,000 buckets."""
    return (bucket * shards // BUCKETS).cast(pl.Int32)


class Buckets:
    """Bucket of each key, hashed once per key for the life of the object (a run's ticks see
    the same accounts again and again; SHA-256 in Python costs about a microsecond a key)."""

    def __init__(self) -> None:
        self._known = pl.DataFrame(schema={"key": pl.String, "bucket": pl.Int32})

    def of(self, keys: pl.Series) -> pl.Series:
        """The bucket of every key, in order (a null key: the bucket of the empty string).
        Keys seen before cost one join; only new ones are hashed."""
        frame = pl.DataFrame({"key": keys.cast(pl.String).fill_null("")})
        found = frame.join(self._known, on="key", how="left", maintain_order="left")
        if found["bucket"].null_count():
            new = found.filter(pl.col("bucket").is_null())["key"].unique()
            self._known = pl.concat([self._known, pl.DataFrame({"key": new, "bucket": pl.Series(
                sha256_buckets(new.to_list()), dtype=pl.Int32)})])
            found = frame.join(self._known, on="key", how="left", maintain_order="left")
        return found["bucket"]


def participant_shards(facts: pl.DataFrame, prev_facts: pl.DataFrame | None,
                       others: Sequence[pl.Series], shards: int,
                       buckets: Buckets | None = None) -> pl.DataFrame:
    """(participant_id, shard) for every participant of the facts, the previous facts and
    `others` (ids from state, deploys, removals): by account where the facts name it."""
    known = [f for f in (facts, prev_facts) if f is not None]
    named = pl.concat([f.select(PARTICIPANT, (pl.col(ACCOUNT) if ACCOUNT in f.columns
                                             else pl.col(PARTICIPANT)).cast(pl.String)
                                .alias("key")) for f in known])
    rest = pl.concat([pl.DataFrame({PARTICIPANT: ids.cast(pl.String)}) for ids in others]
                     or [empty({PARTICIPANT: pl.String()})])
    keys = pl.concat([named, rest.with_columns(pl.col(PARTICIPANT).alias("key"))]).unique(
        PARTICIPANT, keep="first", maintain_order=True)
    bucket = (buckets or Buckets()).of(keys["key"])
    return keys.select(PARTICIPANT, shard_of_bucket(pl.lit(bucket), shards).alias(SHARD))


def run_sharded_tick(
    state: pl.DataFrame,
    facts: pl.DataFrame,
    prev_facts: pl.DataFrame | None,
    events: pl.DataFrame | None,
    workflows: Sequence[LoadedWorkflow],
    as_of: datetime,
    *,
    shards: int = 1,
    default_category: str = "Nurture",
    deploys: pl.DataFrame | None = None,
    groups: Mapping[str, UserGroup] | None = None,
    workload: pl.DataFrame | None = None,
    render_budget: RenderBudget | None = None,
    removals: pl.DataFrame | None = None,
    buckets: Buckets | None = None,
) -> TickResult:
    """`run_tick` over `shards` parts and the global step after them (one shard: `run_tick`
    itself, nothing else runs); the same result as `run_tick` for any shard count, unless
    the tick spends its render budget (see the module docstring)."""
    if shards == 1:
        return run_tick(state, facts, prev_facts, events, workflows, as_of,
                        default_category=default_category, deploys=deploys, groups=groups,
                        workload=workload, render_budget=render_budget, removals=removals)
    parts = split_tick(state, facts, prev_facts, events, deploys, removals, shards, buckets)
    budget = RenderBudget() if render_budget is None else render_budget  # one for all shards
    results = [result for k in range(shards) if (result := run_shard(
        parts, k, workflows, as_of, default_category=default_category,
        render_budget=budget)) is not None]
    return merge_shards(results, as_of, len(workflows), groups, workload, parts.events,
                        facts.height)


@dataclass(frozen=True)
class ShardParts:
    """A tick's inputs cut by shard: `by[name][k]` is shard k's rows of input `name` (state,
    facts, prev, deploys, removals, events; absent: none), `events` all of them, conformed,
    for the global step's assignment; `empty` the inputs' empty frames, for a shard without
    rows of one."""

    by: dict[str, dict[int, pl.DataFrame]]
    events: pl.DataFrame
    empty: dict[str, pl.DataFrame | None]

    def of(self, k: int) -> dict[str, pl.DataFrame | None]:
        return {name: frames.get(k) for name, frames in self.by.items()}


def split_tick(state: pl.DataFrame, facts: pl.DataFrame, prev_facts: pl.DataFrame | None,
               events: pl.DataFrame | None, deploys: pl.DataFrame | None,
               removals: pl.DataFrame | None, shards: int,
               buckets: Buckets | None = None) -> ShardParts:
    """Every input of a tick cut by the shard of its participant (events: of their
    enrollment), in one pass per input, never per participant."""
    state = conform(state, ENROLLMENT_SCHEMA)
    events = empty(EVENT_SCHEMA) if events is None else conform(events, EVENT_SCHEMA)
    deploys = empty(DEPLOY_SCHEMA) if deploys is None else conform(deploys, DEPLOY_SCHEMA)
    removals = empty(REMOVAL_SCHEMA) if removals is None else conform(removals, REMOVAL_SCHEMA)
    owner = participant_shards(facts, prev_facts, [state[PARTICIPANT], deploys[PARTICIPANT],
                                                   removals[PARTICIPANT]], shards, buckets)

    def owned(frame: pl.DataFrame | None) -> pl.DataFrame | None:
        # a null participant id is a participant too, as run_tick treats it
        return None if frame is None else frame.join(
            owner, on=PARTICIPANT, how="left", maintain_order="left", nulls_equal=True)

    return _cut(owned(state), owned(facts), owned(prev_facts), events, owned(deploys),
                owned(removals))


def _cut(state: pl.DataFrame, facts: pl.DataFrame, prev_facts: pl.DataFrame | None,
         events: pl.DataFrame, deploys: pl.DataFrame, removals: pl.DataFrame) -> ShardParts:
    """The inputs, each with its rows' shard in column `__shard`, cut by it; an event goes to
    the shard of the enrollment whose action it answers."""
    keyed = events.with_columns(pl.col("action_id").str.replace(r"/[^/]*$", "")
                                .alias("enrollment_id")).join(
        state.select("enrollment_id", SHARD), on="enrollment_id", how="left",
        maintain_order="left")

    def part(frame: pl.DataFrame | None) -> dict[int, pl.DataFrame]:
        if frame is None:
            return {}
        return {key[0]: rows.drop(SHARD)
                for key, rows in frame.partition_by(SHARD, as_dict=True).items()}

    by = {name: part(frame) for name, frame in (
        ("state", state), ("facts", facts), ("prev", prev_facts), ("deploys", deploys),
        ("removals", removals))}
    by["events"] = {k: rows.drop("enrollment_id") for k, rows in part(keyed).items()}
    return ShardParts(by, events, {
        "state": state.drop(SHARD).clear(), "facts": facts.drop(SHARD).clear(),
        "prev": None if prev_facts is None else prev_facts.drop(SHARD).clear()})


def run_shard(parts: ShardParts, k: int, workflows: Sequence[LoadedWorkflow], as_of: datetime,
              *, default_category: str = "Nurture",
              render_budget: RenderBudget | None = None) -> TickResult | None:
    """Shard k's part of the tick (`run_tick` on its participants, no assignment: that is
    global); None when nobody is in it."""
    mine = parts.of(k)
    if all(mine[n] is None for n in ("state", "facts", "deploys", "removals")):
        return None  # nobody in this shard
    return run_tick(
        mine["state"] if mine["state"] is not None else parts.empty["state"],
        mine["facts"] if mine["facts"] is not None else parts.empty["facts"],
        None if parts.empty["prev"] is None else
        mine["prev"] if mine["prev"] is not None else parts.empty["prev"],
        mine["events"], workflows, as_of, default_category=default_category,
        deploys=mine["deploys"], groups=None, render_budget=render_budget,
        removals=mine["removals"])


def merge_shards(results: Sequence[TickResult], as_of: datetime, workflows: int,
                 groups: Mapping[str, UserGroup] | None, workload: pl.DataFrame | None,
                 events: pl.DataFrame, participants: int) -> TickResult:
    """The global step in one process: the shards' results as one tick's (ordered as one
    process orders them: `combine`), then the group tasks assigned over all of them (in
    action-id order)."""
    merged = combine(results, as_of)
    actions = merged.actions
    if groups:
        actions = assign_tasks(actions, groups, empty(WORKLOAD_SCHEMA) if workload is None
                               else workload, events, as_of)
    return replace(merged, participants=participants, workflows=workflows, actions=actions)
