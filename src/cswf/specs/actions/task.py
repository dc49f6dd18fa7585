"""task: work for a person, exported to `crm_tasks` for the CRM (the `table` channel)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import Field

from cswf.specs.action import ActionSpec, Outbox, OutboxContext, owner_columns, settings_json
from cswf.specs.actions import register
from cswf.specs.common import MAX_DAYS, Int, Owner


@register
class TaskAction(ActionSpec):
    results = ("completed", "incomplete")
    delivered_by = "table"

    type: Literal["task"]
    title: str = Field(description="Jinja2 template for the task title.")
    description: str = Field(default="", description="Jinja2 template for the task text.")
    due_days: Int = Field(default=3, ge=0, le=MAX_DAYS,
                          description="Due this many days after creation.")
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    assignee: Owner | None = Field(default=None, description="Default: the workflow owner.")
    subtasks: list[str] = Field(default_factory=list)

    def templates(self, folder: Path) -> dict[str, str]:
        return {"title": self.title, "description": self.description}

    def owners(self) -> Iterator[tuple[str, Owner]]:
        if self.assignee is not None:
            yield "assignee", self.assignee

    def outbox(self, context: OutboxContext) -> Outbox:
        title, description = context.text("title"), context.text("description")
        return Outbox(
            columns={
                **owner_columns(self.assignee or context.owner),
                "due_at": context.now + pl.duration(days=self.due_days),
                "subject": title[0],
                "body": description[0],
                "payload": settings_json(priority=self.priority, subtasks=self.subtasks,
                                         due_days=self.due_days,
                                         **({"references": context.references}
                                            if context.references else {})),
            },
            errors=[title[1], description[1]],
        )
