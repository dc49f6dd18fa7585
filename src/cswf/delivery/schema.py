"""Delivery's vocabulary: the channels actions leave by, the statuses and event types (the tables
themselves are defined in `store/tables.py`, documented column by column in docs/delivery.md)."""

from cswf.store.tables import EVENT_TYPES, STATUSES, SUPPRESSING_EVENTS

CHANNELS = ("smtp", "webhook", "dry_run", "table")

__all__ = ["CHANNELS", "EVENT_TYPES", "STATUSES", "SUPPRESSING_EVENTS"]
