"""webhook / notification: the action POSTed as JSON to an outside system or a chat channel
(the `webhook` channel, with `Idempotency-Key: <action id>`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from cswf.specs.action import ActionSpec, Outbox, OutboxContext, owner_columns, settings_json
from cswf.specs.actions import register


@register
class WebhookAction(ActionSpec):
    """An HTTP POST of the action as JSON to an outside system (webhook), or a chat message
    (notification, Slack-style); sent with `Idempotency-Key: <action id>`."""

    results = ("sent",)
    delivered_by = "webhook"

    type: Literal["webhook", "notification"]
    text: str = Field(description="Jinja2 template: the message, or the webhook's summary.")
    endpoint: str | None = Field(
        default=None,
        description="A named URL of delivery.webhook.endpoints in cswf.yaml; default: its url.",
    )

    def templates(self, folder: Path) -> dict[str, str]:
        return {"text": self.text}

    def outbox(self, context: OutboxContext) -> Outbox:
        message = context.text("text")
        return Outbox(
            columns={
                **owner_columns(context.owner),
                "subject": message[0],
                "body": message[0],
                "payload": settings_json(endpoint=self.endpoint),
            },
            errors=[message[1]],
        )
