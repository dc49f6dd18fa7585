"""Typed model of a workflow spec (one YAML file in `workflow_specs/`).

Actions are whatever the registry of action types holds (specs/actions/): `Action` and `Result`
take their schema from it when a model is built, and the models holding them are rebuilt when a
type is registered or taken back.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from enum import StrEnum
from functools import reduce
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    Tag,
    model_validator,
)
from pydantic_core import CoreSchema

from cswf.specs.action import ActionSpec
from cswf.specs.actions import action_models, all_results, on_change
from cswf.specs.common import (
    MAX_DAYS,
    MAX_MONTHS,
    NAME_PATTERN,
    Float,
    Int,
    MaybeInt,
    Owner,
    Strict,
)
from cswf.specs.conditions import Condition, fields_used, segment_refs
from cswf.specs.guards import WorkflowGuards
from cswf.specs.references import MAX_REFERENCES, Reference

MAX_ACTIONS_PER_STEP = 10
MAX_STEPS_PER_BRANCH = 30  # Catalyst; actions in one step count as one
MAX_BRANCH_CHECKS = 11  # a branch and up to 10 additional checks
MAX_PRIORITY = 1_000_000
ACTION_REF = r"^[a-z][a-z0-9_]*\.([a-z][a-z0-9_]*|[0-9]+)$"  # <step>.<action name or position>


class WorkflowState(StrEnum):
    draft = "draft"
    enabled = "enabled"
    paused = "paused"
    disabled = "disabled"


class ReentryMode(StrEnum):
    none = "none"
    multiple = "multiple"
    unlimited = "unlimited"


class Reentry(Strict):
    """Catalyst's re-entry rules, measured from the exit date of the last enrollment."""

    mode: ReentryMode = Field(
        default=ReentryMode.multiple,
        description=(
            "none: enter once ever. multiple: re-enter only after having stopped qualifying "
            "since the last exit. unlimited: re-enter whenever qualifying."
        ),
    )
    min_days_since_exit: Int = Field(default=0, ge=0, le=MAX_DAYS,
                                     description="Retrigger delay in days.")
    min_months_since_exit: Int = Field(
        default=0, ge=0, le=MAX_MONTHS,
        description="Retrigger delay in calendar months (same day of month, or the month's "
                    "last day: Jan 31 + 1 month is Feb 28); added to the days.")

    @property
    def rest(self) -> str:
        """The retrigger delay as a Polars offset (`3mo`, `10d`, `1mo5d`)."""
        months = f"{self.min_months_since_exit}mo" if self.min_months_since_exit else ""
        return f"{months}{self.min_days_since_exit}d"


class Eligibility(Strict):
    """Catalyst's additional-workflow eligibility: while in this workflow, a participant may
    enter all other workflows (default), none, or all but the ones listed."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    others: Literal["all", "none", "all_but"] = "all"
    except_: list[str] = Field(default_factory=list, alias="except",
                               description="all_but: the workflows it may not enter.")

    @model_validator(mode="after")
    def _list_fits(self) -> Eligibility:
        if (self.others == "all_but") != bool(self.except_):
            raise ValueError("list the workflows in except exactly when others is all_but")
        return self

    def forbids(self, other: str) -> bool:
        return self.others == "none" or other in self.except_


class Objective(Strict):
    """One objective on one field; recorded when met, optionally exiting at once."""

    condition: Condition
    on_met: Literal["exit", "stay"] = Field(
        default="stay", description="exit: leave the workflow when met; stay: run to the end."
    )

    @model_validator(mode="after")
    def _one_field(self) -> Objective:
        # A segment's fields are known once the loader has put it in place (it checks then).
        if not any(segment_refs(self.condition)) and (problem := objective_problem(self)):
            raise ValueError(problem)
        return self


def objective_problem(objective: Objective) -> str | None:
    """Why an objective cannot be tracked: the reports follow exactly one field."""
    used = fields_used(objective.condition)
    if len(used) != 1:
        return f"an objective reads exactly one field; this one reads {sorted(used)}"
    return None


MAX_HOLDOUT_PERCENT = 50
MAX_HOLDOUT_WINDOW_DAYS = 30  # objective_after_exit watches 30 days after leaving


class Holdout(Strict):
    """A control group: a fixed, hashed share of those who qualify enter it and receive nothing,
    so the objective's lift can be measured (engine/holdout.py, report objective_lift)."""

    percent: Float = Field(gt=0, le=MAX_HOLDOUT_PERCENT,
                           description="Share of qualifying participants held out, in percent "
                                       "(to 0.01).")
    window_days: Int = Field(
        default=MAX_HOLDOUT_WINDOW_DAYS, ge=1, le=MAX_HOLDOUT_WINDOW_DAYS,
        description="Both groups are judged on the objective within this many days of entry; "
                    "a control enrollment completes when its window ends.")


