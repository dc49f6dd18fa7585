"""What one delivery run did, for the caller (CLI, Dagster) and the log."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


@dataclass
class DeliveryReport:
    now: datetime
    dry_run: bool
    outcomes: Counter[str] = field(default_factory=Counter)  # status → actions this run
    recovered_unknown: list[str] = field(default_factory=list)  # emails cut off mid-send
    recovered_retried: list[str] = field(default_factory=list)  # idempotent, sent again
    waiting: int = 0  # due, but no sender for their channel this run (none given, or down)
    errors: list[str] = field(default_factory=list)  # "<action_id>: <error>"
    preview_dir: Path | None = None
    export_files: list[Path] = field(default_factory=list)
    rate_limited: Counter[str] = field(default_factory=Counter)  # channel → deferred by its limit
    breaker: str | None = None  # the one line when the breaker held the run (nothing sent)
    awaiting_approval: int = 0  # emails waiting for the owner's approval after this run

    def summary(self) -> str:
        if self.breaker is not None:
            return self.breaker
        parts = [f"{n} {status}" for status, n in sorted(self.outcomes.items())]
        if self.recovered_unknown:
            parts.append(f"{len(self.recovered_unknown)} interrupted emails marked unknown")
        for channel, n in sorted(self.rate_limited.items()):
            parts.append(f"{n} held by the {channel} rate limit")
        if self.waiting:
            parts.append(f"{self.waiting} waiting for a sender")
        if self.awaiting_approval:
            parts.append(f"{self.awaiting_approval} awaiting approval")
        text = ", ".join(parts) or "nothing due"
        if self.preview_dir is not None:
            text += f" (dry run: would-be messages in {self.preview_dir})"
        return text
