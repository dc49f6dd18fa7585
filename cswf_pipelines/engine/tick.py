"""One tick: (previous state, facts, previous facts, events, specs, as_of) -> (state, actions,
transitions).

Pure: no clock, no files, no database. Loops over workflows and steps; every step of the way is a
Polars operation over all participants of a workflow at once.

Order within a workflow at a tick:
1. a disabled workflow exits everyone;
2. an enabled workflow admits participants that meet the entry conditions (and not the exit
   conditions), if re-entry allows;
3. exit conditions remove participants wherever they are, even mid-delay;
4. an objective newly met is recorded, and exits the participant if the spec says so;
5. due steps run (actions are emitted, delays scheduled);
6. participants past the last step complete;
7. closed participants that no longer qualify are marked as having stopped qualifying
   (re-entry `multiple` needs that before they may enter again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from cswf_pipelines.engine.evaluate import PARTICIPANT, evaluate, verdict_column
from cswf_pipelines.engine.flow import advance_flow, arrival, step_name
from cswf_pipelines.engine.frames import (
    ACTION_SCHEMA,
    ENROLLMENT_SCHEMA,
    TRANSITION_SCHEMA,
    conform,
    empty,
)
from cswf_pipelines.specs.conditions import Condition, fields_used
from cswf_pipelines.specs.loader import LoadedWorkflow
from cswf_pipelines.specs.workflow import ReentryMode, WorkflowState

ACTIVE, COMPLETED, EXITED = "active", "completed", "exited"
VERDICTS = ("entry", "exit", "objective")

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

    @property
    def changed_state(self) -> pl.DataFrame:
        """The enrollment rows this tick changed (what a store writes)."""
        return self.state.filter(pl.col("updated_at") == self.as_of)


class FactsError(ValueError):
    pass


def run_tick(
    state: pl.DataFrame,
    facts: pl.DataFrame,
    prev_facts: pl.DataFrame | None,
    events: pl.DataFrame | None,
    workflows: Sequence[LoadedWorkflow],
    as_of: datetime,
    *,
    default_category: str = "Nurture",
) -> TickResult:
    """Advance every workflow by one tick.

    `events` are action results (email opened, task completed, ...) up to `as_of`; the flow
    language's waits and result branches read them.
    """
    _check_facts(facts, as_of)
    if events is not None:
        conform(events, EVENT_SCHEMA)
    verdicts = evaluate(facts, prev_facts, workflows)
    state = conform(state, ENROLLMENT_SCHEMA)
    by_workflow = {
        key[0]: frame for key, frame in state.partition_by("workflow", as_dict=True).items()
    }
    states, actions, transitions = [], [], []
    for workflow in sorted(workflows, key=lambda w: (w.spec.priority, w.name)):
        rows = by_workflow.pop(workflow.name, empty(ENROLLMENT_SCHEMA))
        out = _advance_workflow(rows, verdicts, facts, workflow, as_of, default_category)
        states.append(out.state)
        actions.extend(out.actions)
        transitions.extend(out.transitions)
    states.extend(by_workflow.values())  # workflows whose spec is gone stay as they were
    return TickResult(
        as_of=as_of,
        participants=facts.height,
        workflows=len(workflows),
        state=pl.concat([conform(s, ENROLLMENT_SCHEMA) for s in states] or [state])
        .sort("workflow", PARTICIPANT),
        actions=pl.concat(actions).sort("action_id") if actions else empty(ACTION_SCHEMA),
        transitions=_finish_transitions(transitions, as_of),
    )


def _check_facts(facts: pl.DataFrame, as_of: datetime) -> None:
    for column in (PARTICIPANT, "as_of"):
        if column not in facts.columns:
            raise FactsError(f"facts need a '{column}' column")
    if facts.height and facts[PARTICIPANT].n_unique() != facts.height:
        raise FactsError("facts hold more than one row for some participant")
    if facts.height and (facts["as_of"] != as_of).any():
        raise FactsError(f"facts are not all as of {as_of}")


def _finish_transitions(frames: list[pl.DataFrame], as_of: datetime) -> pl.DataFrame:
    if not frames:
        return empty(TRANSITION_SCHEMA)
    order = {"entered": 0, "objective_met": 1, "exited": 2, "advanced": 3, "completed": 4}
    combined = pl.concat([conform(f.with_columns(tick=pl.lit(as_of)), TRANSITION_SCHEMA)
                          for f in frames])
    return combined.sort(
        "workflow", PARTICIPANT, pl.col("transition").replace_strict(order), "step"
    )


@dataclass
class _Out:
    state: pl.DataFrame
    actions: list[pl.DataFrame]
    transitions: list[pl.DataFrame]


def _advance_workflow(
    rows: pl.DataFrame,
    verdicts: pl.DataFrame,
    facts: pl.DataFrame,
    workflow: LoadedWorkflow,
    as_of: datetime,
    default_category: str,
) -> _Out:
    spec = workflow.spec
    verdict = verdicts.select(
        PARTICIPANT, *(pl.col(verdict_column(k, workflow.name)).alias(k) for k in VERDICTS)
    )
    active = rows.filter(pl.col("status") == ACTIVE)
    closed = rows.filter(pl.col("status") != ACTIVE)
    transitions: list[pl.DataFrame] = []
    closed_now: list[pl.DataFrame] = []

    if spec.state is WorkflowState.disabled and not active.is_empty():
        gone = _close(active, EXITED, "workflow disabled", as_of).with_columns(
            requalify_armed=pl.lit(True)  # re-enabling lets them start again from the top
        )
        closed_now.append(gone)
        transitions.append(_transition(gone, "exited", "workflow disabled"))
        active = active.clear()

    if spec.state is WorkflowState.enabled:
        entered, closed = _admit(verdict, active, closed, workflow, as_of)
        if not entered.is_empty():
            transitions.append(_transition(
                entered, "entered", f"entry conditions met: {spec.entry.describe()}",
                _evidence(entered, facts, spec.entry),
            ))
            active = pl.concat([active, entered])

    active = active.join(verdict, on=PARTICIPANT, how="left").with_columns(
        pl.col(k).fill_null(False) for k in VERDICTS
    )
    leaving = active.filter("exit")
    if not leaving.is_empty():
        reason = f"exit conditions met: {spec.exit.describe()}" if spec.exit else "exit"
        gone = _close(leaving, EXITED, reason, as_of)
        closed_now.append(gone)
        transitions.append(_transition(gone, "exited", reason, _evidence(gone, facts, spec.exit)))
        active = active.filter(~pl.col("exit"))

    if spec.objective is not None:
        newly = pl.col("objective") & pl.col("objective_met_at").is_null()
        met = active.filter(newly)
        if not met.is_empty():
            condition = spec.objective.condition
            reason = f"objective met: {condition.describe()}"
            evidence = _evidence(met, facts, condition)
            transitions.append(_transition(met, "objective_met", reason, evidence))
            active = active.with_columns(
                pl.when(newly).then(pl.lit(as_of)).otherwise("objective_met_at")
                .alias("objective_met_at"),
                pl.when(newly).then(pl.lit(as_of)).otherwise("updated_at").alias("updated_at"),
            )
            if spec.objective.on_met == "exit":
                gone = _close(met, EXITED, reason, as_of).with_columns(
                    objective_met_at=pl.lit(as_of)
                )
                closed_now.append(gone)
                transitions.append(_transition(gone, "exited", reason, evidence))
                active = active.join(met.select(PARTICIPANT), on=PARTICIPANT, how="anti")

    flow = advance_flow(active.drop(VERDICTS), facts, workflow, as_of, default_category)
    transitions.extend(flow.transitions)
    finished = pl.col("step") >= len(spec.steps)
    done = flow.active.filter(finished)
    if not done.is_empty():
        gone = _close(done, COMPLETED, "reached the end of the flow", as_of)
        closed_now.append(gone)
        transitions.append(_transition(gone, "completed", "reached the end of the flow"))

    closed = _arm_requalification(
        pl.concat([conform(c, ENROLLMENT_SCHEMA) for c in [closed, *closed_now]]),
        verdict, as_of,
    )
    state = pl.concat([conform(flow.active.filter(~finished), ENROLLMENT_SCHEMA), closed])
    return _Out(state, flow.actions, transitions)


def _admit(
    verdict: pl.DataFrame,
    active: pl.DataFrame,
    closed: pl.DataFrame,
    workflow: LoadedWorkflow,
    as_of: datetime,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """New enrollments, and the closed rows they replace removed."""
    spec = workflow.spec
    qualifies = pl.col("entry") & ~pl.col("exit")
    if spec.objective is not None and spec.objective.on_met == "exit":
        qualifies = qualifies & ~pl.col("objective")  # would leave at once
    candidates = (
        verdict.filter(qualifies)
        .select(PARTICIPANT)
        .join(active.select(PARTICIPANT), on=PARTICIPANT, how="anti")
        .join(closed.select(PARTICIPANT, "enrollment_number", "closed_at", "requalify_armed"),
              on=PARTICIPANT, how="left")
    )
    first_time = pl.col("enrollment_number").is_null()
    rule = spec.reentry
    if rule.mode is ReentryMode.none:
        allowed = first_time
    else:
        rested = (pl.col("closed_at") < as_of) & (
            pl.col("closed_at") + pl.duration(days=rule.min_days_since_exit) <= as_of
        )
        if rule.mode is ReentryMode.multiple:
            rested = rested & pl.col("requalify_armed")
        allowed = first_time | rested.fill_null(False)
    first = spec.steps[0]
    entered = candidates.filter(allowed).select(
        pl.lit(workflow.name).alias("workflow"),
        PARTICIPANT,
        (pl.col("enrollment_number").fill_null(0) + 1).cast(pl.Int32).alias("enrollment_number"),
    ).with_columns(
        (pl.lit(f"{workflow.name}/") + pl.col(PARTICIPANT) + "/"
         + pl.col("enrollment_number").cast(pl.String)).alias("enrollment_id"),
        pl.lit(workflow.version).alias("version"),
        pl.lit(ACTIVE).alias("status"),
        pl.lit(as_of).alias("entered_at"),
        pl.lit(0, dtype=pl.Int32).alias("step"),
        pl.lit(step_name(workflow, 0)).alias("step_name"),
        arrival(first, pl.lit(as_of)).alias("wait_until"),
        pl.lit(False).alias("requalify_armed"),
        pl.lit(as_of).alias("updated_at"),
    )
    entered = conform(entered, ENROLLMENT_SCHEMA)
    closed = closed.join(entered.select(PARTICIPANT), on=PARTICIPANT, how="anti")
    return entered, closed


def _close(frame: pl.DataFrame, status: str, reason: str, as_of: datetime) -> pl.DataFrame:
    return frame.with_columns(
        status=pl.lit(status),
        closed_at=pl.lit(as_of),
        close_reason=pl.lit(reason),
        requalify_armed=pl.lit(False),
        updated_at=pl.lit(as_of),
    )


def _arm_requalification(
    closed: pl.DataFrame, verdict: pl.DataFrame, as_of: datetime
) -> pl.DataFrame:
    arming = ~pl.col("requalify_armed") & ~pl.col("qualifies").fill_null(False)
    return closed.join(
        verdict.select(PARTICIPANT, pl.col("entry").alias("qualifies")), on=PARTICIPANT,
        how="left",
    ).select(
        pl.exclude("requalify_armed", "updated_at", "qualifies"),
        pl.when(arming).then(pl.lit(True)).otherwise("requalify_armed").alias("requalify_armed"),
        pl.when(arming).then(pl.lit(as_of)).otherwise("updated_at").alias("updated_at"),
    )


def _transition(
    frame: pl.DataFrame, kind: str, reason: str, evidence: pl.DataFrame | None = None
) -> pl.DataFrame:
    out = frame.select(
        "workflow", "version", PARTICIPANT, "enrollment_id",
        pl.lit(kind).alias("transition"),
        "step", "step_name",
        pl.lit(reason).alias("reason"),
    )
    if evidence is not None:
        out = out.join(evidence, on=PARTICIPANT, how="left")
    return out


def _evidence(
    frame: pl.DataFrame, facts: pl.DataFrame, tree: Condition | None
) -> pl.DataFrame | None:
    """The fact values a condition read, as JSON, so the audit trail says why."""
    if tree is None:
        return None
    fields = sorted(fields_used(tree))
    return (
        frame.select(PARTICIPANT)
        .join(facts.select(PARTICIPANT, *fields), on=PARTICIPANT, how="left")
        .select(PARTICIPANT, pl.struct(fields).struct.json_encode().alias("evidence"))
    )
