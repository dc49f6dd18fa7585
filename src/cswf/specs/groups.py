"""User groups: who works a group's tasks, and how tasks are shared among them.

A YAML file (`user_groups.yaml` by default, named by `groups_file` in cswf.yaml):

    groups:
      onboarding_team:
        assignment: round_robin      # or least_loaded
        members: [ana@example.com, ben@example.com]
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

GROUP_NAME = r"^[A-Za-z][A-Za-z0-9_\-]*$"


class UserGroup(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    members: tuple[str, ...] = Field(min_length=1)
    assignment: Literal["round_robin", "least_loaded"] = Field(
        default="round_robin",
        description="round_robin: members in turn. least_loaded: the member with the fewest "
                    "open tasks (ties: the first listed).",
    )

    @model_validator(mode="after")
    def _members_once(self) -> UserGroup:
        doubled = sorted({m for m in self.members if self.members.count(m) > 1})
        if doubled:
            raise ValueError(f"members listed twice: {', '.join(doubled)}")
        return self


class _GroupsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    groups: dict[str, UserGroup] = Field(default_factory=dict)


class GroupsError(ValueError):
    pass


def load_groups(path: Path) -> dict[str, UserGroup]:
    """The groups of `path`; no file means no groups. Errors name the file and the key."""
    if not path.exists():
        return {}
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        parsed = _GroupsFile.model_validate(raw)
    except yaml.YAMLError as exc:
        raise GroupsError(f"{path}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            ".".join(str(p) for p in err["loc"]) + ": "
            + str(err["msg"]).removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise GroupsError(f"{path}: {problems}") from exc
    bad = [name for name in parsed.groups if re.fullmatch(GROUP_NAME, name) is None]
    if bad:
        raise GroupsError(f"{path}: groups.{bad[0]}: a group name is letters, digits, _ and -")
    return parsed.groups
