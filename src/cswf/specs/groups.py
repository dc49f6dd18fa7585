"""User groups: who works a group's tasks, and how tasks are shared among them.

A YAML file (`user_groups.yaml` by default, named by `groups_file` in cswf.yaml):

    groups:
      onboarding_team:
        assignment: round_robin      # or least_loaded
        members: [ana@example.com, ben@example.com]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cswf.specs.common import did_you_mean
from cswf.specs.common import yaml_problem as yaml_where

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
        raw = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise GroupsError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); save "
                          "it as UTF-8") from exc
    except yaml.YAMLError as exc:
        raise GroupsError(f"{path}: {yaml_problem(exc)}") from exc
    except RecursionError as exc:
        raise GroupsError(f"{path}: nests too deep to read") from exc
    except OSError as exc:
        raise GroupsError(f"{path}: cannot be read ({exc.strerror})") from exc
    if not isinstance(raw, dict):
        raise GroupsError(f"{path}: expected a mapping `groups:` holding one group per key, "
                          "each with `members: [...]`")
    try:
        parsed = _GroupsFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise GroupsError(f"{path}: {problems}") from exc
    bad = [name for name in parsed.groups if re.fullmatch(GROUP_NAME, name) is None]
    if bad:
        raise GroupsError(f"{path}: groups.{bad[0]}: a group name is letters, digits, _ and -")
    return parsed.groups


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error as one line: `line N: not valid YAML: what (column C)`."""
    line, what = yaml_where(exc)
    return what if line is None else f"line {line}: {what}"


def _problem(err: Mapping[str, Any]) -> str:
    """One pydantic error as `path: message`, with a did-you-mean for an unknown key."""
    path = ".".join(str(p) for p in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "too_short" and err["loc"][-1] == "members" and len(err["loc"]) == 3:
        return f"group '{err['loc'][1]}': members is empty; list at least one user"
    if err["type"] == "extra_forbidden":
        known = list(UserGroup.model_fields) if len(err["loc"]) > 1 else ["groups"]
        hint = did_you_mean(str(err["loc"][-1]), known)
        message = f"unknown key; {hint or 'keys: ' + ', '.join(known)}"
    return f"{path}: {message}"
