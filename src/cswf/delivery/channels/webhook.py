"""webhook: an HTTP POST of the action as JSON (delivery/webhook.py), for webhook and
notification actions. Idempotent: every request carries `Idempotency-Key: <action id>`."""

from __future__ import annotations

from cswf.delivery.channel import Channel
from cswf.delivery.channels import register
from cswf.delivery.config import DeliveryConfig
from cswf.delivery.model import Sender
from cswf.delivery.webhook import WebhookSender


@register
class Webhook(Channel):
    name = "webhook"

    def sender(self, config: DeliveryConfig) -> Sender:
        return WebhookSender(config.webhook)
