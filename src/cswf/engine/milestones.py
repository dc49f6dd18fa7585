"""Natero's milestones: checkpoints of an enrollment, each with its own task.

An enrollment of a workflow with milestones gets one task for the whole workflow when it enters
(the owner group subscribes to it) and one task per milestone when the milestone triggers,
`trigger_days` after entry; the milestone is done when its task is completed (a `completed`
action event). The enrollment carries its current milestone and when that is due; it completes
only once the flow has ended and every milestone is done.

Loops over milestones, never over participants.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from cswf.engine.context import TickContext
from cswf.engine.emit import owner_columns
from cswf.engine.frames import ACTION_SCHEMA, conform
from cswf.specs.loader import LoadedWorkflow
from cswf.specs.references import Reference, as_payload
from cswf.specs.workflow import Milestone, Owner

WORKFLOW_TASK = "workflow"
MILESTONES = ("milestones_started", "milestones_done", "current_milestone", "milestone_due_at")


def milestone_key(milestone: Milestone) -> str:
    return f"milestone.{milestone.name}"


def workflow_tasks(entered: pl.DataFrame, context: TickContext, workflow: LoadedWorkflow
                   ) -> pl.DataFrame | None:
    """The task for the whole workflow, one per new enrollment of a workflow with milestones."""
    spec = workflow.spec
    if not spec.milestones or entered.is_empty():
        return None
    subscribers = [f"group:{spec.owner.group}"] if spec.owner.group else []
    last_due = max(m.due_days for m in spec.milestones)
    names = [m.name for m in spec.milestones_in_order()]
    return _tasks(
        entered, context, workflow, key=WORKFLOW_TASK, step_name="(workflow task)", index=None,
        title=f"{spec.description or spec.name}", owner=spec.owner, due_days=last_due,
        body=f"Milestones: {', '.join(names)}.",
        payload={"kind": "workflow", "milestones": names, "subscribers": subscribers,
                 **_links(spec.references)},
    )


def advance_milestones(active: pl.DataFrame, context: TickContext, workflow: LoadedWorkflow
                       ) -> tuple[pl.DataFrame, list[pl.DataFrame], list[pl.DataFrame]]:
    """Start the milestones that are due, record those whose task was completed, and set the
    current milestone. Returns (active, actions, transitions)."""
    order = workflow.spec.milestones_in_order()
    if not order or active.is_empty():
        return active, [], []
    as_of = context.as_of
    actions, transitions = [], []
    started = pl.col("milestones_started").fill_null(0)
    active = active.with_columns(started.alias("milestones_started"),
                                 pl.col("milestones_done").fill_null([]))
    for k, milestone in enumerate(order):  # several may start in one tick, in order
        starts = (pl.col("milestones_started") == k) & (
            pl.col("entered_at") + pl.duration(days=milestone.trigger_days) <= as_of)
        rows = active.filter(starts)
        if rows.is_empty():
            continue
        actions.append(_tasks(
            rows, context, workflow, key=milestone_key(milestone),
            step_name=f"milestone: {milestone.name}", index=k, title=milestone.task_title,
            owner=milestone.owner or workflow.spec.owner, due_days=milestone.due_days,
            body=f"Milestone '{milestone.name}' of {workflow.name}: due day "
                 f"{milestone.due_days} after entry.",
            payload={"kind": "milestone", "milestone": milestone.name,
                     "subtasks": milestone.subtasks, "trigger_days": milestone.trigger_days,
                     "due_days": milestone.due_days,
                     **_links(milestone.references, workflow.spec.references)},
        ))
        transitions.append(_log(rows, "milestone_started", milestone,
                                f"milestone '{milestone.name}' started (day "
                                f"{milestone.trigger_days}); its task is due day "
                                f"{milestone.due_days}"))
        active = active.with_columns(
            pl.when(starts).then(k + 1).otherwise("milestones_started")
            .cast(pl.Int32).alias("milestones_started"),
            pl.when(starts).then(pl.lit(as_of)).otherwise("updated_at").alias("updated_at"),
        )
    for k, milestone in enumerate(order):
        completed = context.seen_enrollments("completed", workflow.name,
                                             milestone_key(milestone))
        if completed.is_empty():
            continue
        newly = (
            (pl.col("milestones_started") > k)
            & ~pl.col("milestones_done").list.contains(milestone.name)
            & pl.col("enrollment_id").is_in(completed.implode())
        )
        rows = active.filter(newly)
        if rows.is_empty():
            continue
        transitions.append(_log(rows, "milestone_done", milestone,
                                f"milestone '{milestone.name}' done: its task was completed"))
        active = active.with_columns(
            pl.when(newly).then(pl.col("milestones_done").list.concat(pl.lit([milestone.name])))
            .otherwise("milestones_done").alias("milestones_done"),
            pl.when(newly).then(pl.lit(as_of)).otherwise("updated_at").alias("updated_at"),
        )
    return _set_current(active, order, as_of), actions, transitions


def all_done(rows: pl.DataFrame, workflow: LoadedWorkflow) -> pl.Series:
    """Whether each enrollment has every milestone done (always true without milestones)."""
    count = len(workflow.spec.milestones)
    if not count:
        return pl.Series(np.ones(rows.height, dtype=bool))
    return (rows["milestones_done"].list.len().fill_null(0) == count).fill_null(False)


def _set_current(active: pl.DataFrame, order: list[Milestone], as_of: object) -> pl.DataFrame:
    current: pl.Expr = pl.lit(None, dtype=pl.String)
    due: pl.Expr = pl.lit(None, dtype=pl.Datetime("us"))
    for k, milestone in reversed(list(enumerate(order))):  # the first open one wins
        is_open = (pl.col("milestones_started") > k) & ~pl.col("milestones_done").list.contains(
            milestone.name)
        current = pl.when(is_open).then(pl.lit(milestone.name)).otherwise(current)
        due = pl.when(is_open).then(
            pl.col("entered_at") + pl.duration(days=milestone.due_days)).otherwise(due)
    changed = (pl.col("current_milestone").ne_missing(current)
               | pl.col("milestone_due_at").ne_missing(due))
    return active.with_columns(
        current.alias("current_milestone"),
        due.alias("milestone_due_at"),
        pl.when(changed).then(pl.lit(as_of)).otherwise("updated_at").alias("updated_at"),
    )


def _links(*groups: list[Reference]) -> dict[str, object]:
    """The payload's `references` (none without any: payloads stay as they were)."""
    links = as_payload(*groups)
    return {"references": links} if links else {}


