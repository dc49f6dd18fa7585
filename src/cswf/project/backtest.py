"""Fastenr's "test the workflow before activating": one workflow, as its spec file is now, run
over past ticks in a scratch copy of the working database.

The copy runs the very ticks a live run runs (`run_ticks`, every workflow, the chosen one taken
as enabled), so for an enabled, unchanged spec the numbers are those the live ticks produced.
Nothing is delivered and the working database is only read; the copy is deleted afterwards.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from cswf.engine.evaluate import evaluate, verdict_column
from cswf.engine.holdout import COHORT, CONTROL
from cswf.engine.tick import TickResult
from cswf.facts.models import FACT_MODELS, build_facts
from cswf.facts.overlay import apply_field_updates, load_field_updates
from cswf.ingest.landing import ingest_all
from cswf.project.preview import taken_as_enabled, tick_facts
from cswf.project.ticks import run_ticks, store_facts, tick_chunks
from cswf.settings import Settings
from cswf.specs.loader import LoadedWorkflow
from cswf.store.tables import ensure_engine_tables
from cswf.store.warehouse import WriteOutcome, load_state

PARTICIPANT = "participant_id"
# The groups the objective is compared across, in the order shown.
GROUPS = (
    "entered",
    "entered, held out (control)",  # a holdout's control group: entered, received nothing
    "inside before",
    "qualified, did not enter",
    "did not qualify",
)


@dataclass(frozen=True)
class Backtest:
    workflow: str
    start: datetime
    end: datetime
    ticks: list[datetime]
    transitions: pl.DataFrame  # the workflow's transitions over the ticks
    actions: pl.DataFrame  # the workflow's actions over the ticks
    objective: pl.DataFrame | None  # group, participants, met_at_start, met_at_end (rates)
    objective_condition: str | None = None
    held: datetime | None = None  # a guard held this tick: the backtest stopped after it
    sample_size: int = 10
    control: frozenset[str] = frozenset()  # enrollments that entered a holdout's control group

    @property
    def held_out(self) -> int:
        """How many of those who entered went to the control group (they receive nothing)."""
        return self.transitions.filter(
            (pl.col("transition") == "entered") & pl.col("enrollment_id").is_in(list(self.control))
        ).height

    @property
    def entered(self) -> int:
        return self.transitions.filter(pl.col("transition") == "entered").height

    @property
    def entered_per_tick(self) -> pl.DataFrame:
        """Every tick run, with how many entered at it (0 included)."""
        counts = (
            self.transitions.filter(pl.col("transition") == "entered")
            .group_by("tick")
            .agg(pl.len().cast(pl.Int64).alias("entered"))
        )
        run = self.ticks if self.held is None else [t for t in self.ticks if t <= self.held]
        return (
            pl.DataFrame({"tick": run}, schema={"tick": pl.Datetime("us")})
            .join(counts, on="tick", how="left")
            .with_columns(pl.col("entered").fill_null(0))
        )

    @property
    def sample(self) -> pl.DataFrame:
        return (
            self.transitions.filter(pl.col("transition") == "entered")
            .sort("tick", PARTICIPANT)
            .select(PARTICIPANT, pl.col("tick").alias("entered_at"), "enrollment_id")
            .head(self.sample_size)
        )

    @property
    def actions_by_step(self) -> pl.DataFrame:
        """Actions by step and type; those of no step (milestone and workflow tasks) last."""
        return (
            self.actions.group_by("step", "step_name", "action_type")
            .agg(pl.len().cast(pl.Int64).alias("actions"))
            .sort("step", "step_name", "action_type", nulls_last=True)
        )

    @property
    def exits(self) -> pl.DataFrame:
        return (
            self.transitions.filter(pl.col("transition") == "exited")
            .group_by("reason")
            .agg(pl.len().cast(pl.Int64).alias("exits"))
            .sort("exits", "reason", descending=[True, False])
        )

    @property
    def completed(self) -> int:
        return self.transitions.filter(pl.col("transition") == "completed").height

    def to_json(self) -> dict[str, Any]:
        """What `cswf backtest --json` prints."""

        def rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
            return [
                {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
                for row in frame.to_dicts()
            ]

        return {
            "workflow": self.workflow,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "ticks": len(self.ticks),
            "held": self.held.isoformat() if self.held else None,
            "entered": {
                "total": self.entered,
                "control": self.held_out,
                "per_tick": rows(self.entered_per_tick),
                "sample": rows(self.sample),
            },
            "actions": rows(self.actions_by_step),
            "exits": rows(self.exits),
            "completed": self.completed,
            "objective": None
            if self.objective is None
            else {"condition": self.objective_condition, "groups": rows(self.objective)},
        }


def backtest(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    workflows: Sequence[LoadedWorkflow],
    name: str,
    ticks: Sequence[datetime],
    sample: int = 10,
) -> Backtest:
    """Run `ticks` with `workflows` (the one called `name` taken as enabled) in a scratch copy of
    `con`'s database, after ingesting the landing files into the copy; `con` is only read."""
    chosen = next(w for w in workflows if w.name == name)
    running = [taken_as_enabled(w) if w.name == name else w for w in workflows]
    with tempfile.TemporaryDirectory(prefix="cswf-backtest-") as folder:
        scratch = _scratch_copy(con, Path(folder) / "scratch.duckdb")
        try:
            return _run(scratch, settings, running, chosen, list(ticks), sample)
        finally:
            scratch.close()


