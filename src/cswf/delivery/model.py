"""What a sender gets (one outbox row) and what it answers; the Sender protocol."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

ACTION_FIELDS = ("action_id", "action_type", "tick", "workflow", "version", "enrollment_id",
                 "participant_id", "step", "step_name", "category", "assignee", "recipient",
                 "due_at", "subject", "body")


@dataclass(frozen=True)
class OutboundAction:
    """One outbox row, with its JSON payload parsed."""

    action_id: str
    action_type: str
    tick: datetime | None = None
    workflow: str | None = None
    version: str | None = None
    enrollment_id: str | None = None
    participant_id: str | None = None
    step: int | None = None
    step_name: str | None = None
    category: str | None = None
    assignee: str | None = None
    recipient: str | None = None
    due_at: datetime | None = None
    subject: str | None = None
    body: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    # Not sent to webhook receivers (as_json): delivery's own working data.
    recipients: tuple[str, ...] = ()  # email: the resolved addresses (else: the recipient)
    on_error: str | None = None  # continue | retry | exit; None (older outbox): retry

    @property
    def addresses(self) -> tuple[str | None, ...]:
        """Whom the email goes to: the resolved addresses, or the outbox recipient as is."""
        return self.recipients or (self.recipient,)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> OutboundAction:
        try:
            payload = json.loads(row.get("payload") or "{}")
        except json.JSONDecodeError:
            payload = {"raw": row.get("payload")}
        if not isinstance(payload, dict):
            payload = {"value": payload}
        recipients = tuple(a for a in row.get("recipients") or () if a)
        return cls(**{name: row.get(name) for name in ACTION_FIELDS}, payload=payload,
                   recipients=recipients, on_error=row.get("on_error"))

    def as_json(self) -> bytes:
        """The action as a receiver sees it: stable bytes, so a retry sends the same body."""
        document: dict[str, Any] = {name: getattr(self, name) for name in ACTION_FIELDS}
        for name in ("tick", "due_at"):
            value = document[name]
            document[name] = None if value is None else value.isoformat() + "Z"
        document["payload"] = self.payload
        return json.dumps(document, sort_keys=True, ensure_ascii=False).encode()


Outcome = Literal["sent", "failed", "unknown"]


@dataclass(frozen=True)
class SendResult:
    """`failed` + retryable: try again later (backoff); not retryable: final. `unknown`: the
    server may have accepted it; a human decides. `sender_down`: nothing could be sent on this
    channel (connection, TLS, login), so the run stops using it."""

    outcome: Outcome
    provider_id: str | None = None
    error: str | None = None
    retryable: bool = False
    sender_down: bool = False
    events: tuple[tuple[str, str | None], ...] = ()  # (event_type, detail)
    note: str | None = None  # kept in last_error of a sent row (the From fell back, ...)

    @classmethod
    def sent(cls, provider_id: str | None, detail: str | None = None) -> SendResult:
        return cls("sent", provider_id=provider_id, events=(("sent", detail or provider_id),))

    @classmethod
    def failed(cls, error: str, *, retryable: bool, sender_down: bool = False,
               provider_id: str | None = None,
               events: tuple[tuple[str, str | None], ...] = ()) -> SendResult:
        return cls("failed", provider_id=provider_id, error=error, retryable=retryable,
                   sender_down=sender_down, events=events)


class Sender(Protocol):
    """Sends one action; never raises for a delivery problem (answers a SendResult)."""

    channel: str

    def send(self, action: OutboundAction, now: datetime) -> SendResult: ...

    def close(self) -> None: ...