def _tasks(rows: pl.DataFrame, context: TickContext, workflow: LoadedWorkflow, *, key: str,
           step_name: str, index: int | None, title: str, owner: Owner, due_days: int, body: str,
           payload: dict[str, object]) -> pl.DataFrame:
    spec = workflow.spec
    facts = context.facts_of(rows, [owner.field]) if owner.field else None
    base = rows.select("enrollment_id", "participant_id", "version", "entered_at")
    if facts is not None:
        base = pl.concat([base, facts], how="horizontal")
    frame = base.with_columns(
        (pl.col("enrollment_id") + f"/{key}").alias("action_id"),
        pl.lit(context.as_of).alias("tick"),
        pl.lit(spec.name).alias("workflow"),
        pl.lit(None, dtype=pl.Int32).alias("step"),
        pl.lit(step_name).alias("step_name"),
        pl.lit(index, dtype=pl.Int32).alias("action_index"),
        pl.lit("task").alias("action_type"),
        pl.lit(spec.category or context.default_category).alias("category"),
        *(expr.alias(name) for name, expr in owner_columns(owner).items()),
        (pl.col("entered_at") + pl.duration(days=due_days)).alias("due_at"),
        pl.lit(title).alias("subject"),
        pl.lit(body).alias("body"),
        pl.lit(json.dumps(payload, sort_keys=True)).alias("payload"),
        pl.lit("pending").alias("status"),
        pl.lit("retry").alias("on_error"),
    )
    return conform(frame, ACTION_SCHEMA)


def _log(rows: pl.DataFrame, kind: str, milestone: Milestone, reason: str) -> pl.DataFrame:
    return rows.select(
        "workflow", "version", "participant_id", "enrollment_id",
        pl.lit(kind).alias("transition"),
        "step", "step_name",
        pl.lit(reason).alias("reason"),
        pl.lit(json.dumps({"milestone": milestone.name})).alias("evidence"),
    )
