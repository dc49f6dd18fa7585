"""One tick: (previous state, facts, previous facts, events, specs, as_of) -> (state, actions,
transitions).

Pure: no clock, no files, no database. Loops over workflows and steps; every step of the way is a
Polars operation over all participants of a workflow at once.

Participants are addressed by their row in the facts (`__row`): verdicts and fact values are
gathered by position, so the work per workflow scales with its own enrollments, not with the
size of the book, and no workflow hash-joins the full facts.

Order within a workflow at a tick:
1. a disabled workflow exits everyone;
2. manual deploys are honoured or refused; an enabled workflow admits participants that meet
   the entry conditions (and not the exit conditions), if re-entry and the launch option allow,
   unless it takes manual deploys only (`auto_deploy: false`); a workflow with milestones gives
   each new enrollment its workflow task; a workflow with a holdout puts a hashed share of those
   it admits in its control group (engine/holdout.py); manual removals exit those inside;
3. exit conditions remove participants wherever they are, even mid-delay, and so does an
   action that finally failed with `on_error: exit`;
4. an objective newly met is recorded, and exits the participant if the spec says so;
5. due steps run (actions are emitted, delays scheduled), except for the control group, whose
   enrollments complete when their holdout window ends;
6. milestones that are due start (their task is emitted), completed ones are recorded;
7. participants past the last step, with every milestone done, complete;
8. closed participants that no longer qualify are marked as having stopped qualifying
   (re-entry `multiple` needs that before they may enter again).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

import numpy as np
import polars as pl

from cswf.engine.assign import WORKLOAD_SCHEMA, assign_tasks
from cswf.engine.beside import Beside, Rows, done
from cswf.engine.bounds import RenderBudget
from cswf.engine.context import TickContext
from cswf.engine.evaluate import ENTRY_BEFORE, PARTICIPANT, evaluate, verdict_column
from cswf.engine.failures import STEPS, blame, evaluating, is_panic
from cswf.engine.flow import (
    advance_flow,
    arrival,
    arrival_part,
    check_schedule,
    needs_zone,
    with_zones,
)
from cswf.engine.frames import (
    ACTION_SCHEMA,
    ENROLLMENT_SCHEMA,
    ROW,
    TRANSITION_SCHEMA,
    WORKING_SCHEMA,
    conform,
    conforming,
    empty,
    moment,
)
from cswf.engine.holdout import CONTROL, assign_cohorts, held_out, window_ended
from cswf.engine.milestones import advance_milestones, all_done, workflow_tasks
from cswf.engine.phases import Phases, collecting, phase, timed_elsewhere
from cswf.engine.stage import stage_fields
from cswf.specs.flow import FlowNode, action_key
from cswf.specs.groups import UserGroup
from cswf.specs.loader import LoadedWorkflow
from cswf.specs.workflow import Reentry, ReentryMode, Workflow, WorkflowState

ACTIVE, COMPLETED, EXITED = "active", "completed", "exited"
VERDICTS = ("entry", "exit", "objective")

DEPLOY_SCHEMA: dict[str, pl.DataType] = {
    "workflow": pl.String(),
    "participant_id": pl.String(),
    "requested_by": pl.String(),
}

REMOVAL_SCHEMA: dict[str, pl.DataType] = {
    "workflow": pl.String(),
    "participant_id": pl.String(),
    "requested_by": pl.String(),
    "reason": pl.String(),
    "requested_at": pl.Datetime("us"),
}

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "action_id": pl.String(),
    "event_type": pl.String(),
    "occurred_at": pl.Datetime("us"),
}


@dataclass(frozen=True)
class TickResult:
    as_of: datetime
    participants: int
    workflows: int
    state: pl.DataFrame
    actions: pl.DataFrame
    transitions: pl.DataFrame
    # Seconds per phase (engine/phases.py): timing only, not part of the result.
    phases: Phases = field(default_factory=dict, compare=False, repr=False)

    @property
    def changed_state(self) -> pl.DataFrame:
        """The enrollment rows this tick changed (what a store writes)."""
        return self.state.filter(pl.col("updated_at") == moment(self.as_of))


class FactsError(ValueError):
    pass


def combine(results: Sequence[TickResult], as_of: datetime, kept: pl.DataFrame | None = None
            ) -> TickResult:
    """One tick's results of several participant types (each run on its own facts) as one;
    `kept` is state no workflow ran over (specs that are gone)."""
    if len(results) == 1 and (kept is None or kept.is_empty()):
        return results[0]  # already in the order below: not sorted again
    states = [r.state for r in results] + ([conform(kept, ENROLLMENT_SCHEMA)]
                                           if kept is not None else [])

    def joined(frames: list[pl.DataFrame], schema: dict[str, pl.DataType],
               *order: str) -> pl.DataFrame:
        if not frames:
            return empty(schema)
        together = pl.concat(frames)
        return together.sort(*order, maintain_order=True)

    return TickResult(
        as_of=as_of,
        participants=sum(r.participants for r in results),
        workflows=sum(r.workflows for r in results),
        state=joined(states, ENROLLMENT_SCHEMA, "workflow", PARTICIPANT),
        actions=joined([r.actions for r in results], ACTION_SCHEMA, "action_id"),
        transitions=joined([r.transitions for r in results], TRANSITION_SCHEMA, "workflow",
                           PARTICIPANT),
        phases=_summed(r.phases for r in results),
    )


def _summed(parts: Iterable[Phases]) -> Phases:
    total: Phases = {}
    for part in parts:
        for name, seconds in part.items():
            total[name] = total.get(name, 0.0) + seconds
    return total


def run_tick(
    state: pl.DataFrame,
    facts: pl.DataFrame,
    prev_facts: pl.DataFrame | None,
    events: pl.DataFrame | None,
    workflows: Sequence[LoadedWorkflow],
    as_of: datetime,
    *,
    default_category: str = "Nurture",
    deploys: pl.DataFrame | None = None,
    groups: Mapping[str, UserGroup] | None = None,
    workload: pl.DataFrame | None = None,
    render_budget: RenderBudget | None = None,
    removals: pl.DataFrame | None = None,
) -> TickResult:
    """Advance every workflow by one tick.

    `events` are action results (email opened, task completed, ...) up to `as_of`; the flow
    language's waits and result branches read them. `deploys` are the manual deploy requests
    made since the previous tick (workflow, participant_id, requested_by). A group's new tasks
    go to its members (`groups`), continuing from the group tasks of earlier ticks
    (`workload`: action_id, owner_group, assignee). `render_budget`: the tick's limits on
    template rendering, shared when one tick is run as several calls (default: the defaults,
    for this call alone); a render past them fails its action (`render_failed`), not the tick.
    `removals` are the manual exits asked since the previous tick (`cswf remove`: workflow,
    participant_id, requested_by, reason, requested_at).
    """
    phases: Phases = {}
    with collecting(phases), phase("other"):
        result = _run_tick(state, facts, prev_facts, events, workflows, as_of,
                           default_category, deploys, groups, workload, render_budget, removals)
    return TickResult(result.as_of, result.participants, result.workflows, result.state,
                      result.actions, result.transitions, phases)


def _run_tick(
    state: pl.DataFrame,
    facts: pl.DataFrame,
    prev_facts: pl.DataFrame | None,
    events: pl.DataFrame | None,
    workflows: Sequence[LoadedWorkflow],
    as_of: datetime,
    default_category: str,
    deploys: pl.DataFrame | None,
    groups: Mapping[str, UserGroup] | None,
    workload: pl.DataFrame | None,
    render_budget: RenderBudget | None,
    removals: pl.DataFrame | None,
) -> TickResult:
    _check_facts(facts, as_of)
    events = empty(EVENT_SCHEMA) if events is None else conform(events, EVENT_SCHEMA)
    deploys = empty(DEPLOY_SCHEMA) if deploys is None else conform(deploys, DEPLOY_SCHEMA)
    try:
        with phase("evaluate"):
            verdicts = evaluate(facts, prev_facts, workflows)
    except BaseException as exc:  # a panic in Polars too: see engine/failures.py
        if not (isinstance(exc, Exception) or is_panic(exc)):
            raise
        raise blame(facts, prev_facts, workflows, exc) from exc
    with Beside() as beside:
        context = TickContext(facts, verdicts, as_of, default_category, events, deploys,
                              RenderBudget() if render_budget is None else render_budget,
                              None if removals is None or removals.is_empty()
                              else conform(removals, REMOVAL_SCHEMA), beside)
        ordered = _advance_all(state, facts, workflows, context, beside)
    timed_elsewhere(beside.phases)
    with phase("frames"):
        all_actions = _in_order([o.actions for o in ordered], ACTION_SCHEMA)
    if groups:
        with phase("assign"):
            all_actions = assign_tasks(all_actions, groups, empty(WORKLOAD_SCHEMA)
                                       if workload is None else workload, events, as_of)
    with phase("frames"):
        all_state = _in_order([o.state for o in ordered], ENROLLMENT_SCHEMA)
        all_transitions = _in_order([o.transitions for o in ordered], TRANSITION_SCHEMA)
    return TickResult(
        as_of=as_of,
        participants=facts.height,
        workflows=len(workflows),
        state=all_state,
        actions=all_actions,
        transitions=all_transitions,
    )


def _advance_all(state: pl.DataFrame, facts: pl.DataFrame, workflows: Sequence[LoadedWorkflow],
                 context: TickContext, beside: Beside) -> list[_Sorted]:
    """Every workflow advanced in priority order, its output sorted beside (engine/beside.py);
    the outputs in workflow name order."""
    as_of = context.as_of
    positions = facts.select(PARTICIPANT).with_row_index(ROW)
    # (in one expression: the joined copy of the whole state is not kept beside its parts)
    by_workflow = {
        key[0]: frame for key, frame in conform(state, ENROLLMENT_SCHEMA).join(
            positions, on=PARTICIPANT, how="left").partition_by("workflow", as_dict=True).items()
    }
    # Each workflow's output, sorted on its own (names order the rows: see _in_order).
    outputs: dict[str, Future[_Sorted]] = {}
    # Participants inside a workflow that restricts entering others. Workflows admit in
    # priority order (then name), so when two admit someone at one tick, the first one's
    # eligibility rule decides whether the second may.
    restricting = {w.name: w.spec.eligibility for w in workflows
                   if w.spec.eligibility.others != "all"}
    inside = [
        frame.filter(pl.col("status") == ACTIVE).select(ROW, pl.lit(name).alias("workflow"))
        for name, frame in by_workflow.items() if name in restricting
    ]
    for workflow in sorted(workflows, key=lambda w: (w.spec.priority, w.name)):
        rows = by_workflow.pop(workflow.name, empty(WORKING_SCHEMA))
        forbidding = [n for n, rule in restricting.items()
                      if n != workflow.name and rule.forbids(workflow.name)]
        barred = pl.concat(inside).filter(pl.col("workflow").is_in(forbidding)).select(ROW) \
            if inside and forbidding else None
        with evaluating(STEPS, workflow=workflow.name):  # names the step that failed
            out = _advance_workflow(rows, context, workflow, barred)
        if workflow.name in restricting:
            inside.append(out.entered.select(ROW, pl.lit(workflow.name).alias("workflow")))
        outputs[workflow.name] = beside.submit("sort (beside)", _sorted, out, as_of)
    for name, rest in by_workflow.items():  # workflows whose spec is gone stay as they were
        outputs[name] = beside.submit("sort (beside)", _sorted, _Out(rest, [], [], rest.clear()),
                                      as_of)
    with phase("wait for beside"):  # (what the second thread has not done yet)
        return [outputs[name].result() for name in sorted(outputs)]


def _check_facts(facts: pl.DataFrame, as_of: datetime) -> None:
    for column in (PARTICIPANT, "as_of"):
        if column not in facts.columns:
            raise FactsError(f"facts need a '{column}' column")
    if facts.height and not _distinct(facts[PARTICIPANT]):
        raise FactsError("facts hold more than one row for some participant")
    if facts.height and (facts["as_of"] != as_of).any():
        raise FactsError(f"facts are not all as of {as_of}")


def _distinct(ids: pl.Series) -> bool:
    """Whether no id repeats. Distinct 64-bit hashes prove it at a tenth of the cost of
    comparing the strings (most ticks); only when two hashes meet are the ids compared."""
    return ids.hash().n_unique() == ids.len() or ids.n_unique() == ids.len()


# The order of transitions of one participant at a tick: what happened first comes first.
_TRANSITION_ORDER = {"version_changed": -1, "deploy_refused": 0, "remove_refused": 0,
                     "entered": 1, "objective_met": 2, "exited": 3, "advanced": 4,
                     "milestone_started": 5, "milestone_done": 6, "completed": 7}


@dataclass(frozen=True)
class _Sorted:
    """One workflow's state, actions and transitions, each conformed and sorted."""

    state: pl.DataFrame | None
    actions: pl.DataFrame | None
    transitions: pl.DataFrame | None


