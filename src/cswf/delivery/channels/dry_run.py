"""dry_run: the stand-in for every channel when `delivery.dry_run` is on (delivery/dry_run.py).
No action type names it; it is registered so `deliveries.channel = 'dry_run'` is a known,
idempotent channel (a preview file written twice is the same file)."""

from __future__ import annotations

from cswf.delivery.channel import Channel
from cswf.delivery.channels import register


@register
class DryRun(Channel):
    name = "dry_run"
