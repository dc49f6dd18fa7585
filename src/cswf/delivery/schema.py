"""Delivery's vocabulary: the channels actions leave by, the statuses and event types (the tables
themselves are defined in `store/tables.py`, documented column by column in docs/delivery.md)."""

from cswf.delivery.channels import channel_names
from cswf.store.tables import EVENT_TYPES, STATUSES, SUPPRESSING_EVENTS

CHANNELS = channel_names()  # the built-in ones (delivery/channels/); channel_names() for all

__all__ = ["CHANNELS", "EVENT_TYPES", "STATUSES", "SUPPRESSING_EVENTS"]