def _sorted(out: _Out, as_of: datetime) -> _Sorted:
    """A workflow's output sorted as the tick's result is (state by participant, actions by
    id, transitions by participant then order): sorting each workflow's rows as soon as they
    are made, then putting workflows in name order (`_in_order`), orders the whole tick
    without ever sorting (or holding twice) all of its rows."""
    state = None if out.state.is_empty() else conform(out.state, WORKING_SCHEMA).drop(
        ROW).sort(PARTICIPANT)
    actions = pl.concat([done(rows) for rows in out.actions]).sort("action_id") \
        if out.actions else None
    transitions = None
    if out.transitions:
        combined = pl.concat(out.transitions, how="diagonal_relaxed")  # (some carry no evidence)
        transitions = combined.with_columns(tick=moment(as_of)).select(
            conforming([*combined.columns, "tick"], TRANSITION_SCHEMA)
        ).sort(
            PARTICIPANT, pl.col("transition").replace_strict(_TRANSITION_ORDER), "step",
            maintain_order=True,  # ties (milestones started together) in the order made
        )
    return _Sorted(state, actions, transitions)


def _in_order(frames: list[pl.DataFrame | None], schema: dict[str, pl.DataType]
              ) -> pl.DataFrame:
    """Workflows' sorted frames, in workflow name order, as one frame sorted by workflow
    first. Actions too: an action id starts with its workflow's name and a '/', which sorts
    before every character a name may hold (specs/common.py), so name order is id order."""
    present = [f for f in frames if f is not None and not f.is_empty()]
    return pl.concat(present) if present else empty(schema)


