"""Catalyst's lifecycle rule: a running (enabled or paused) workflow takes non-structural edits
(conditions, templates, delay lengths, branch criteria); structural ones (adding, removing or
moving a step, action, branch path or milestone; adding, removing or changing a holdout, which
would move participants between the groups) wait until it is disabled, because enrollments in
flight are positions in the flow's structure."""

from __future__ import annotations

from cswf.specs.flow import Flow
from cswf.specs.workflow import ActionStep, BranchStep, Workflow

RUNNING = ("enabled", "paused")


def structure(spec: Workflow, flow: Flow) -> list[str]:
    """The flow's shape, one readable line per part, in order."""
    lines = []
    for node in flow:
        kind = type(node.step).__name__.removesuffix("Step").lower()
        lines.append(f"{kind} step '{node.name}'")
        if isinstance(node.step, ActionStep):
            lines += [f"{a.type} action {k} of step '{node.name}'"
                      for k, a in enumerate(node.step.actions)]
        if isinstance(node.step, BranchStep):
            lines += [f"path '{p.name}' of branch '{node.name}'" for p in node.step.branch]
    lines += [f"milestone '{m.name}'" for m in spec.milestones]
    if spec.holdout is not None:  # who is held out must not change mid-flight
        lines.append(f"holdout of {spec.holdout.percent:g}% over {spec.holdout.window_days} days")
    return lines


def structural_changes(before: list[str], after: list[str]) -> list[str]:
    """What an edit changed in the structure, by name; empty when only settings changed."""
    removed = [line for line in before if line not in after]
    added = [line for line in after if line not in before]
    changes = [f"{line} removed" for line in removed] + [f"{line} added" for line in added]
    if not changes and before != after:
        changes.append("steps reordered")
    return changes


def refusal(workflow: str, state: str, changes: list[str]) -> str:
    return (f"structural change to {state} workflow '{workflow}' refused: "
            f"{'; '.join(changes)}. Disable the workflow (state: disabled) to change its "
            f"structure; only conditions, templates, delay lengths and branch criteria may "
            f"change while it runs")
