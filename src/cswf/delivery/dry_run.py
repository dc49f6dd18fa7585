"""Dry run: nothing leaves. Each would-be message becomes a file named by its action id.

The action's channel says what the file holds (`Channel.preview`): emails are the exact .eml the
SMTP sender would transmit (same checks, so an email that would fail for real fails here too);
every other action the JSON a webhook would get. Writing the same action again overwrites the
same file, so re-runs are harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from cswf.delivery.channel import Channel, Unsendable
from cswf.delivery.channels import channel_for
from cswf.delivery.config import DeliveryConfig
from cswf.delivery.model import OutboundAction, SendResult
from cswf.store.private import private_folder, write_private

_ANY = Channel()  # previews an action of no known channel as JSON


def preview_path(folder: Path, action_id: str, suffix: str) -> Path:
    """`folder/<action id, percent-encoded>.<suffix>`: one file per action, no subfolders."""
    return folder / f"{quote(action_id, safe='')}.{suffix}"


def _write(path: Path, data: bytes) -> None:
    """0600 in a 0700 folder: a preview holds a customer's message (store/private.py)."""
    if not path.parent.is_dir():
        private_folder(path.parent)
    write_private(path, data)


class DryRunSender:
    channel = "dry_run"

    def __init__(self, config: DeliveryConfig) -> None:
        self._config = config
        self.folder = config.dry_run_dir
        if self.folder.is_dir():
            private_folder(self.folder)

    def __repr__(self) -> str:
        return f"DryRunSender({self.folder})"

    def send(self, action: OutboundAction, now: datetime) -> SendResult:
        result, file = self._preview(action, now)
        if file is not None:
            _write(*file)
        return result

    def send_all(self, actions: Sequence[OutboundAction], now: datetime) -> list[SendResult]:
        """`send` for a batch, returning once every file is written: a second thread writes
        each file while the next message is composed (composing holds the interpreter,
        writing mostly waits on the file system). The first failed write is raised."""
        results = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cswf-preview") as writer:
            written = []
            for action in actions:
                result, file = self._preview(action, now)
                if file is not None:
                    written.append(writer.submit(_write, *file))
                results.append(result)
            for done in written:
                done.result()
        return results

    def _preview(self, action: OutboundAction, now: datetime
                 ) -> tuple[SendResult, tuple[Path, bytes] | None]:
        """The result of previewing `action`, and the file to write for it (none: unsendable)."""
        channel = channel_for(action.action_type) or _ANY
        try:
            preview = channel.preview(action, self._config, now)
        except Unsendable as exc:
            return SendResult.failed(str(exc), retryable=False), None
        path = preview_path(self.folder, action.action_id, preview.suffix)
        return (SendResult.sent(preview.provider_id or path.name, detail=f"dry run: {path}"),
                (path, preview.data))

    def close(self) -> None:
        """Files are closed as they are written."""
