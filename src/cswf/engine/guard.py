"""Guards: compare what a tick would do with the book's norm, before anything leaves.

A glitch in one snapshot (every renewal date a year later, every account back in onboarding)
looks like a normal tick to the engine: it exits or enters hundreds of participants and emails
them. These pure functions count, per workflow, what the tick did (exits against the active
participants; entries, emails and webhooks against their trailing median per tick) and return
the guards it tripped, with a sample of participants to look at. The store reads the norms; the
caller holds the tick.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from cswf.engine.tick import TickResult

EXITS, ENTRIES, EMAILS, WEBHOOKS = "exits", "entries", "emails", "webhooks"
GUARDS = (EXITS, ENTRIES, EMAILS, WEBHOOKS)
SPIKES = (ENTRIES, EMAILS, WEBHOOKS)  # compared with a trailing median
SAMPLE = 5  # participants shown per tripped guard

# Exits and entries a person asked for are not a glitch: disabling a workflow, a manual deploy.
DELIBERATE = ("workflow disabled", "manual deploy", "removed by ")  # a person's doing

TRIPPED_SCHEMA: dict[str, pl.DataType] = {
    "workflow": pl.String(),
    "guard": pl.String(),
    "observed": pl.Int64(),
    "norm": pl.Float64(),  # exits: the active participants before the tick; else the median
    "threshold": pl.Float64(),  # share × active, or ratio × median; null: no history
    "minimum": pl.Int64(),
    "sample": pl.String(),  # JSON: a few participants and the fact values that decided
}
LIMIT_SCHEMA: dict[str, pl.DataType] = {
    "workflow": pl.String(), "guard": pl.String(), "factor": pl.Float64(), "minimum": pl.Int64()}
NORM_SCHEMA: dict[str, pl.DataType] = {
    "workflow": pl.String(), "guard": pl.String(), "norm": pl.Float64()}


def _deliberate(reason: pl.Expr) -> pl.Expr:
    return pl.any_horizontal([reason.str.starts_with(why) for why in DELIBERATE])


def _decided(transitions: pl.LazyFrame) -> pl.LazyFrame:
    """The enrollments whose moves this tick's facts decided: an entry, a branch, a wait whose
    condition came true (engine/flow.py's reasons). A delay or a wait's time running out is
    the calendar's doing: a cohort launched together reaches its day-3 email together, and
    no snapshot glitch can cause that, so its emails are not counted as a spike."""
    reason = pl.col("reason").fill_null("")
    by_facts = (
        (pl.col("transition") == "entered")
        | reason.str.starts_with("branch '")
        | (reason.str.starts_with("wait '") & ~reason.str.contains(" days passed without "))
    )
    return transitions.filter(by_facts).select("enrollment_id").unique()


def _events(transitions: pl.LazyFrame, actions: pl.LazyFrame) -> pl.LazyFrame:
    """What the tick did, one row per thing a guard counts: workflow, guard, participant_id,
    and where its evidence is (the deciding fact values, read for the sample only): the
    transition `source` of enrollment_id (an exit or an entry its own; an email or a webhook
    its enrollment's entry). Only these columns are read: a first tick's events are most of
    its transitions."""
    moves = transitions.filter(
        pl.col("transition").is_in(["exited", "entered"]) & ~_deliberate(pl.col("reason"))
    ).select("workflow", pl.when(pl.col("transition") == "exited").then(pl.lit(EXITS))
             .otherwise(pl.lit(ENTRIES)).alias("guard"), "participant_id", "enrollment_id",
             pl.col("transition").alias("source"))
    sent = actions.filter(pl.col("action_type").is_in(["email", "webhook"])).join(
        _decided(transitions), on="enrollment_id", how="semi").select(
        "workflow", (pl.col("action_type") + "s").alias("guard"), "participant_id",
        "enrollment_id", pl.lit("entered").alias("source"))
    return pl.concat([moves, sent])


COUNT_SCHEMA: dict[str, pl.DataType] = {
    "workflow": pl.String(), "guard": pl.String(), "observed": pl.Int64()}
CANDIDATE_SCHEMA: dict[str, pl.DataType] = {
    "workflow": pl.String(), "guard": pl.String(), "participant_id": pl.String(),
    "enrollment_id": pl.String(), "source": pl.String()}


@dataclass(frozen=True)
class Tally:
    """What the guards need of a tick, without holding its rows: the count per workflow and
    guard (COUNT_SCHEMA), and each part's transitions and actions as lazy frames, read
    again only to sample a guard that tripped. Tallies of parts of a tick (its shards)
    `combine` into the tally of the whole, so a sharded tick's global step never holds the
    tick's transitions to guard it."""

    counts: pl.DataFrame
    parts: tuple[tuple[pl.LazyFrame, pl.LazyFrame], ...]  # (transitions, actions) per part

    @staticmethod
    def of(transitions: pl.LazyFrame, actions: pl.LazyFrame) -> Tally:
        counts = _events(transitions, actions).group_by("workflow", "guard").agg(
            pl.len().cast(pl.Int64).alias("observed")).collect()
        return Tally(counts.cast(COUNT_SCHEMA), ((transitions, actions),))  # type: ignore[arg-type]

    @staticmethod
    def combine(parts: Sequence[Tally]) -> Tally:
        if len(parts) == 1:
            return parts[0]
        counts = pl.concat([pl.DataFrame(schema=COUNT_SCHEMA), *(p.counts for p in parts)]
                           ).group_by("workflow", "guard").agg(pl.col("observed").sum())
        return Tally(counts.cast(COUNT_SCHEMA),  # type: ignore[arg-type]
                     tuple(part for p in parts for part in p.parts))

    def sample(self, guards: pl.DataFrame) -> pl.DataFrame:
        """The first SAMPLE participants of each of `guards` (workflow, guard), by
        participant then enrollment, with the evidence of their `source` transition: the
        first few of each part, then the first few of those (an enrollment's rows are all
        in one part)."""
        if guards.is_empty() or not self.parts:  # (nothing tripped: nothing to read again)
            return pl.DataFrame(schema={**CANDIDATE_SCHEMA, "evidence": pl.String()})
        firsts = []
        for transitions, actions in self.parts:
            few = _first(_events(transitions, actions).join(
                guards.lazy(), on=["workflow", "guard"], how="semi")).collect().cast(
                CANDIDATE_SCHEMA)  # type: ignore[arg-type]
            evidence = transitions.filter(pl.col("transition").is_in(["exited", "entered"])
                                          ).select(
                "enrollment_id", pl.col("transition").alias("source"), "evidence").join(
                few.lazy().select("enrollment_id", "source"), on=["enrollment_id", "source"],
                how="semi").unique(["enrollment_id", "source"], keep="first",
                                   maintain_order=True)
            firsts.append(few.join(evidence.collect(), on=["enrollment_id", "source"],
                                   how="left", maintain_order="left"))
        return _first(pl.concat(firsts).lazy()).collect()


def tally_of(result: TickResult) -> Tally:
    """The guards' tally of a tick held in memory (one process)."""
    return Tally.of(result.transitions.lazy(), result.actions.lazy())


def _first(happened: pl.LazyFrame) -> pl.LazyFrame:
    """The first SAMPLE events of each workflow and guard, by participant then enrollment
    (ties between equal rows keep their order: such rows are equal)."""
    return happened.sort("participant_id", "enrollment_id", maintain_order=True).group_by(
        "workflow", "guard", maintain_order=True).head(SAMPLE)


def could_trip(tally: Tally, limits: pl.DataFrame) -> bool:
    """Whether any count of the tick reaches its guard's minimum: a guard never trips below
    it, so most ticks need no norms at all (reading them is a query per tick)."""
    reached = tally.counts.join(limits.cast(LIMIT_SCHEMA), on=["workflow", "guard"]).filter(  # type: ignore[arg-type]
        pl.col("observed") >= pl.col("minimum"))
    return not reached.is_empty()


ACTIVE_SCHEMA: dict[str, pl.DataType] = {"workflow": pl.String(), "active": pl.Int64()}


def active_by_workflow(state: pl.DataFrame) -> pl.DataFrame:
    """The active participants of each workflow in `state` (ACTIVE_SCHEMA): what an exit is a
    share of."""
    return state.filter(pl.col("status") == "active").group_by("workflow").agg(
        pl.len().cast(pl.Int64).alias("active"))


def tripped(
    active: pl.DataFrame,
    tally: Tally,
    norms: pl.DataFrame,
    limits: pl.DataFrame,
    launched: Sequence[str],
) -> pl.DataFrame:
    """The guards a tick tripped (TRIPPED_SCHEMA), per workflow.

    `active`: the active participants of each workflow before the tick (ACTIVE_SCHEMA: exits
    are a share of them; the global step of a sharded tick counts them in SQL);
    `norms`: workflow, guard, norm (the trailing median per tick; missing: no history);
    `limits`: workflow, guard, factor (share or ratio), minimum, for the guards that apply;
    `launched`: the workflows someone entered before this tick. A launch's backlog is what
    `cswf preview` showed before the workflow was enabled, so spikes are not compared at it.
    """
    active = active.select("workflow", pl.col("active").cast(pl.Float64))
    found = (
        tally.counts.join(limits.cast(LIMIT_SCHEMA), on=["workflow", "guard"])  # type: ignore[arg-type]
        .join(norms.cast(NORM_SCHEMA), on=["workflow", "guard"], how="left")  # type: ignore[arg-type]
        .join(active, on="workflow", how="left")
        .with_columns(pl.when(pl.col("guard") == EXITS).then(pl.col("active").fill_null(0.0))
                      .otherwise(pl.col("norm")).alias("norm"))
        .with_columns((pl.col("factor") * pl.col("norm")).alias("threshold"))
        .filter(
            (pl.col("observed") >= pl.col("minimum"))
            & (pl.col("threshold").is_null() | (pl.col("observed") > pl.col("threshold")))
            & ((pl.col("guard") == EXITS) | pl.col("workflow").is_in(list(launched)))
        )
        .sort("workflow", "guard")
    )
    samples = _samples(tally.sample(found.select("workflow", "guard")))
    return found.join(samples, on=["workflow", "guard"], how="left").select(
        list(TRIPPED_SCHEMA)).cast(TRIPPED_SCHEMA)  # type: ignore[arg-type]


def _samples(few: pl.DataFrame) -> pl.DataFrame:
    """The sampled participants of each tripped guard with their evidence, as JSON."""
    rows: dict[tuple[str, str], list[dict[str, object]]] = {}
    for workflow, guard, participant, facts in few.select(
            "workflow", "guard", "participant_id", "evidence").iter_rows():
        rows.setdefault((workflow, guard), []).append(
            {"participant_id": participant, "facts": json.loads(facts) if facts else None})
    return pl.DataFrame(
        [{"workflow": w, "guard": g, "sample": json.dumps(s)} for (w, g), s in rows.items()],
        schema={"workflow": pl.String, "guard": pl.String, "sample": pl.String})


def describe(workflow: str, guard: str, observed: int, norm: float | None,
             threshold: float | None, minimum: int) -> str:
    """One tripped guard in words: which workflow, what it did, against what."""
    if guard == EXITS:
        active = int(norm or 0)
        share = f"{observed / active:.0%}" if active else "all"
        limit = f"{threshold / active:.0%}" if active and threshold is not None else "?"
        return (f"{workflow}: {observed} exits of {active} active ({share}; the limit is "
                f"{limit} and at least {minimum})")
    if norm is None or threshold is None:
        return (f"{workflow}: {observed} {guard} with no {guard} in its recent ticks (the limit "
                f"is at least {minimum})")
    ratio = threshold / norm if norm else 0.0
    return (f"{workflow}: {observed} {guard} against a trailing median of {norm:g} per tick "
            f"(the limit is {ratio:g}x it and at least {minimum})")