def _scratch_copy(con: duckdb.DuckDBPyConnection, path: Path) -> duckdb.DuckDBPyConnection:
    """A copy of every table of `con`'s database in a new file, opened for writing."""
    source = con.execute("SELECT current_database()").fetchall()[0][0]
    quoted = str(path).replace("'", "''")
    con.execute(f"ATTACH '{quoted}' AS backtest_scratch (READ_WRITE)")
    try:
        con.execute(f'COPY FROM DATABASE "{source}" TO backtest_scratch')
    finally:
        con.execute("DETACH backtest_scratch")
    return duckdb.connect(str(path))


def _run(
    scratch: duckdb.DuckDBPyConnection,
    settings: Settings,
    running: list[LoadedWorkflow],
    chosen: LoadedWorkflow,
    ticks: list[datetime],
    sample: int,
) -> Backtest:
    # As `cswf run`: deploy requests without a time count as arriving by the last tick.
    ingest_all(scratch, settings.landing_path, ticks[-1], [w.name for w in running])
    ensure_engine_tables(scratch)
    # A person's open hold on the working database is about live ticks, not this run.
    scratch.execute("DELETE FROM tick_holds WHERE status = 'held'")
    store_facts(scratch, settings, ticks)
    before = load_state(scratch, ticks[0]).filter(
        (pl.col("workflow") == chosen.name) & (pl.col("status") == "active")
    )
    transitions, actions = [], []
    control: set[str] = set()

    def keep(_: WriteOutcome, result: TickResult) -> None:
        mine = pl.col("workflow") == chosen.name
        transitions.append(result.transitions.filter(mine))
        actions.append(result.actions.filter(mine))
        held_out = result.state.filter(mine & (pl.col(COHORT) == CONTROL))
        control.update(held_out["enrollment_id"].to_list())

    # Rewriting the copy's stored ticks is how the backtest runs: not news to announce.
    with _quiet_rewrites():
        summary = run_ticks(scratch, settings, running, ticks, on_tick=keep, rewrite_delivered=True)
    moved = pl.concat(transitions)
    objective = None
    condition = chosen.spec.objective.condition if chosen.spec.objective else None
    if condition is not None:
        ran = ticks if summary.held is None else [t for t in ticks if t <= summary.held]
        objective = _objective_movement(
            scratch, settings, taken_as_enabled(chosen), ran, moved, before[PARTICIPANT], control
        )
    return Backtest(
        workflow=chosen.name,
        start=ticks[0],
        end=ticks[-1],
        ticks=ticks,
        transitions=moved,
        actions=pl.concat(actions),
        objective=objective,
        objective_condition=condition.describe() if condition else None,
        held=summary.held,
        sample_size=sample,
        control=frozenset(control),
    )


