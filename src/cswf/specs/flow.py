"""A flow as a program: the nested steps of a spec numbered in order, with jumps.

Steps are numbered depth first: a branch, then each of its paths' steps, then what follows the
branch. Every jump goes forward (into a path, or past the branch), so one pass over the nodes in
order moves every participant as far as it may go in a tick. A participant's position is a node
number; the end of the flow is `len(flow)`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from cswf.specs.workflow import (
    MAX_STEPS_PER_BRANCH,
    Action,
    ActionResult,
    ActionStep,
    BranchStep,
    DelayStep,
    WaitStep,
)

AnyStep = ActionStep | DelayStep | WaitStep | BranchStep


@dataclass(frozen=True)
class FlowNode:
    index: int
    step: AnyStep
    loc: str  # where the step is in the spec: steps.2.branch.0.steps.1
    next: int  # the node after this one (len(flow): the flow ends)
    targets: tuple[int, ...] = ()  # a branch: the first node of each path, in check order

    @property
    def name(self) -> str:
        return self.step.name


@dataclass(frozen=True)
class ActionAddress:
    """Where an action lives: its node and its position in the step."""

    node: int
    position: int
    action: Action

    @property
    def key(self) -> str:
        return action_key(self.node, self.position)


def action_key(node: int, position: int) -> str:
    return f"s{node}.a{position}"


@dataclass(frozen=True)
class Flow:
    nodes: tuple[FlowNode, ...]
    addresses: dict[str, ActionAddress] = field(default_factory=dict)  # "step.action" → address

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[FlowNode]:
        return iter(self.nodes)

    def __getitem__(self, index: int) -> FlowNode:
        return self.nodes[index]

    def name_at(self, index: int) -> str:
        return self.nodes[index].name if index < len(self.nodes) else END_NAME

    def address(self, ref: ActionResult) -> ActionAddress:
        return self.addresses[ref.action]

    def actions(self) -> Iterator[tuple[FlowNode, int, Action]]:
        for node in self.nodes:
            if isinstance(node.step, ActionStep):
                for position, action in enumerate(node.step.actions):
                    yield node, position, action


END_NAME = "(end of flow)"


def flatten(steps: Sequence[AnyStep]) -> Flow:
    """Number the steps depth first and resolve every jump."""
    placed: list[dict] = []

    def place(sequence: Sequence[AnyStep], loc: str) -> tuple[int | None, list[int]]:
        first: int | None = None
        exits: list[int] = []
        for i, step in enumerate(sequence):
            index = len(placed)
            placed.append({"step": step, "loc": f"{loc}.{i}", "next": None, "targets": []})
            for exit_ in exits:
                placed[exit_]["next"] = index
            first = index if first is None else first
            exits = [index]
            if isinstance(step, BranchStep):
                for k, path in enumerate(step.branch):
                    start, path_exits = place(path.steps, f"{loc}.{i}.branch.{k}.steps")
                    placed[index]["targets"].append(start)
                    exits += path_exits
        return first, exits

    _, exits = place(steps, "steps")
    end = len(placed)
    for exit_ in exits:
        placed[exit_]["next"] = end
    nodes = tuple(
        FlowNode(
            index=i,
            step=p["step"],
            loc=p["loc"],
            next=p["next"],
            # an empty path continues after the branch, like a check that does not hold
            targets=tuple(p["next"] if t is None else t for t in p["targets"]),
        )
        for i, p in enumerate(placed)
    )
    addresses = {}
    for node in nodes:
        if isinstance(node.step, ActionStep):
            for position, action in enumerate(node.step.actions):
                address = ActionAddress(node.index, position, action)
                addresses[f"{node.name}.{position}"] = address
                if action.name is not None:
                    addresses[f"{node.name}.{action.name}"] = address
    return Flow(nodes, addresses)


def flow_problems(steps: Sequence[AnyStep]) -> list[tuple[str, str]]:
    """Catalyst's rules of a flow, as (path in the spec, message)."""
    problems: list[tuple[str, str]] = []
    seen: dict[str, str] = {}

    def walk(sequence: Sequence[AnyStep], loc: str, visible: dict[str, Action]) -> None:
        if len(sequence) > MAX_STEPS_PER_BRANCH:
            problems.append((loc, f"a branch holds at most {MAX_STEPS_PER_BRANCH} steps; this "
                                  f"one has {len(sequence)}"))
        visible = dict(visible)
        previous: AnyStep | None = None
        for i, step in enumerate(sequence):
            here = f"{loc}.{i}"
            if step.name in seen:
                problems.append((f"{here}.name", f"step name '{step.name}' is also used at "
                                                 f"{seen[step.name]}"))
            seen.setdefault(step.name, here)
            waits = (DelayStep, WaitStep)
            if isinstance(step, waits) and isinstance(previous, waits):
                kind = "delay" if isinstance(previous, DelayStep) else "wait"
                problems.append((here, f"delays cannot be stacked: step '{step.name}' directly "
                                       f"follows {kind} '{previous.name}'"))
            if isinstance(step, WaitStep) and step.wait.on_action is not None:
                problems.extend(_reference(step.wait.on_action, f"{here}.wait", visible))
            if isinstance(step, BranchStep):
                for k, path in enumerate(step.branch):
                    if path.on_action is not None:
                        problems.extend(
                            _reference(path.on_action, f"{here}.branch.{k}", visible)
                        )
                    walk(path.steps, f"{here}.branch.{k}.steps", visible)
            if isinstance(step, ActionStep):
                for position, action in enumerate(step.actions):
                    visible[f"{step.name}.{position}"] = action
                    if action.name is not None:
                        visible[f"{step.name}.{action.name}"] = action
            previous = step

    walk(steps, "steps", {})
    return problems


def _reference(ref: ActionResult, loc: str, visible: dict[str, Action]) -> list[tuple[str, str]]:
    action = visible.get(ref.action)
    if action is None:
        earlier = ", ".join(sorted(visible)) or "none"
        return [(f"{loc}.action", f"'{ref.action}' names no action that runs earlier on this "
                                  f"path; earlier actions: {earlier}")]
    allowed = action.results
    if ref.result not in allowed:
        article = "an" if action.type[0] in "aeiou" else "a"
        return [(f"{loc}.result", f"'{ref.result}' is not a result of {article} {action.type}; "
                                  f"results: {', '.join(allowed)}")]
    return []
