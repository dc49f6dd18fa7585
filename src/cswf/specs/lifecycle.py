"""Catalyst's lifecycle rule: a running (enabled or paused) workflow takes non-structural edits
(conditions, templates, delay lengths, branch criteria and path names); structural ones (adding,
removing or moving a step, action, branch path or milestone; adding, removing or changing a
holdout, which would move participants between the groups) wait until it is disabled, because
enrollments in flight are positions in the flow's structure.

Two settings are fixed while it runs, whatever the structure: `object` (its enrollments are
participants of that type) and `launch` (who was admitted followed from it). A workflow that ever
ran never returns to draft: disabled is where it rests."""

from __future__ import annotations

import re

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


_PATH = re.compile(r"^path '.*' of branch '(?P<branch>.*)'$")


def _paths_by_position(lines: list[str]) -> list[str]:
    """A branch's paths by their position, not their name: renaming a path moves no one (a
    participant's position is a node number), so a new name is not a structural change."""
    seen: dict[str, int] = {}
    out = []
    for line in lines:
        found = _PATH.match(line)
        if found is None:
            out.append(line)
            continue
        branch = found["branch"]
        seen[branch] = seen.get(branch, 0) + 1
        out.append(f"path {seen[branch]} of branch '{branch}'")
    return out


def structural_changes(before: list[str], after: list[str]) -> list[str]:
    """What an edit changed in the structure, by name; empty when only settings changed (a
    renamed branch path is a setting: see _paths_by_position)."""
    before, after = _paths_by_position(before), _paths_by_position(after)
    removed = [line for line in before if line not in after]
    added = [line for line in after if line not in before]
    changes = [f"{line} removed" for line in removed] + [f"{line} added" for line in added]
    if not changes and before != after:
        changes.append("steps reordered")
    return changes


def refusal(workflow: str, state: str, changes: list[str]) -> str:
    return (f"structural change to {state} workflow '{workflow}' refused: "
            f"{'; '.join(changes)}. Disable the workflow (state: disabled) to change its "
            f"structure; only conditions, templates, delay lengths, branch criteria and path "
            f"names may change while it runs")


def fixed_setting(workflow: str, state: str, key: str, before: str, after: str) -> str:
    return (f"{key} of {state} workflow '{workflow}' is fixed: it was '{before}', the spec now "
            f"says '{after}'. Copy the spec to a new workflow name for {key} '{after}' "
            f"(and disable this one), or set {key} back to '{before}'")


def back_to_draft(workflow: str) -> str:
    return (f"workflow '{workflow}' has run, so it cannot return to draft. Use state: disabled "
            f"to stop it (everyone inside exits), or copy the spec to a new workflow name to "
            f"start a draft")


def spec_gone(workflow: str, inside: int, state: str) -> str:
    return (f"the spec of {state} workflow '{workflow}' is gone while {inside} participant(s) "
            f"are inside; ticks stop until it is back. Restore {workflow}.yaml and set state: "
            f"disabled (everyone inside exits); after a tick has run it disabled, the file may "
            f"be deleted and the name is free again")