@dataclass
class _Out:
    state: pl.DataFrame
    actions: list[Rows]
    transitions: list[pl.DataFrame]
    entered: pl.DataFrame


def _advance_workflow(
    rows: pl.DataFrame,
    context: TickContext,
    workflow: LoadedWorkflow,
    barred: pl.DataFrame | None = None,
) -> _Out:
    """One workflow's tick; `barred` participants (by row) may not enter it now.

    Most workflows at most ticks change little, so every stage first asks a cheap boolean
    question (`Series.any()`) and only runs its queries when someone is concerned.
    """
    spec = workflow.spec
    as_of = context.as_of
    verdict = {k: context.verdicts[verdict_column(k, workflow.name)] for k in VERDICTS}
    active, closed = _split(rows)
    transitions: list[pl.DataFrame] = []
    closed_now: list[pl.DataFrame] = []

    if spec.state is WorkflowState.disabled and not active.is_empty():
        gone = _close(active, EXITED, "workflow disabled", as_of).with_columns(
            requalify_armed=pl.lit(True)  # re-enabling lets them start again from the top
        )
        closed_now.append(gone)
        transitions.append(_transition(gone, "exited", "workflow disabled"))
        active = active.clear()

    active, upgraded = _run_current_version(active, workflow, as_of)
    transitions.extend(upgraded)
    entered = rows.clear()
    requests = context.deploys.filter(pl.col("workflow") == workflow.name) \
        if not context.deploys.is_empty() else context.deploys
    if not requests.is_empty():
        entered, closed, refusals = _deploy(requests, verdict, active, closed, workflow,
                                            context, barred)
        transitions.extend(refusals)
        active = pl.concat([active, entered])
    if spec.admits_new:  # enabled, and not manual deploys only (auto_deploy: false)
        with phase("admit"):
            admitted, closed = _admit(verdict, active, closed, workflow, context, barred)
        if not admitted.is_empty():
            assert spec.entry is not None
            admitted = assign_cohorts(admitted, workflow.name, spec.holdout)
            transitions.append(_transition(
                admitted, "entered", _entry_reason(spec),
                context.evidence(admitted, spec.entry, stage_fields(spec.stage)),
            ))
            active = pl.concat([active, admitted])
            entered = pl.concat([entered, admitted])
    if context.removals is not None:
        asked = context.removals.filter(pl.col("workflow") == workflow.name)
        if not asked.is_empty():
            active, gone, log = _remove(asked, active, workflow, as_of)
            closed_now.append(gone)
            transitions.extend(log)
    actions: list[Rows] = []
    with phase("milestones"):
        started = workflow_tasks(entered.filter(~held_out(entered)) if spec.holdout
                                 else entered, context, workflow)
    if started is not None:
        actions.append(started)
    if active.is_empty():  # nobody inside: only the closed rows may change
        closed = _arm_requalification(_closed_rows(closed, closed_now), verdict["entry"], as_of)
        return _Out(closed, actions, transitions, entered)

    flags = _verdicts_at(active, verdict, ("exit", "objective") if spec.objective else ("exit",))
    leaving = flags["exit"]
    if leaving.any():
        reason = f"exit conditions met: {spec.exit.describe()}" if spec.exit else "exit"
        gone = _close(active.filter(leaving), EXITED, reason, as_of)
        closed_now.append(gone)
        transitions.append(_transition(gone, "exited", reason, context.evidence(gone, spec.exit)))
        active = active.filter(~leaving)
        flags = {k: flag.filter(~leaving) for k, flag in flags.items()}
    active, failed_exits = _exit_on_failed_actions(active, context, workflow)
    for gone, reason in failed_exits:
        closed_now.append(gone)
        transitions.append(_transition(gone, "exited", reason))
    if failed_exits:
        flags = _verdicts_at(active, verdict, tuple(flags))

    if spec.objective is not None and not active.is_empty():
        newly = flags["objective"] & active["objective_met_at"].is_null()
        if newly.any():
            met = active.filter(newly)
            condition = spec.objective.condition
            reason = f"objective met: {condition.describe()}"
            evidence = context.evidence(met, condition)
            transitions.append(_transition(met, "objective_met", reason, evidence))
            now, hit = moment(as_of), pl.lit(newly)
            active = active.with_columns(
                pl.when(hit).then(now).otherwise("objective_met_at").alias("objective_met_at"),
                pl.when(hit).then(now).otherwise("updated_at").alias("updated_at"),
            )
            if spec.objective.on_met == "exit":
                gone = _close(met, EXITED, reason, as_of).with_columns(objective_met_at=now)
                closed_now.append(gone)
                transitions.append(_transition(gone, "exited", reason, evidence))
                active = active.filter(~newly)

    control = active.clear()
    if spec.holdout is not None and not active.is_empty():  # the control group runs no step
        aside = held_out(active)
        control, active = active.filter(aside), active.filter(~aside)
    with phase("flow"):
        flow = advance_flow(active, context, workflow)
    transitions.extend(flow.transitions)
    actions.extend(flow.actions)
    with phase("milestones"):
        still, milestone_actions, milestone_log = advance_milestones(flow.active, context,
                                                                     workflow)
    actions.extend(milestone_actions)
    transitions.extend(milestone_log)
    finished = _finished(still, workflow)
    if finished.any():
        reason = ("reached the end of the flow with every milestone done" if spec.milestones
                  else "reached the end of the flow")
        gone = _close(still.filter(finished), COMPLETED, reason, as_of)
        closed_now.append(gone)
        transitions.append(_transition(gone, "completed", reason))
        still = still.filter(~finished)
    if not control.is_empty():
        ended = window_ended(control, spec.holdout, as_of)
        if ended.any():
            reason = "control group: the holdout window ended"
            gone = _close(control.filter(ended), COMPLETED, reason, as_of)
            closed_now.append(gone)
            transitions.append(_transition(gone, "completed", reason))
        still = pl.concat([conform(still, WORKING_SCHEMA),
                           conform(control.filter(~ended), WORKING_SCHEMA)])

    with phase("close"):
        closed = _arm_requalification(_closed_rows(closed, closed_now), verdict["entry"], as_of)
        state = pl.concat([conform(still, WORKING_SCHEMA), closed])
    return _Out(state, actions, transitions, entered)


