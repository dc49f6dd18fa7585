"""Delivery as a run of the project: results back in first, then send what is due, once."""

from __future__ import annotations

from datetime import datetime

import duckdb

from cswf.delivery import DeliveryReport, approve_spike, default_senders, deliver
from cswf.delivery.zones import participant_time_zones
from cswf.ingest.action_events import ingest_action_events
from cswf.ingest.landing import EVENTS_FOLDER
from cswf.settings import Settings


def deliver_outbox(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: datetime
) -> DeliveryReport:
    """Results back in first (so a fresh unsubscribe wins), then send what is due, once."""
    config = settings.delivery_config()
    events = settings.landing_path / EVENTS_FOLDER
    if events.is_dir():
        ingest_action_events(con, events, now)
    return deliver(con, default_senders(config), config, now,
                   time_zones=participant_time_zones(con, now))


def approve_delivery_spike(con: duckdb.DuckDBPyConnection, now: datetime,
                           by: str = "cli") -> int:
    """A person's go-ahead for the volume the breaker held; the next delivery sends it."""
    return approve_spike(con, now, by)
