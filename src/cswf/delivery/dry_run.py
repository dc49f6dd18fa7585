"""Dry run: nothing leaves. Each would-be message becomes a file named by its action id.

Emails are written as the exact .eml the SMTP sender would transmit (same checks, so an email
that would fail for real fails here too); every other action as the JSON a webhook would get.
Writing the same action again overwrites the same file, so re-runs are harmless.
"""

from __future__ import annotations

import email.policy
import os
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from cswf.delivery.config import DeliveryConfig
from cswf.delivery.email import InvalidEmail, compose_email
from cswf.delivery.model import EMAIL, OutboundAction, SendResult


def preview_path(folder: Path, action_id: str, suffix: str) -> Path:
    """`folder/<action id, percent-encoded>.<suffix>`: one file per action, no subfolders."""
    return folder / f"{quote(action_id, safe='')}.{suffix}"


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


class DryRunSender:
    channel = "dry_run"

    def __init__(self, config: DeliveryConfig) -> None:
        self._config = config
        self.folder = config.dry_run_dir

    def __repr__(self) -> str:
        return f"DryRunSender({self.folder})"

    def send(self, action: OutboundAction, now: datetime) -> SendResult:
        if action.action_type == EMAIL:
            try:
                message = compose_email(action.action_id, action.addresses, action.subject,
                                        action.body, bool(action.payload.get("html")),
                                        self._config, now)
            except InvalidEmail as exc:
                return SendResult.failed(str(exc), retryable=False)
            path = preview_path(self.folder, action.action_id, "eml")
            _write(path, message.as_bytes(policy=email.policy.SMTP))
            return SendResult.sent(str(message["Message-ID"]), detail=f"dry run: {path}")
        path = preview_path(self.folder, action.action_id, "json")
        _write(path, action.as_json())
        return SendResult.sent(path.name, detail=f"dry run: {path}")

    def close(self) -> None:
        """Files are closed as they are written."""
