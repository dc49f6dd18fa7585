"""A brand-new action type in one file (for test_extending.py): a postcard, printed and posted.

Everything cswf needs to know about it is here: its keys, the results a wait or branch may ask
of it, the channel that delivers it, its template, the fact field it reads and its outbox
columns. test_extending.py registers it for its tests only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import Field

from cswf.specs.action import ActionSpec, Outbox, OutboxContext, owner_columns, settings_json
from cswf.specs.common import unknown_field


class PostcardAction(ActionSpec):
    results = ("sent", "posted", "returned", "not_returned")
    delivered_by = "post"

    type: Literal["postcard"]
    to: str = Field(default="postal_address", description="Fact field holding the address.")
    message: str = Field(description="Jinja2 template: what the card says.")
    stamp: Literal["first", "second"] = "second"

    def templates(self, folder: Path) -> dict[str, str]:
        return {"message": self.message}

    def fact_fields(self) -> set[str]:
        return {self.to}

    def field_problems(self, participant: str, fact_fields: Mapping[str, Any]
                       ) -> list[tuple[str, str]]:
        return [] if self.to in fact_fields else [("to", unknown_field(self.to, fact_fields))]

    def outbox(self, context: OutboxContext) -> Outbox:
        message, error = context.text("message")
        return Outbox(
            columns={
                **owner_columns(context.owner),
                "recipient": pl.col(self.to).cast(pl.String),
                "subject": pl.lit(f"postcard ({self.stamp} class)"),
                "body": message,
                "payload": settings_json(stamp=self.stamp),
            },
            errors=[error],
        )
