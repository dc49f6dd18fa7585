"""field_update: set a CRM field on the participant, exported to `crm_field_updates` (the
`table` channel); facts/overlay.py also reads it back as a fact until the CRM has it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import Field

from cswf.specs.action import ActionSpec, Outbox, OutboxContext, Text, owner_columns
from cswf.specs.actions import register


@register
class FieldUpdateAction(ActionSpec):
    results = ("sent",)
    delivered_by = "table"

    type: Literal["field_update"]
    field: str = Field(description="The CRM field to set on the participant.")
    value: str | int | float | bool | None = Field(
        description="The new value; text is a Jinja2 template."
    )

    def templates(self, folder: Path) -> dict[str, str]:
        return {"value": self.value} if isinstance(self.value, str) else {}

    def outbox(self, context: OutboxContext) -> Outbox:
        errors: list[Text] = []
        if isinstance(self.value, str):
            rendered, error = context.text("value")
            errors = [error]
        else:
            rendered = pl.lit(None if self.value is None else str(self.value), dtype=pl.String)
        return Outbox(
            columns={
                **owner_columns(context.owner),
                "subject": pl.lit(f"set {self.field}"),
                "body": rendered,
                "payload": pl.struct(field=pl.lit(self.field), value=rendered)
                .struct.json_encode(),
            },
            errors=errors,
        )
