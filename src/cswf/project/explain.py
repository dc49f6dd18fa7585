"""`cswf explain`: one participant and one workflow at a tick. Inside: at which step since when,
what it received and why. Outside: what keeps it out, with the fact values it was judged on.

Read only: the state, transitions and outbox are the stored ones; the conditions are judged on
the facts a tick at that time sees (field updates included), by the engine's own expressions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from cswf.engine.evaluate import ENTRY_BEFORE, PARTICIPANT, evaluate, verdict_column
from cswf.engine.explain import judge_workflow_condition
from cswf.engine.tick import rest_end
from cswf.ingest.checks import existing_tables
from cswf.project.preview import taken_as_enabled, tick_facts
from cswf.settings import Settings
from cswf.specs.common import did_you_mean
from cswf.specs.loader import LoadedWorkflow
from cswf.specs.workflow import Reentry, ReentryMode, WorkflowState
from cswf.store.warehouse import load_state

AFTER = timedelta(microseconds=1)  # the state after a tick is the state before the next instant


class UnknownParticipant(LookupError):
    """Neither the facts at the tick nor the workflow's history know the participant."""

    def __init__(self, participant: str, hint: str | None) -> None:
        super().__init__(f"no participant '{participant}'")
        self.participant, self.hint = participant, hint


@dataclass(frozen=True)
class Explanation:
    workflow: str
    participant: str
    at: datetime
    state: str  # the spec's state: draft | enabled | disabled
    enrollment: dict[str, Any] | None  # its latest enrollment after the tick at `at`
    since: datetime | None  # when it reached its current step
    actions: pl.DataFrame  # tick, [enrollment,] step_name, action_type, subject, status, delivery
    transitions: pl.DataFrame  # tick, [enrollment,] transition, step_name, reason, evidence
    entry: pl.DataFrame | None  # the entry condition judged node by node (engine/explain.py)
    reasons: list[str]  # what keeps it out; empty when inside

    @property
    def inside(self) -> bool:
        return self.enrollment is not None and self.enrollment["status"] == "active"

    def to_json(self) -> dict[str, Any]:
        """What `cswf explain --json` prints (times in ISO 8601)."""

        def plain(value: Any) -> Any:
            return value.isoformat() if isinstance(value, datetime) else value

        def rows(frame: pl.DataFrame | None) -> list[dict[str, Any]] | None:
            if frame is None:
                return None
            return [{k: plain(v) for k, v in row.items()} for row in frame.to_dicts()]

        enrollment = self.enrollment or {}
        return {
            "workflow": self.workflow,
            "participant": self.participant,
            "at": self.at.isoformat(),
            "state": self.state,
            "inside": self.inside,
            "enrollment": {k: plain(v) for k, v in enrollment.items()} or None,
            "since": plain(self.since),
            "actions": rows(self.actions),
            "transitions": rows(self.transitions),
            "entry": rows(self.entry),
            "reasons": self.reasons,
        }


def explain(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    workflows: Sequence[LoadedWorkflow],
    name: str,
    participant: str,
    at: datetime,
) -> Explanation:
    """Why `participant` is or is not inside workflow `name` after the tick at `at`."""
    workflow = next(w for w in workflows if w.name == name)
    tables = existing_tables(con)
    now, prev_facts = tick_facts(con, settings, workflow.spec.object, at)
    mine = now.filter(pl.col(PARTICIPANT) == participant)
    state = (
        load_state(con, at + AFTER).filter(pl.col(PARTICIPANT) == participant)
        if "enrollment_history" in tables
        else pl.DataFrame(schema={"workflow": pl.String, PARTICIPANT: pl.String})
    )
    transitions = _history(con, tables, "transitions", name, participant, at)
    if mine.is_empty() and transitions.is_empty():
        raise UnknownParticipant(participant, did_you_mean(participant, now[PARTICIPANT]))
    rows = state.filter(pl.col("workflow") == name).to_dicts()
    enrollment = rows[0] if rows else None
    inside = enrollment is not None and enrollment["status"] == "active"
    since = None
    if inside:
        assert enrollment is not None
        moved = transitions.filter(
            (pl.col("enrollment_id") == enrollment["enrollment_id"])
            & pl.col("transition").is_in(["entered", "advanced"])
        )
        since = moved["tick"].max() if not moved.is_empty() else enrollment["entered_at"]
    entry, reasons = None, []
    if not inside:
        before = (
            prev_facts.filter(pl.col(PARTICIPANT) == participant)
            if prev_facts is not None
            else None
        )
        entry, reasons = _kept_out(workflow, workflows, mine, before, state, enrollment, at)
    return Explanation(
        workflow=name,
        participant=participant,
        at=at,
        state=str(workflow.spec.state),
        enrollment=enrollment,
        since=since,  # type: ignore[arg-type]
        actions=_by_enrollment(_actions(con, tables, name, participant, at)),
        transitions=_by_enrollment(transitions),
        entry=entry,
        reasons=reasons,
    )


