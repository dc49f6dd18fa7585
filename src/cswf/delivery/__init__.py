"""Delivery: the outbox's actions sent exactly once (SMTP, webhooks, CRM export tables), the
safety rules a CS team needs, and results back in as action events. See docs/delivery.md."""

from cswf.delivery.brakes import approve_spike
from cswf.delivery.config import (
    DeliveryConfig,
    QuietHours,
    RetryPolicy,
    SmtpConfig,
    Unsubscribe,
    WebhookConfig,
)
from cswf.delivery.deliver import (
    DeliveryReport,
    Fault,
    default_senders,
    deliver,
    resolve_unknown,
)
from cswf.delivery.dry_run import DryRunSender
from cswf.delivery.model import OutboundAction, Sender, SendResult
from cswf.delivery.smtp import SmtpSender
from cswf.delivery.webhook import WebhookSender
from cswf.ingest.action_events import (
    EventIngestReport,
    ingest_action_events,
    record_events,
    suppress,
)

__all__ = [
    "DeliveryConfig",
    "DeliveryReport",
    "DryRunSender",
    "EventIngestReport",
    "Fault",
    "OutboundAction",
    "QuietHours",
    "RetryPolicy",
    "SendResult",
    "Sender",
    "SmtpConfig",
    "SmtpSender",
    "Unsubscribe",
    "WebhookConfig",
    "WebhookSender",
    "approve_spike",
    "default_senders",
    "deliver",
    "ingest_action_events",
    "record_events",
    "resolve_unknown",
    "suppress",
]
