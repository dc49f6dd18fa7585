"""Files the pipeline writes are its own: 0600 files, 0700 folders, never world-readable.

The warehouse, the BI copy, the CRM exports and the dry-run previews hold customers' names and
addresses. Two layers: the entry points (the CLI, the Dagster definitions, the demo, opening the
warehouse) set the process umask to 077, which covers files a library creates on its own (DuckDB's
database and its .wal, Parquet written by Polars or DuckDB); and the modules that write files
make them private explicitly, so a caller with a loose umask gets private files too.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_FILE, PRIVATE_FOLDER = 0o600, 0o700
PRIVATE_UMASK = 0o077


def private_umask() -> None:
    """No group or other bits on anything this process creates from now on (stricter bits
    already set are kept)."""
    os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)


def private_file(path: Path) -> None:
    os.chmod(path, PRIVATE_FILE)


def private_folder(folder: Path) -> Path:
    """`folder` (created with its missing parents, each 0700), made 0700 itself."""
    new_folders(folder)
    os.chmod(folder, PRIVATE_FOLDER)
    return folder


def new_folders(folder: Path) -> None:
    """Create `folder`'s missing parents and itself 0700; existing ones are left as they are
    (the database may live in the project folder itself)."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for path in reversed(missing):
        path.mkdir(mode=PRIVATE_FOLDER, exist_ok=True)
        os.chmod(path, PRIVATE_FOLDER)


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path`, 0600 from the start (an existing file is made 0600 first).

    In place, not renamed over: a file per action is written thousands of times a run, a
    rename costs a journal write each, and a half-written preview is rewritten whole by the
    next run (previews are overwritten by action id)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)  # an existing file kept its old mode
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