def _kept_out(
    workflow: LoadedWorkflow,
    workflows: Sequence[LoadedWorkflow],
    facts: pl.DataFrame,
    prev_facts: pl.DataFrame | None,
    state: pl.DataFrame,
    enrollment: dict[str, Any] | None,
    at: datetime,
) -> tuple[pl.DataFrame | None, list[str]]:
    """The entry condition judged node by node, and every rule of `_admit` (engine/tick.py)
    that keeps the participant out, in words."""
    spec, reasons = workflow.spec, []
    if spec.state is not WorkflowState.enabled:
        reasons.append(
            f"the workflow is {spec.state}: nobody enters until its spec says state: enabled"
        )
    if facts.is_empty():
        return None, [
            *reasons,
            f"no facts at {at:%Y-%m-%d %H:%M}: it is not in that tick's snapshot",
        ]
    if spec.entry is None:
        return None, [
            *reasons,
            "the workflow has no entry conditions: only manual deploys enter participants",
        ]
    enabled = taken_as_enabled(workflow)
    verdicts = evaluate(facts, prev_facts, [enabled]).row(0, named=True)
    judged = judge_workflow_condition(enabled, spec.entry, facts, prev_facts)
    if not verdicts[verdict_column("entry", workflow.name)]:
        reasons.append(f"entry conditions not met: {spec.entry.describe()}")
    if verdicts[verdict_column("exit", workflow.name)] and spec.exit is not None:
        reasons.append(f"exit conditions hold: {spec.exit.describe()}")
    if (
        spec.objective is not None
        and spec.objective.on_met == "exit"
        and verdicts[verdict_column("objective", workflow.name)]
    ):
        reasons.append("objective already met (on_met: exit): it would leave at once")
    if spec.launch == "from_now_on" and verdicts.get(verdict_column(ENTRY_BEFORE, workflow.name)):
        reasons.append(
            "launch: from_now_on admits only who starts qualifying; it qualified at "
            "the previous tick already"
        )
    if enrollment is not None:
        reasons.extend(_reentry(workflow, enrollment, at))
    for other in workflows:
        inside_other = state.filter(
            (pl.col("workflow") == other.name) & (pl.col("status") == "active")
        )
        if (
            other.name != workflow.name
            and not inside_other.is_empty()
            and other.spec.eligibility.forbids(workflow.name)
        ):
            reasons.append(
                f"inside {other.name}, whose eligibility (others: "
                f"{other.spec.eligibility.others}) keeps it out of other workflows"
            )
    if not reasons:
        reasons.append(
            "nothing keeps it out now: the next tick at which it still qualifies enters it"
        )
    return judged.drop(PARTICIPANT), reasons


def _reentry(workflow: LoadedWorkflow, enrollment: dict[str, Any], at: datetime) -> list[str]:
    rule, closed = workflow.spec.reentry, enrollment["closed_at"]
    done = f"{enrollment['status']} at {closed:%Y-%m-%d %H:%M} ({enrollment['close_reason']})"
    if rule.mode is ReentryMode.none:
        return [f"already {done}; re-entry: none"]
    found = []
    until = pl.select(rest_end(rule, pl.lit(closed))).item()  # the tick's own rest
    if closed >= at or until > at:
        found.append(f"{done}; re-entry rest of {_rest_words(rule)} until {until:%Y-%m-%d %H:%M}")
    if rule.mode is ReentryMode.multiple and not enrollment["requalify_armed"]:
        found.append(
            f"{done}; re-entry: multiple needs it to stop qualifying before it may enter again"
        )
    return found


def _by_enrollment(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows of several enrollments say whose they are (an `enrollment` column after the tick);
    of one, that column would only repeat the header's enrollment."""
    if frame["enrollment_id"].n_unique() < 2:
        return frame.drop("enrollment_id")
    rest = [c for c in frame.columns if c not in ("tick", "enrollment_id")]
    return frame.rename({"enrollment_id": "enrollment"}).select("tick", "enrollment", *rest)


def _rest_words(rule: Reentry) -> str:
    months, days = rule.min_months_since_exit, rule.min_days_since_exit
    parts = [f"{months} month{'s' if months != 1 else ''}"] if months else []
    if days or not months:
        parts.append(f"{days} day{'s' if days != 1 else ''}")
    return " and ".join(parts)


def _history(
    con: duckdb.DuckDBPyConnection,
    tables: set[str],
    table: str,
    workflow: str,
    participant: str,
    at: datetime,
) -> pl.DataFrame:
    if table not in tables:
        return pl.DataFrame(
            schema={
                "tick": pl.Datetime("us"),
                "transition": pl.String,
                "step_name": pl.String,
                "reason": pl.String,
                "evidence": pl.String,
                "enrollment_id": pl.String,
            }
        )
    return con.sql(
        "SELECT tick, transition, step_name, reason, evidence, enrollment_id FROM transitions "
        "WHERE workflow = $w AND participant_id = $p AND tick <= $t ORDER BY tick, step",
        params={"w": workflow, "p": participant, "t": at},
    ).pl()


def _actions(
    con: duckdb.DuckDBPyConnection, tables: set[str], workflow: str, participant: str, at: datetime
) -> pl.DataFrame:
    """Its actions up to `at`, with what delivery did with each (its last status)."""
    if "actions_outbox" not in tables:
        return pl.DataFrame(
            schema={
                "tick": pl.Datetime("us"),
                "step_name": pl.String,
                "action_type": pl.String,
                "subject": pl.String,
                "status": pl.String,
                "delivery": pl.String,
                "enrollment_id": pl.String,
            }
        )
    delivered = "d.status" if "deliveries" in tables else "NULL"
    joined = "LEFT JOIN deliveries d USING (action_id)" if "deliveries" in tables else ""
    return con.sql(
        f"SELECT o.tick, o.step_name, o.action_type, o.subject, o.status, "
        f"coalesce({delivered}, 'not delivered yet') AS delivery, o.enrollment_id "
        f"FROM actions_outbox o {joined} "
        "WHERE o.workflow = $w AND o.participant_id = $p AND o.tick <= $t "
        "ORDER BY o.tick, o.step, o.action_index",
        params={"w": workflow, "p": participant, "t": at},
    ).pl()
