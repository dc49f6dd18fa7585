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
from datetime import datetime
from zoneinfo import available_timezones

import numpy as np
import polars as pl

from cswf.engine.beside import Rows
from cswf.engine.context import TickContext
from cswf.engine.emit import build_step_actions
from cswf.engine.evaluate import verdict_column
from cswf.engine.failures import STEPS, evaluating
from cswf.engine.frames import ROW, moment, pick
from cswf.engine.phases import phase
from cswf.specs.action import asked_event
from cswf.specs.flow import Flow, FlowNode
from cswf.specs.loader import LoadedWorkflow
from cswf.specs.workflow import (
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
    actions: list[Rows]
    transitions: list[pl.DataFrame]
    occupied: set[int] = field(default_factory=set)  # nodes someone is at: the rest are skipped


def arrival(flow: Flow, index: int, reached_at: pl.Expr, zones: Sequence[str] = ()) -> pl.Expr:
    """`wait_until` for a participant reaching node `index` at `reached_at`.

    Delays are hours, or calendar days or months in the participant's time zone (`zones`: the
    distinct values of the frame's `__tz` column), so "3 days" lands at the same local time
    across a daylight-saving change; without a zone, in UTC.
    """
    step = flow[index].step if index < len(flow) else None
    if isinstance(step, DelayStep):
        shift = step.delay.offset
        landed = reached_at.dt.offset_by(shift)
        for zone in zones:  # a handful of zones, never a loop over participants
            local = (reached_at.dt.replace_time_zone("UTC").dt.convert_time_zone(zone)
                     .dt.offset_by(shift).dt.convert_time_zone("UTC").dt.replace_time_zone(None))
            landed = pl.when(pl.col(ZONE) == zone).then(local).otherwise(landed)
        return landed
    if isinstance(step, WaitStep):
        return reached_at + pl.duration(days=step.wait.max_days)
    return reached_at


def arrival_part(flow: Flow, index: int) -> str:
    """The part of the spec `arrival` reads for node `index` (what an error there names)."""
    step = flow[index].step if index < len(flow) else None
    if isinstance(step, DelayStep):
        return f"{flow[index].loc}.delay"
    if isinstance(step, WaitStep):
        return f"{flow[index].loc}.wait.max_days"
    return flow[index].loc if index < len(flow) else "the end of the flow"


LATEST = datetime.max.replace(microsecond=0)  # Python's datetimes (and their readers) end here


def check_schedule(frame: pl.DataFrame) -> None:
    """A `wait_until` past LATEST would be written, then fail whoever reads it (a panic in
    Polars): fail now, inside the tick, where the step is named."""
    if (frame["wait_until"] > LATEST).any():
        raise ValueError(f"it would end after the year {LATEST.year}")


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
    """Run every node that is due; loops over nodes, never over participants.

    Who is where is a boolean mask over `out.active` (a move rewrites rows in place and never
    reorders them), so a node nobody is due at costs a comparison, not a query.
    """
    flow = workflow.flow
    out = FlowOutput(active, [], [])
    if active.is_empty():
        return out
    out.occupied = set(np.unique(active["step"].to_numpy()).tolist())
    for node in flow:
        if node.index not in out.occupied:
            continue
        here = out.active["step"] == node.index
        if not here.any():
            continue
        with evaluating(step_part(node)):
            _run_node(out, here, node, context, workflow)
    return out


def _run_node(out: FlowOutput, here: pl.Series, node: FlowNode, context: TickContext,
              workflow: LoadedWorkflow) -> None:
    """Run the participants at `node` that are due (see advance_flow)."""
    flow, as_of = workflow.flow, context.as_of
    due = here & (out.active["wait_until"] <= as_of)  # (null counts as false throughout)
    if isinstance(node.step, ActionStep):
        if not due.any():
            return
        out.actions.append(_emit(out.active.filter(due), context, workflow, node))
        _move(out, due, flow, node, node.next, pl.col("wait_until"), context,
              f"ran {len(node.step.actions)} action(s) of step '{node.name}'")
    elif isinstance(node.step, DelayStep):
        _move(out, due, flow, node, node.next, pl.col("wait_until"), context,
              f"delay '{node.name}' ({node.step.delay.describe()}) elapsed")
    elif isinstance(node.step, WaitStep):
        wait = node.step.wait
        met = (_action_result(out.active, here, workflow, wait.on_action, context)
               if wait.on_action
               else _verdict(out.active, here, context, wait_column(workflow.name, node.index)))
        what = (f"{wait.action} {wait.result}" if wait.on_action else "the condition")
        timed_out = due & ~met  # both masks before the first move rewrites the rows
        _move(out, met, flow, node, node.next, moment(as_of), context,
              f"wait '{node.name}' ended: {what}")
        _move(out, timed_out, flow, node, node.next, pl.col("wait_until"),
              context, f"wait '{node.name}' ended: {wait.max_days} days passed without {what}")
    elif isinstance(node.step, BranchStep):
        _branch(out, due, flow, node, context, workflow)


def step_part(node: FlowNode) -> str:
    """A step as an error names it (engine/failures.py)."""
    return f"{node.loc} (step '{node.name}')"


def _emit(ready: pl.DataFrame, context: TickContext, workflow: LoadedWorkflow,
          node: FlowNode) -> Rows:
    """The action rows of the participants `ready` at an action step: built beside the tick's
    thread when it has a second one (engine/beside.py), which then goes on with the flow."""
    if context.beside is None:
        with phase("emit"):
            return _actions(ready, context, workflow, node)
    return context.beside.submit("emit (beside)", _actions, ready, context, workflow, node)


def _actions(ready: pl.DataFrame, context: TickContext, workflow: LoadedWorkflow,
             node: FlowNode) -> pl.DataFrame:
    """`build_step_actions`, failing as it would on the tick's thread: naming the workflow
    and the step."""
    assert isinstance(node.step, ActionStep)
    with evaluating(STEPS, workflow=workflow.name), evaluating(step_part(node)):
        return build_step_actions(ready, context, workflow, node.index, node.step)


def _branch(out: FlowOutput, ready: pl.Series, flow: Flow, node: FlowNode,
            context: TickContext, workflow: LoadedWorkflow) -> None:
    """Ordered checks: the first that holds takes its path; none holding goes on after it."""
    assert isinstance(node.step, BranchStep)
    undecided = ready
    for k, (path, target) in enumerate(zip(node.step.branch, node.targets, strict=True)):
        if not undecided.any():
            return
        holds = (_action_result(out.active, undecided, workflow, path.on_action, context)
                 if path.on_action
                 else _verdict(out.active, undecided, context,
                               check_column(workflow.name, node.index, k)))
        taking = undecided & holds
        undecided = undecided & ~holds
        _move(out, taking, flow, node, target, pl.col("wait_until"),
              context, f"branch '{node.name}' took path '{path.name}'")
    _move(out, undecided, flow, node, node.next, pl.col("wait_until"), context,
          f"branch '{node.name}': no check held, the flow goes on")


def _verdict(rows: pl.DataFrame, within: pl.Series, context: TickContext, column: str
             ) -> pl.Series:
    """The verdict for the rows under `within` (false elsewhere)."""
    where = np.flatnonzero(within.fill_null(False).to_numpy())
    found = context.verdicts[column].gather(rows[ROW].gather(where)).fill_null(False)
    return _scatter(rows.height, where, found)


def _action_result(rows: pl.DataFrame, within: pl.Series, workflow: LoadedWorkflow,
                   ref: ActionResult | None, context: TickContext) -> pl.Series:
    """Whether each enrollment under `within` has the result for its earlier action, from the
    action events (false elsewhere): only those rows' ids are built and looked up."""
    assert ref is not None
    address = workflow.flow.address(ref)
    happened, negated = asked_event(ref.result)
    where = np.flatnonzero(within.fill_null(False).to_numpy())
    seen = context.seen_enrollments(happened, workflow.name, address.key)
    hit = rows["enrollment_id"].gather(where).is_in(seen.implode())
    return _scatter(rows.height, where, ~hit if negated else hit)


def _scatter(height: int, where: np.ndarray, values: pl.Series) -> pl.Series:
    """A mask of `height` rows holding `values` at `where`, false elsewhere."""
    mask = np.zeros(height, dtype=bool)
    mask[where] = values.to_numpy()
    return pl.Series(mask)


_LOGGED = ("workflow", "version", "participant_id", "enrollment_id")


def _move(out: FlowOutput, mask: pl.Series, flow: Flow, node: FlowNode, target: int,
          reached_at: pl.Expr, context: TickContext, reason: str) -> None:
    """Send the rows of `out.active` under `mask` from `node` to `target`, reached at
    `reached_at`, and log the transition."""
    if not mask.any():
        return
    with phase("frames"):
        out.transitions.append(pick(out.active, mask, _LOGGED).with_columns(
            pl.lit("advanced").alias("transition"),
            pl.lit(node.index, dtype=pl.Int32).alias("step"),
            pl.lit(node.name).alias("step_name"),
            pl.lit(reason).alias("reason"),
        ))
    with evaluating(arrival_part(flow, target)):  # a delay too long for a datetime
        frame, zones = out.active, []
        if needs_zone(flow, target):
            frame, zones = _zoned(frame, mask, context)
        hit = pl.lit(mask)
        # Arrival is computed for the moving rows only (null elsewhere): a local time that
        # does not exist must not fail a row that stays where it is.
        until = arrival(flow, target, pl.when(hit).then(reached_at), zones)
        out.occupied.add(target)
        moved = {
            "step": pl.when(hit).then(pl.lit(target, dtype=pl.Int32)).otherwise("step"),
            "step_name": pl.when(hit).then(pl.lit(flow.name_at(target))).otherwise("step_name"),
            "wait_until": pl.when(hit).then(until).otherwise("wait_until"),
            "updated_at": pl.when(hit).then(moment(context.as_of)).otherwise("updated_at"),
        }
        out.active = frame.select(moved[c].alias(c) if c in moved else pl.col(c)
                                  for c in out.active.columns)  # (drops `__tz`)
        check_schedule(out.active)


def _zoned(frame: pl.DataFrame, mask: pl.Series, context: TickContext
           ) -> tuple[pl.DataFrame, list[str]]:
    """`frame` with its time zones (`__tz`) and the zones of the rows under `mask`."""
    if TIME_ZONE not in context.facts.columns:
        return frame, []
    zone = context.facts[TIME_ZONE].gather(frame[ROW]).alias(ZONE)
    present = zone.filter(mask).unique().to_list()
    zones = sorted(z for z in present if z and z not in ("UTC", "Etc/UTC"))
    return frame.hstack([zone]), [z for z in zones if z in KNOWN_ZONES]
