"""Move active enrollments through the steps of a flow, one step at a time for all of them.

Time is scheduled, not observed: a participant reaches a step at the moment the previous step
finished on schedule (`wait_until`), so a 3-day delay after a day-0 email ends exactly 3 days
after entry whatever the tick cadence, and a replay lands every action at the same tick.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from cswf_pipelines.actions.build import build_step_actions
from cswf_pipelines.engine.context import TickContext
from cswf_pipelines.specs.loader import LoadedWorkflow
from cswf_pipelines.specs.workflow import ActionStep, DelayStep, Step

FLOW_END = "(end of flow)"


@dataclass
class FlowOutput:
    active: pl.DataFrame
    actions: list[pl.DataFrame]
    transitions: list[pl.DataFrame]


def arrival(step: Step | None, reached_at: pl.Expr) -> pl.Expr:
    """`wait_until` for a participant reaching `step` at `reached_at`."""
    if isinstance(step, DelayStep):
        if step.delay.days is not None:
            return reached_at + pl.duration(days=step.delay.days)
        return reached_at.dt.offset_by(f"{step.delay.months}mo")
    return reached_at


def step_name(workflow: LoadedWorkflow, index: int) -> str:
    steps = workflow.spec.steps
    return steps[index].name if index < len(steps) else FLOW_END


def advance_flow(
    active: pl.DataFrame, context: TickContext, workflow: LoadedWorkflow
) -> FlowOutput:
    """Run every step that is due; loops over steps, never over participants."""
    steps = workflow.spec.steps
    as_of = context.as_of
    actions: list[pl.DataFrame] = []
    transitions: list[pl.DataFrame] = []
    if active.is_empty():
        return FlowOutput(active, actions, transitions)
    # Steps in order: a participant that runs step k reaches k + 1 in the same pass.
    first_due = active.filter(pl.col("wait_until") <= as_of)["step"].min()
    if first_due is None:
        return FlowOutput(active, actions, transitions)
    for index, step in enumerate(steps):
        if index < first_due:  # type: ignore[operator]
            continue
        due = (pl.col("step") == index) & (pl.col("wait_until") <= as_of)
        ready = active.filter(due)
        if ready.is_empty():
            continue
        if isinstance(step, ActionStep):
            actions.append(build_step_actions(ready, context, workflow, index, step))
            reason = f"ran {len(step.actions)} action(s) of step '{step.name}'"
        else:
            reason = f"delay '{step.name}' ({step.delay.describe()}) elapsed"
        following = steps[index + 1] if index + 1 < len(steps) else None
        transitions.append(ready.select(
            "workflow", "version", "participant_id", "enrollment_id",
            pl.lit("advanced").alias("transition"),
            pl.lit(index, dtype=pl.Int32).alias("step"),
            pl.lit(step.name).alias("step_name"),
            pl.lit(reason).alias("reason"),
        ))
        active = active.with_columns(
            pl.when(due).then(pl.lit(index + 1, dtype=pl.Int32)).otherwise("step").alias("step"),
            pl.when(due).then(pl.lit(step_name(workflow, index + 1)))
            .otherwise("step_name").alias("step_name"),
            pl.when(due).then(arrival(following, pl.col("wait_until")))
            .otherwise("wait_until").alias("wait_until"),
            pl.when(due).then(pl.lit(as_of)).otherwise("updated_at").alias("updated_at"),
        )
    return FlowOutput(active, actions, transitions)
