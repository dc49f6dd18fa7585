"""What the workflow model and the action types share: strict models, names, owners.

Kept apart from `workflow.py` so that action types (`specs/actions/`) can use them while the
workflow model is built from the registered action types.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Owner(Strict):
    """Who gets the work: a fact field holding a user (the account's CSM), a group, or a user."""

    field: str | None = Field(default=None, description="Fact field holding the assignee.")
    group: str | None = Field(default=None, description="A user group name.")
    user: str | None = Field(default=None, description="One user (email or login).")

    @model_validator(mode="after")
    def _exactly_one(self) -> Owner:
        given = [k for k in ("field", "group", "user") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("owner needs exactly one of: field, group, user")
        return self


def unknown_field(name: str, fact_fields: Iterable[str]) -> str:
    """The message for a spec naming a fact field that does not exist."""
    return f"unknown field '{name}'; fields that exist: {', '.join(sorted(fact_fields))}"