class _FromRegistry:
    """An annotation whose schema is built from the action types registered when the model
    holding it is built (see _rebuild)."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler
                                     ) -> CoreSchema:
        return handler(self._build())


def _action_union() -> Any:
    return Annotated[reduce(operator.or_, action_models()), Field(discriminator="type")]


def _results() -> Any:
    """What an earlier action of the same enrollment may have come to (Catalyst's filters): the
    results of every action type; flow.py checks that a reference asks its type's results."""
    return Literal[all_results()]  # type: ignore[valid-type]


Action = Annotated[ActionSpec, _FromRegistry(_action_union)]


class Delay(Strict):
    """A fixed wait: hours, calendar days, or calendar months (same day of month). A tick
    moves a participant on once its delay has ended, so a delay shorter than the interval
    between ticks ends at the next tick."""

    hours: MaybeInt = Field(default=None, ge=1, le=MAX_DAYS * 24)
    days: MaybeInt = Field(default=None, ge=0, le=MAX_DAYS)
    months: MaybeInt = Field(default=None, ge=1, le=MAX_MONTHS)

    @model_validator(mode="after")
    def _one_unit(self) -> Delay:
        if sum(unit is not None for unit in (self.hours, self.days, self.months)) != 1:
            raise ValueError("a delay needs exactly one of: hours, days, months")
        return self

    @property
    def offset(self) -> str:
        """The delay as a Polars offset (`6h`, `3d`, `1mo`)."""
        if self.hours is not None:
            return f"{self.hours}h"
        return f"{self.days}d" if self.days is not None else f"{self.months}mo"

    def describe(self) -> str:
        if self.hours is not None:
            return f"{self.hours} hours"
        return f"{self.days} days" if self.days is not None else f"{self.months} months"


Result = Annotated[str, _FromRegistry(_results)]


class ActionResult(Strict):
    """An earlier action's result: `action` is `<step>.<action name or position from 0>`."""

    action: str = Field(pattern=ACTION_REF)
    result: Result


class ActionStep(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    actions: list[Action] = Field(min_length=1, max_length=MAX_ACTIONS_PER_STEP)


class DelayStep(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    delay: Delay


class _Check(Strict):
    """Either an earlier action's result (action + result) or a fact condition (the subclass's
    `condition_key`), never both."""

    condition_key: ClassVar[str]
    what: ClassVar[str]
    action: str | None = Field(default=None, pattern=ACTION_REF,
                               description="`<step>.<action name or position>`")
    result: Result | None = None

    @model_validator(mode="after")
    def _one_target(self) -> _Check:
        by_action = self.action is not None or self.result is not None
        if by_action == (getattr(self, self.condition_key) is not None):
            raise ValueError(f"{self.what} needs either action and result, or "
                             f"{self.condition_key} (a condition)")
        if by_action and (self.action is None or self.result is None):
            raise ValueError(f"{self.what} on an action needs both action and result")
        return self

    @property
    def on_action(self) -> ActionResult | None:
        if self.action is None or self.result is None:
            return None
        return ActionResult(action=self.action, result=self.result)


class Wait(_Check):
    """Wait until an earlier action has a result, or a fact condition holds; at most max_days."""

    condition_key: ClassVar[str] = "until"
    what: ClassVar[str] = "a wait"
    until: Condition | None = None
    max_days: Int = Field(ge=1, le=MAX_DAYS,
                          description="After this many days the flow goes on anyway.")


class WaitStep(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    wait: Wait


class BranchPath(_Check):
    """One check of a branch and the steps it leads to."""

    condition_key: ClassVar[str] = "when"
    what: ClassVar[str] = "a branch check"
    name: str = Field(pattern=NAME_PATTERN)
    when: Condition | None = Field(default=None, description="A condition on the facts.")
    steps: list[Step] = Field(default_factory=list)


class BranchStep(Strict):
    """Ordered checks: the first that holds takes its path; if none holds the flow goes on."""

    name: str = Field(pattern=NAME_PATTERN)
    branch: list[BranchPath] = Field(min_length=1, max_length=MAX_BRANCH_CHECKS)


STEP_KINDS = {"delay": "delay-step", "wait": "wait-step", "branch": "branch-step"}


def _step_kind(raw: object) -> str:
    if isinstance(raw, dict):
        return next((tag for key, tag in STEP_KINDS.items() if key in raw), "action-step")
    tags = {DelayStep: "delay-step", WaitStep: "wait-step", BranchStep: "branch-step"}
    return tags.get(type(raw), "action-step")


Step = Annotated[
    Annotated[ActionStep, Tag("action-step")]
    | Annotated[DelayStep, Tag("delay-step")]
    | Annotated[WaitStep, Tag("wait-step")]
    | Annotated[BranchStep, Tag("branch-step")],
    Discriminator(_step_kind),
]
BranchPath.model_rebuild()


class Milestone(Strict):
    """Natero's milestones: a checkpoint with its own task, triggered and due in days since the
    participant entered the workflow; done when its task is completed."""

    name: str = Field(pattern=NAME_PATTERN)
    title: str | None = Field(default=None, description="Task title; default: the name.")
    trigger_days: Int = Field(ge=0, le=MAX_DAYS,
                              description="Days after entry when its task is created.")
    due_days: Int = Field(ge=0, le=MAX_DAYS, description="Days after entry when it is due.")
    owner: Owner | None = Field(default=None, description="Default: the workflow owner.")
    subtasks: list[str] = Field(default_factory=list)
    references: list[Reference] = Field(
        default_factory=list, max_length=MAX_REFERENCES,
        description="Reference documents (title + url) for its task, before the workflow's.")

    @model_validator(mode="after")
    def _due_after_trigger(self) -> Milestone:
        if self.due_days < self.trigger_days:
            raise ValueError(f"milestone '{self.name}' is due (day {self.due_days}) before it "
                             f"triggers (day {self.trigger_days})")
        return self

    @property
    def task_title(self) -> str:
        return self.title or self.name.replace("_", " ").capitalize()


STAGE_FIELD, STAGE_STARTED_FIELD = "stage", "stage_entered_on"  # the facts a stage reads
STAGE_FIELD_TYPES = {"days_left_in_stage": "Int64", "stage_goal": "String"}  # what it adds


class Stage(Strict):
    """A journey (lifecycle) stage the workflow belongs to. Conditions may then read
    `days_left_in_stage` (stage length minus days since the account's `stage_entered_on`; missing
    while the account is in another stage) and `stage_goal`."""

    name: str = Field(description="The stage, as the facts' `stage` field spells it.")
    days: Int = Field(ge=1, le=MAX_DAYS, description="How long the stage should take.")
    goal: str = Field(default="", description="What the stage should achieve.")


class Workflow(Strict):
    """A customer-success workflow: who enters, what happens to them, when they leave."""

    name: str = Field(pattern=NAME_PATTERN, description="Unique id; must match the file name.")
    description: str = ""
    object: Literal["account", "contact", "opportunity"] = Field(
        default="account",
        description="The participant type. Contact and opportunity facts also carry their "
                    "account's fields as `account.<field>`.",
    )
    category: str | None = Field(default=None, description="Default: the configured default.")
    owner: Owner = Field(description="Who owns the work this workflow creates.")
    priority: Int = Field(default=100, ge=-MAX_PRIORITY, le=MAX_PRIORITY,
                          description="Lower runs first when workflows compete.")
    state: WorkflowState = WorkflowState.draft
    entry: Condition | None = Field(default=None, description="Auto-deploy rule.")
    manual_entry: bool = Field(
        default=False, description="Manual deploys may enter even when entry conditions fail."
    )
    auto_deploy: bool = Field(
        default=True,
        description="false: the entry conditions admit no one; participants enter only by "
                    "manual deploys (Natero's Deploy Automatically off). Without `entry`, every "
                    "deploy request may enter.",
    )
    launch: Literal["everyone", "from_now_on"] = Field(
        default="everyone",
        description=(
            "everyone: admit all who qualify, including those who already did when the workflow "
            "was enabled. from_now_on: admit a participant only at a tick where its entry "
            "conditions have become true (they were not at the previous tick)."
        ),
    )
    reentry: Reentry = Field(default_factory=Reentry)
    stage: Stage | None = None
    milestones: list[Milestone] = Field(
        default_factory=list,
        description="With milestones, an enrollment completes once the flow has ended and every "
                    "milestone's task is completed.",
    )
    eligibility: Eligibility = Field(default_factory=Eligibility)
    objective: Objective | None = None
    holdout: Holdout | None = Field(
        default=None, description="Hold out a share of those who qualify as a control group.")
    exit: Condition | None = Field(
        default=None, description="Exit overrides: remove a participant wherever it is."
    )
    steps: list[Step] = Field(min_length=1)
    references: list[Reference] = Field(
        default_factory=list, max_length=MAX_REFERENCES,
        description="Reference documents (title + url) carried into every task it creates.")
    guards: WorkflowGuards | None = Field(
        default=None, description="Overrides of cswf.yaml's guard limits for this workflow.")

    @model_validator(mode="after")
    def _enabled_needs_entry_and_action(self) -> Workflow:
        if self.state is WorkflowState.enabled:
            if self.entry is None and self.auto_deploy:
                raise ValueError("an enabled workflow needs entry conditions (or auto_deploy: "
                                 "false, for manual deploys only)")
            if not _has_action(self.steps):
                raise ValueError("an enabled workflow needs at least one action")
        return self

    @model_validator(mode="after")
    def _holdout_needs_objective(self) -> Workflow:
        if self.holdout is not None and self.objective is None:
            raise ValueError("a holdout measures the objective: give the workflow an objective")
        return self

    @model_validator(mode="after")
    def _unique_milestones(self) -> Workflow:
        names = [m.name for m in self.milestones]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"milestone names must be unique: {', '.join(doubled)}")
        return self

    def milestones_in_order(self) -> list[Milestone]:
        """Milestones by trigger day (then as written): the order they start in."""
        return sorted(self.milestones, key=lambda m: m.trigger_days)

    @property
    def admits_new(self) -> bool:
        """Whether the entry conditions admit participants at a tick."""
        return self.state is WorkflowState.enabled and self.auto_deploy


def _has_action(steps: list[Step]) -> bool:
    return any(
        isinstance(step, ActionStep)
        or (isinstance(step, BranchStep) and any(_has_action(p.steps) for p in step.branch))
        for step in steps
    )


_HOLDERS = (ActionResult, Wait, WaitStep, ActionStep, BranchPath, BranchStep, Workflow)


def _rebuild() -> None:
    """The action types changed: rebuild every model that holds Action or Result. A model
    reuses the built schema of the models it holds, and branches hold steps that hold branches,
    so every old schema is dropped before any is rebuilt."""
    for model in _HOLDERS:
        model.__pydantic_core_schema__ = None  # type: ignore[assignment]
    for model in _HOLDERS:
        model.model_rebuild(force=True)


on_change(_rebuild)
