"""Move active enrollments through the nodes of a flow, one node at a time for all of them.

Time is scheduled, not observed: a participant reaches a node at the moment the previous node
finished on schedule (`wait_until`), so a 3-day delay after a day-0 email ends exactly 3 days
after entry whatever the tick cadence, and a replay lands every action at the same tick. A wait
that is satisfied ends when the tick sees it, so what follows is scheduled from that tick.

Nodes are visited in order and every jump goes forward (see specs/flow.py), so one pass moves each
participant as far as it may go in this tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import available_timezones

import polars as pl

from cswf_pipelines.actions.build import build_step_actions
from cswf_pipelines.engine.context import TickContext
from cswf_pipelines.engine.evaluate import verdict_column
from cswf_pipelines.engine.frames import ROW
from cswf_pipelines.specs.flow import Flow, FlowNode
from cswf_pipelines.specs.loader import LoadedWorkflow
from cswf_pipelines.specs.workflow import (
    ActionResult,
    ActionStep,
    BranchStep,
    DelayStep,
    WaitStep,
)

TIME_ZONE = "time_zone"  # the fact field naming a participant's IANA time zone
ZONE = "__tz"
KNOWN_ZONES = frozenset(available_timezones())


@dataclass
class FlowOutput:
    active: pl.DataFrame
    actions: list[pl.DataFrame]
    transitions: list[pl.DataFrame]
    occupied: set[int] = field(default_factory=set)  # nodes someone is at: the rest are skipped


def arrival(flow: Flow, index: int, reached_at: pl.Expr, zones: Sequence[str] = ()) -> pl.Expr:
    """`wait_until` for a participant reaching node `index` at `reached_at`.

    Delays are calendar days or months in the participant's time zone (`zones`: the distinct
    values of the frame's `__tz` column), so "3 days" lands at the same local time across a
    daylight-saving change; without a zone, in UTC.
    """
    step = flow[index].step if index < len(flow) else None
    if isinstance(step, DelayStep):
        shift = (f"{step.delay.days}d" if step.delay.days is not None
                 else f"{step.delay.months}mo")
        landed = reached_at.dt.offset_by(shift)
        for zone in zones:  # a handful of zones, never a loop over participants
            local = (reached_at.dt.replace_time_zone("UTC").dt.convert_time_zone(zone)
                     .dt.offset_by(shift).dt.convert_time_zone("UTC").dt.replace_time_zone(None))
            landed = pl.when(pl.col(ZONE) == zone).then(local).otherwise(landed)
        return landed
    if isinstance(step, WaitStep):
        return reached_at + pl.duration(days=step.wait.max_days)
    return reached_at


def needs_zone(flow: Flow, index: int) -> bool:
    return index < len(flow) and isinstance(flow[index].step, DelayStep)


def with_zones(rows: pl.DataFrame, context: TickContext) -> tuple[pl.DataFrame, list[str]]:
    """`rows` with their time zone (`__tz`, from the facts' time_zone) and the zones present."""
    if TIME_ZONE not in context.facts.columns or rows.is_empty():
        return rows, []
    zoned = rows.with_columns(context.facts_of(rows, [TIME_ZONE])[TIME_ZONE].alias(ZONE))
    zones = sorted(z for z in zoned[ZONE].unique().to_list() if z and z not in ("UTC", "Etc/UTC"))
    return zoned, [z for z in zones if z in KNOWN_ZONES]


def wait_column(workflow: str, node: int) -> str:
    return verdict_column(f"wait@{node}", workflow)


def check_column(workflow: str, node: int, check: int) -> str:
    return verdict_column(f"branch@{node}.{check}", workflow)


def advance_flow(
    active: pl.DataFrame, context: TickContext, workflow: LoadedWorkflow
) -> FlowOutput:
    """Run every node that is due; loops over nodes, never over participants."""
    flow, as_of = workflow.flow, context.as_of
    out = FlowOutput(active, [], [])
    if active.is_empty():
        return out
    out.occupied = set(active["step"].unique())
    for node in flow:
        if node.index not in out.occupied:
            continue
        here = out.active.filter(pl.col("step") == node.index)
        if here.is_empty():
            continue
        due = here["wait_until"] <= as_of
        if isinstance(node.step, ActionStep):
            ready = here.filter(due)
            if ready.is_empty():
                continue
            out.actions.append(build_step_actions(ready, context, workflow, node.index,
                                                  node.step))
            _move(out, ready, flow, node, node.next, pl.col("wait_until"), context,
                  f"ran {len(node.step.actions)} action(s) of step '{node.name}'")
        elif isinstance(node.step, DelayStep):
            ready = here.filter(due)
            _move(out, ready, flow, node, node.next, pl.col("wait_until"), context,
                  f"delay '{node.name}' ({node.step.delay.describe()}) elapsed")
        elif isinstance(node.step, WaitStep):
            wait = node.step.wait
            met = (_action_result(here, flow, wait.on_action, context) if wait.on_action
                   else _verdict(here, context, wait_column(workflow.name, node.index)))
            what = (f"{wait.action} {wait.result}" if wait.on_action else "the condition")
            _move(out, here.filter(met), flow, node, node.next, pl.lit(as_of), context,
                  f"wait '{node.name}' ended: {what}")
            _move(out, here.filter(~met & due), flow, node, node.next, pl.col("wait_until"),
                  context, f"wait '{node.name}' ended: {wait.max_days} days passed without "
                         f"{what}")
        elif isinstance(node.step, BranchStep):
            _branch(out, here.filter(due), flow, node, context, workflow)
    return out


def _branch(out: FlowOutput, ready: pl.DataFrame, flow: Flow, node: FlowNode,
            context: TickContext, workflow: LoadedWorkflow) -> None:
    """Ordered checks: the first that holds takes its path; none holding goes on after it."""
    assert isinstance(node.step, BranchStep)
    undecided = ready
    for k, (path, target) in enumerate(zip(node.step.branch, node.targets, strict=True)):
        if undecided.is_empty():
            return
        holds = (_action_result(undecided, flow, path.on_action, context) if path.on_action
                 else _verdict(undecided, context, check_column(workflow.name, node.index, k)))
        _move(out, undecided.filter(holds), flow, node, target, pl.col("wait_until"),
              context, f"branch '{node.name}' took path '{path.name}'")
        undecided = undecided.filter(~holds)
    _move(out, undecided, flow, node, node.next, pl.col("wait_until"), context,
          f"branch '{node.name}': no check held, the flow goes on")


def _verdict(rows: pl.DataFrame, context: TickContext, column: str) -> pl.Series:
    return rows.select(
        pl.lit(context.verdicts[column]).gather(pl.col(ROW)).fill_null(False)
    ).to_series()


def _action_result(rows: pl.DataFrame, flow: Flow, ref: ActionResult | None,
                   context: TickContext) -> pl.Series:
    """Whether each enrollment's earlier action has the result, from the action events."""
    assert ref is not None
    address = flow.address(ref)
    negated = ref.result.startswith("not_") or ref.result == "incomplete"
    happened = "completed" if ref.result == "incomplete" else ref.result.removeprefix("not_")
    ids = rows.select(pl.col("enrollment_id") + f"/{address.key}").to_series()
    events = context.events
    seen = events.filter(
        (pl.col("event_type") == happened) & (pl.col("occurred_at") <= context.as_of)
    )["action_id"]
    hit = ids.is_in(seen.implode())
    return ~hit if negated else hit


def _move(out: FlowOutput, rows: pl.DataFrame, flow: Flow, node: FlowNode, target: int,
          reached_at: pl.Expr, context: TickContext, reason: str) -> None:
    """Send `rows` from `node` to `target`, reached at `reached_at`, and log the transition."""
    if rows.is_empty():
        return
    out.transitions.append(rows.select(
        "workflow", "version", "participant_id", "enrollment_id",
        pl.lit("advanced").alias("transition"),
        pl.lit(node.index, dtype=pl.Int32).alias("step"),
        pl.lit(node.name).alias("step_name"),
        pl.lit(reason).alias("reason"),
    ))
    zones: list[str] = []
    if needs_zone(flow, target):
        rows, zones = with_zones(rows, context)
    moved = rows.with_columns(  # with_columns broadcasts a literal arrival time
        pl.lit(target, dtype=pl.Int32).alias("__to"),
        arrival(flow, target, reached_at, zones).alias("__until"),
    ).select("enrollment_id", "__to", "__until")
    out.occupied.add(target)
    joined = out.active.join(moved, on="enrollment_id", how="left", maintain_order="left")
    hit = pl.col("__to").is_not_null()
    out.active = joined.with_columns(
        pl.when(hit).then(pl.col("__to")).otherwise("step").alias("step"),
        pl.when(hit).then(pl.lit(flow.name_at(target))).otherwise("step_name")
        .alias("step_name"),
        pl.when(hit).then(pl.col("__until")).otherwise("wait_until").alias("wait_until"),
        pl.when(hit).then(pl.lit(context.as_of)).otherwise("updated_at").alias("updated_at"),
    ).drop("__to", "__until")