def _entry_reason(spec: Workflow) -> str | pl.Expr:
    """Why a participant entered; in a workflow with a holdout, also which group."""
    assert spec.entry is not None
    reason = f"entry conditions met: {spec.entry.describe()}"
    if spec.holdout is None:
        return reason
    return (pl.lit(reason) + pl.when(pl.col("cohort") == CONTROL).then(pl.lit(
        f"; held out in the control group ({spec.holdout.percent:g}% holdout): it receives "
        "nothing")).otherwise(pl.lit("; treatment group")))


def _split(rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(active, closed) rows; a workflow's rows are often all one or the other."""
    status = rows["status"]
    return _where(rows, status == ACTIVE), _where(rows, status != ACTIVE)


def _where(frame: pl.DataFrame, mask: pl.Series) -> pl.DataFrame:
    """`frame.filter(mask)`, without the query when the mask keeps all rows or none."""
    kept = mask.sum() or 0
    if kept == frame.height:
        return frame
    return frame.filter(mask) if kept else frame.clear()


def _verdicts_at(rows: pl.DataFrame, verdict: dict[str, pl.Series], kinds: tuple[str, ...]
                 ) -> dict[str, pl.Series]:
    """Verdicts of `kinds` for each of `rows` (by their row in the facts; absent means false),
    in one query; a verdict nobody meets needs none."""
    held = [k for k in kinds if verdict[k].any()]
    found = rows.select(_lookup(verdict[k]).alias(k) for k in held) if held else None
    return {k: found[k] if found is not None and k in held
            else pl.Series(k, np.zeros(rows.height, dtype=bool)) for k in kinds}


def _finished(still: pl.DataFrame, workflow: LoadedWorkflow) -> pl.Series:
    """Past the last step with every milestone done."""
    ended = still["step"] >= len(workflow.flow)
    if not workflow.spec.milestones or not ended.any():
        return ended.fill_null(False)
    return ended.fill_null(False) & all_done(still, workflow)


def _closed_rows(closed: pl.DataFrame, closed_now: list[pl.DataFrame]) -> pl.DataFrame:
    """The closed rows before and during this tick as one frame."""
    if not closed_now:
        return conform(closed, WORKING_SCHEMA)
    return pl.concat([conform(c, WORKING_SCHEMA) for c in [closed, *closed_now]])


def _exit_on_failed_actions(
    active: pl.DataFrame, context: TickContext, workflow: LoadedWorkflow
) -> tuple[pl.DataFrame, list[tuple[pl.DataFrame, str]]]:
    """`on_error: exit`: an enrollment whose action has finally failed (a `failed` event from
    delivery) leaves at the next tick."""
    exiting = _exiting(workflow)
    if not exiting or active.is_empty():
        return active, []
    failed = context.seen("failed")
    if failed.is_empty():
        return active, []
    failed = failed.implode()
    gone = []
    for node, k in exiting:
        hit = (active["enrollment_id"] + f"/{action_key(node.index, k)}").is_in(failed)
        if not hit.any():
            continue
        reason = (f"action {k} of step '{node.name}' failed to deliver and its on_error is "
                  f"exit")
        gone.append((_close(active.filter(hit), EXITED, reason, context.as_of), reason))
        active = active.filter(~hit)
    return active, gone


@lru_cache(maxsize=256)
def _exiting(workflow: LoadedWorkflow) -> tuple[tuple[FlowNode, int], ...]:
    """The (node, action) pairs whose failure exits the enrollment: fixed per spec."""
    return tuple((node, k) for node, k, action in workflow.flow.actions()
                 if action.on_error == "exit")


def _run_current_version(active: pl.DataFrame, workflow: LoadedWorkflow, as_of: datetime
                         ) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """An edited spec (non-structural, see specs/lifecycle.py) applies to every enrollment from
    the steps it has not yet reached; the enrollment records the version it now runs."""
    if active.is_empty():
        return active, []
    older = active["version"] != workflow.version
    if not older.any():
        return active, []
    moving = active.filter(older)
    log = _transition(moving, "version_changed",
                      f"the spec was edited: now runs version {workflow.version} (was "
                      + pl.col("version") + ")")
    return active.with_columns(
        pl.when(pl.lit(older)).then(moment(as_of)).otherwise("updated_at").alias("updated_at"),
        pl.lit(workflow.version).alias("version"),
    ), [log]


def _lookup(verdict: pl.Series) -> pl.Expr:
    """A participant's verdict by its row; absent from the facts means false."""
    return pl.lit(verdict).gather(pl.col(ROW)).fill_null(False)


def rest_end(rule: Reentry, closed_at: pl.Expr | None = None) -> pl.Expr:
    """When the re-entry rest after an exit at `closed_at` ends: calendar months, then days
    (`cswf explain` names the same end)."""
    return (pl.col("closed_at") if closed_at is None else closed_at).dt.offset_by(rule.rest)


def _admit(
    verdict: dict[str, pl.Series],
    active: pl.DataFrame,
    closed: pl.DataFrame,
    workflow: LoadedWorkflow,
    context: TickContext,
    barred: pl.DataFrame | None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """New enrollments, and the closed rows they replace removed."""
    spec, as_of = workflow.spec, context.as_of
    qualifies = verdict["entry"] & ~verdict["exit"]
    if spec.launch == "from_now_on":  # only those who start qualifying now
        qualifies = qualifies & ~context.verdicts[verdict_column(ENTRY_BEFORE, workflow.name)]
    if spec.objective is not None and spec.objective.on_met == "exit":
        qualifies = qualifies & ~verdict["objective"]  # would leave at once
    if not qualifies.any():
        return active.clear(), closed
    rule = spec.reentry
    first_time = pl.col("enrollment_number").is_null()
    if rule.mode is ReentryMode.none:
        allowed = first_time
    else:
        rested = (pl.col("closed_at") < moment(as_of)) & (rest_end(rule) <= moment(as_of))
        if rule.mode is ReentryMode.multiple:
            rested = rested & pl.col("requalify_armed")
        allowed = first_time | rested.fill_null(False)
    # Most who qualify are inside already, or may not come back: rule them out by position
    # first, so a tick where nobody new qualifies runs no join.
    shut = [active[ROW], *([barred[ROW]] if barred is not None else [])]
    if not closed.is_empty():
        shut.append(closed[ROW].filter(~closed.select(allowed).to_series()))
    chosen = _open_rows(qualifies, shut)
    if chosen.is_empty():
        return active.clear(), closed
    candidates = pl.DataFrame(chosen).join(
        closed.select(ROW, "enrollment_number", "closed_at", "requalify_armed"), on=ROW,
        how="left")
    entered = _enroll(candidates.filter(allowed), workflow, context)
    closed = closed.join(entered.select(ROW), on=ROW, how="anti")
    return entered, closed


def _open_rows(qualifies: pl.Series, shut: list[pl.Series]) -> pl.Series:
    """The rows where `qualifies` holds, except the `shut` ones (null: not in the facts)."""
    keep = qualifies.fill_null(False).to_numpy().copy()
    for rows in shut:
        if rows.null_count():
            rows = rows.drop_nulls()
        if not rows.is_empty():
            keep[rows.to_numpy()] = False
    return pl.Series(ROW, np.flatnonzero(keep), dtype=WORKING_SCHEMA[ROW])


def _enroll(chosen: pl.DataFrame, workflow: LoadedWorkflow, context: TickContext
            ) -> pl.DataFrame:
    """New enrollments at the first step for `chosen` (ROW, previous enrollment_number)."""
    now = moment(context.as_of)
    entered = chosen.lazy().select(
        ROW,
        pl.lit(workflow.name).alias("workflow"),
        pl.lit(context.facts[PARTICIPANT]).gather(pl.col(ROW)).alias(PARTICIPANT),
        (pl.col("enrollment_number").fill_null(0) + 1).cast(pl.Int32).alias("enrollment_number"),
    ).with_columns(
        (pl.lit(f"{workflow.name}/") + pl.col(PARTICIPANT) + "/"
         + pl.col("enrollment_number").cast(pl.String)).alias("enrollment_id"),
        pl.lit(workflow.version).alias("version"),
        pl.lit(ACTIVE).alias("status"),
        now.alias("entered_at"),
        pl.lit(0, dtype=pl.Int32).alias("step"),
        pl.lit(workflow.flow.name_at(0)).alias("step_name"),
        arrival(workflow.flow, 0, now).alias("wait_until"),
        pl.lit(False).alias("requalify_armed"),
        now.alias("updated_at"),
    )
    with evaluating(arrival_part(workflow.flow, 0)):
        if needs_zone(workflow.flow, 0):  # a flow that starts with a delay: in local time
            zoned, zones = with_zones(entered.collect(), context)
            entered = zoned.lazy().with_columns(arrival(workflow.flow, 0, now, zones)
                                                .alias("wait_until"))
        entered = entered.select(conforming(entered.collect_schema().names(), WORKING_SCHEMA))
        frame = entered.collect()
        check_schedule(frame)
        return frame


def _deploy(
    requests: pl.DataFrame,
    verdict: dict[str, pl.Series],
    active: pl.DataFrame,
    closed: pl.DataFrame,
    workflow: LoadedWorkflow,
    context: TickContext,
    barred: pl.DataFrame | None,
) -> tuple[pl.DataFrame, pl.DataFrame, list[pl.DataFrame]]:
    """Manual deploys (Natero, Catalyst): accepted ones enter now; refused ones are logged with
    the reason, and never become a second enrollment."""
    spec = workflow.spec
    positions = context.facts.select(PARTICIPANT).with_row_index(ROW)
    asked = requests.join(positions, on=PARTICIPANT, how="left").with_columns(
        pl.lit(verdict["entry"]).gather(pl.col(ROW)).fill_null(False).alias("entry"),
        pl.lit(verdict["exit"]).gather(pl.col(ROW)).fill_null(False).alias("exit"),
        pl.col(ROW).is_in(active[ROW].implode()).alias("inside"),
        (pl.col(ROW).is_in(barred[ROW].implode()) if barred is not None else pl.lit(False))
        .alias("barred"),
    )
    reason = (
        pl.when(pl.col(ROW).is_null()).then(pl.lit("the participant is not in the facts"))
        .when(pl.lit(spec.state is not WorkflowState.enabled))
        .then(pl.lit(f"the workflow is {spec.state}: it admits no one new"))
        .when(pl.col("inside")).then(pl.lit("already inside this workflow"))
        .when(pl.col("barred")).then(pl.lit("another workflow's eligibility keeps it out"))
        .when(pl.col("exit")).then(pl.lit("it meets the exit conditions"))
        .when(~pl.col("entry") & pl.lit(not spec.manual_entry and spec.entry is not None))
        .then(pl.lit("entry conditions not met and the workflow does not allow manual entry"))
    )
    asked = asked.with_columns(reason.alias("refusal"))
    accepted = asked.filter(pl.col("refusal").is_null()).unique(ROW, keep="first",
                                                                 maintain_order=True)
    prior = closed.select(ROW, "enrollment_number")
    entered = _enroll(accepted.join(prior, on=ROW, how="left"), workflow, context)
    asker = "manual deploy by " + pl.col("requested_by").fill_null("someone")
    who = entered.join(accepted.select(ROW, "requested_by"), on=ROW, how="left")
    transitions = [_transition(who, "entered", asker)]
    refused = asked.filter(pl.col("refusal").is_not_null())
    if not refused.is_empty():
        current = active.select(ROW, "enrollment_id", "step", "step_name")
        transitions.append(refused.join(current, on=ROW, how="left").select(
            pl.lit(workflow.name).alias("workflow"),
            pl.lit(workflow.version).alias("version"),
            PARTICIPANT,
            "enrollment_id",
            pl.lit("deploy_refused").alias("transition"),
            "step",
            "step_name",
            ("manual deploy by " + pl.col("requested_by").fill_null("someone")
             + " refused: " + pl.col("refusal")).alias("reason"),
        ))
    closed = closed.join(entered.select(ROW), on=ROW, how="anti")
    return entered, closed, transitions


def _remove(asked: pl.DataFrame, active: pl.DataFrame, workflow: LoadedWorkflow,
            as_of: datetime) -> tuple[pl.DataFrame, pl.DataFrame, list[pl.DataFrame]]:
    """Manual exits (`cswf remove`): each participant asked for leaves wherever it is in the
    flow, as an exit (its pending actions are not sent); one not inside is logged as refused.
    Returns (still active, the closed rows, transitions)."""
    asked = asked.unique(PARTICIPANT, keep="first", maintain_order=True).select(
        PARTICIPANT,
        ("removed by " + pl.col("requested_by").fill_null("someone") + " at "
         + pl.col("requested_at").dt.strftime("%Y-%m-%d %H:%M") + ": " + pl.col("reason"))
        .alias("__why"),
    )
    why = active.select(PARTICIPANT).join(asked, on=PARTICIPANT, how="left",
                                          maintain_order="left")["__why"]
    leaving = why.is_not_null()
    gone = _close(active.filter(leaving), EXITED, "", as_of).with_columns(
        close_reason=why.filter(leaving))
    log = [_transition(gone, "exited", pl.col("close_reason"))]
    outside = asked.join(active.select(PARTICIPANT), on=PARTICIPANT, how="anti")
    if not outside.is_empty():
        log.append(outside.select(
            pl.lit(workflow.name).alias("workflow"),
            pl.lit(workflow.version).alias("version"),
            PARTICIPANT,
            pl.lit(None, dtype=pl.String).alias("enrollment_id"),
            pl.lit("remove_refused").alias("transition"),
            pl.lit(None, dtype=pl.Int32).alias("step"),
            pl.lit(None, dtype=pl.String).alias("step_name"),
            (pl.col("__why").str.replace("^removed by ", "removal by ")
             + " refused: not inside this workflow").alias("reason"),
        ))
    return active.filter(~leaving), gone, log


def _close(frame: pl.DataFrame, status: str, reason: str, as_of: datetime) -> pl.DataFrame:
    return frame.with_columns(
        status=pl.lit(status),
        closed_at=moment(as_of),
        close_reason=pl.lit(reason),
        requalify_armed=pl.lit(False),
        updated_at=moment(as_of),
    )


def _arm_requalification(
    closed: pl.DataFrame, entry: pl.Series, as_of: datetime
) -> pl.DataFrame:
    """Closed rows that no longer meet the entry conditions may enter again (re-entry
    `multiple`); nothing to write when every closed row is armed already."""
    if closed.is_empty():
        return closed
    arming = ~closed["requalify_armed"] & ~entry.gather(closed[ROW]).fill_null(False)
    if not arming.any():
        return closed
    hit = pl.lit(arming)
    return closed.with_columns(
        pl.when(hit).then(pl.lit(True)).otherwise("requalify_armed").alias("requalify_armed"),
        pl.when(hit).then(moment(as_of)).otherwise("updated_at").alias("updated_at"),
    )


def _transition(
    frame: pl.DataFrame, kind: str, reason: str | pl.Expr, evidence: pl.Series | None = None
) -> pl.DataFrame:
    with phase("frames"):
        return _transition_rows(frame, kind, reason, evidence)


def _transition_rows(
    frame: pl.DataFrame, kind: str, reason: str | pl.Expr, evidence: pl.Series | None
) -> pl.DataFrame:
    out = frame.select(
        "workflow", "version", PARTICIPANT, "enrollment_id",
        pl.lit(kind).alias("transition"),
        "step", "step_name",
        (pl.lit(reason) if isinstance(reason, str) else reason).alias("reason"),
    )
    return out.with_columns(evidence) if evidence is not None else out