@contextmanager
def _quiet_rewrites() -> Iterator[None]:
    logger = logging.getLogger(run_ticks.__module__)

    def announces_a_rewrite(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("rewriting from tick")

    logger.addFilter(announces_a_rewrite)
    try:
        yield
    finally:
        logger.removeFilter(announces_a_rewrite)


def _objective_movement(
    scratch: duckdb.DuckDBPyConnection,
    settings: Settings,
    workflow: LoadedWorkflow,
    ticks: list[datetime],
    transitions: pl.DataFrame,
    inside: pl.Series,
    control: set[str],
) -> pl.DataFrame:
    """The objective's met rate at the first and the last tick, per group: who entered, who was
    inside already, who met the entry conditions at some tick but did not enter, the rest."""
    entry = verdict_column("entry", workflow.name)
    objective = verdict_column("objective", workflow.name)
    qualified: set[str] = set()
    first = last = None
    model = FACT_MODELS[workflow.spec.object]
    prev_facts = tick_facts(scratch, settings, workflow.spec.object, ticks[0])[1]
    for chunk in tick_chunks(ticks):  # facts built a chunk of days at a time, as a run does
        built = build_facts(scratch, chunk, settings.facts_sql_path, model,
                            calendar=settings.calendar)
        for as_of in chunk:  # a loop over ticks; each evaluates every participant at once
            now = apply_field_updates(
                built.filter(pl.col("as_of") == as_of), load_field_updates(scratch, as_of), as_of
            ).facts
            verdicts = evaluate(now, prev_facts, [workflow])
            qualified.update(verdicts.filter(pl.col(entry))[PARTICIPANT].to_list())
            met = verdicts.select(PARTICIPANT, pl.col(objective).alias("met"))
            first = met if first is None else first
            last, prev_facts = met, now
    assert first is not None and last is not None
    entries = transitions.filter(pl.col("transition") == "entered")
    held_out = entries.filter(pl.col("enrollment_id").is_in(list(control)))[PARTICIPANT]
    entered = entries[PARTICIPANT]
    grouped = (
        last.rename({"met": "met_at_end"})
        .join(first.rename({"met": "met_at_start"}), on=PARTICIPANT, how="left")
        .with_columns(
            pl.when(pl.col(PARTICIPANT).is_in(held_out.implode()))
            .then(pl.lit(GROUPS[1]))
            .when(pl.col(PARTICIPANT).is_in(entered.implode()))
            .then(pl.lit(GROUPS[0]))
            .when(pl.col(PARTICIPANT).is_in(inside.implode()))
            .then(pl.lit(GROUPS[2]))
            .when(
                pl.col(PARTICIPANT).is_in(pl.Series(sorted(qualified), dtype=pl.String).implode())
            )
            .then(pl.lit(GROUPS[3]))
            .otherwise(pl.lit(GROUPS[4]))
            .alias("group"),
            pl.col("met_at_start").fill_null(False),
        )
    )
    rates = (
        grouped.group_by("group")
        .agg(
            pl.len().cast(pl.Int64).alias("participants"),
            pl.col("met_at_start").mean().round(3).alias("met_at_start"),
            pl.col("met_at_end").mean().round(3).alias("met_at_end"),
        )
        .with_columns((pl.col("met_at_end") - pl.col("met_at_start")).round(3).alias("change"))
    )
    order = pl.DataFrame({"group": list(GROUPS)})
    return order.join(rates, on="group", how="inner", maintain_order="left")
