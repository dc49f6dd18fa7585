"""A brand-new delivery channel in one file (for test_extending.py): a print-and-post service.

Its sender, whether sending twice is harmless, how its answers become events (`posted` is a
result waits and branches can ask of a postcard), and what a dry run writes instead.
test_extending.py registers it for its tests only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cswf.delivery.channel import Channel, Preview, Unsendable
from cswf.delivery.config import DeliveryConfig
from cswf.delivery.model import OutboundAction, SendResult


@dataclass
class PostSender:
    """Stands for the print service's API, which takes the action id as idempotency key."""

    channel = "post"
    cards: list[OutboundAction] = field(default_factory=list)

    def send(self, action: OutboundAction, now: datetime) -> SendResult:
        if not action.recipient:
            return SendResult.failed("no postal address", retryable=False)
        self.cards.append(action)
        stamp = action.payload.get("stamp")
        return SendResult("sent", provider_id=f"card-{len(self.cards)}",
                          events=(("sent", "printed"), ("posted", f"{stamp} class")))

    def close(self) -> None:
        """Nothing to close: one request per card."""


class Post(Channel):
    name = "post"
    idempotent = True

    def sender(self, config: DeliveryConfig) -> PostSender:
        return PostSender()

    def preview(self, action: OutboundAction, config: DeliveryConfig, now: datetime) -> Preview:
        if not action.recipient:
            raise Unsendable("no postal address")
        return Preview("txt", f"To: {action.recipient}\n\n{action.body}\n".encode())
