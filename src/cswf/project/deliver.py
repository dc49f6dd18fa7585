"""Delivery as a run of the project: results back in first, then send what is due, once."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import duckdb

from cswf.delivery import DeliveryReport, approve_spike, default_senders, deliver
from cswf.delivery.zones import participant_time_zones
from cswf.ingest.action_events import ingest_action_events
from cswf.ingest.landing import EVENTS_FOLDER
from cswf.settings import Settings

log = logging.getLogger(__name__)
MAX_LOGGED = 1000  # rejected event rows logged one by one; the rest are counted


def deliver_outbox(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: datetime
) -> DeliveryReport:
    """Results back in first (so a fresh unsubscribe wins), then send what is due, once."""
    config = settings.delivery_config()
    events = settings.landing_path / EVENTS_FOLDER
    if events.is_dir():
        results_in(con, events, now)
    return deliver(con, default_senders(config), config, now,
                   time_zones=participant_time_zones(con, now))


def results_in(con: duckdb.DuckDBPyConnection, folder: Path, now: datetime) -> None:
    """Ingest the action events; nobody prints this ingest's report, so its rejected rows go to
    the log (`cswf ingest` prints them instead, once)."""
    rejected = ingest_action_events(con, folder, now).rejected
    for message in rejected[:MAX_LOGGED]:
        log.warning("action events: %s", message)
    if len(rejected) > MAX_LOGGED:
        log.warning("action events: %d more rejected rows", len(rejected) - MAX_LOGGED)


def approve_delivery_spike(con: duckdb.DuckDBPyConnection, now: datetime,
                           by: str = "cli") -> int:
    """A person's go-ahead for the volume the breaker held; the next delivery sends it."""
    return approve_spike(con, now, by)
