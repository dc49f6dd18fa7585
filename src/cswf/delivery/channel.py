"""What a delivery channel is: one way actions leave, and what the delivery loop asks of it.

An action type names its channel (`ActionSpec.delivered_by`); a channel is one module of
`delivery/channels/` holding a `Channel` subclass registered with `@register`. The loop in
deliver.py does the rest the same for every channel: the `deliveries` row, claiming before the
send, recording the `SendResult` (status, retries, events), recovery after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

import duckdb
import polars as pl

from cswf.delivery.config import DeliveryConfig
from cswf.delivery.model import OutboundAction, Sender
from cswf.delivery.report import DeliveryReport
from cswf.delivery.rules import TimeZones


class Unsendable(ValueError):
    """The action cannot become a message on its channel; it fails without a retry."""


@dataclass(frozen=True)
class DeliveryRun:
    """One delivery run, as a channel's own steps see it."""

    con: duckdb.DuckDBPyConnection
    config: DeliveryConfig
    now: datetime
    report: DeliveryReport
    time_zones: TimeZones | None = None


@dataclass(frozen=True)
class Preview:
    """A dry run's stand-in for the message: a file `<action id>.<suffix>` holding `data`."""

    suffix: str
    data: bytes
    provider_id: str | None = None  # default: the file's name


class Channel:
    """One way out. Override what differs; the defaults suit an idempotent channel whose
    sender takes each due action as it is."""

    name: ClassVar[str]  # what action types name, and `deliveries.channel` records
    # Sending twice is harmless (an idempotency key, an upsert, a file overwritten): an action
    # a crash left in `sending` is sent again. Otherwise it becomes `unknown` for a human.
    idempotent: ClassVar[bool] = True
    interrupted: ClassVar[str] = (  # last_error of such an `unknown` row
        "interrupted between handing the action over and recording the result: it may or may "
        "not have been sent. Check the receiving side, then resolve_unknown() it as sent or "
        "pending (docs/delivery.md)")

    def sender(self, config: DeliveryConfig) -> Sender | None:
        """The real sender for this config (`default_senders`); None: the channel has none."""
        return None

    def deliver_without_sender(self, run: DeliveryRun, rows: pl.DataFrame) -> bool:
        """Deliver these due rows when no sender is given for the channel (the `table`
        channel writes them itself); False: they wait for a sender."""
        return False

    def screen(self, run: DeliveryRun, rows: pl.DataFrame, sender: Sender) -> pl.DataFrame:
        """Before sending: the rows that go on, with their `recipients` (a list, or null for
        the outbox recipient); rows left out must have been recorded (held, failed)."""
        return rows

    def preview(self, action: OutboundAction, config: DeliveryConfig, now: datetime) -> Preview:
        """What a dry run writes instead of sending: by default the JSON a webhook would get.
        Raises Unsendable when a real send would fail on the content."""
        return Preview("json", action.as_json())
