"""A tick's shard slices: each shard's part of a tick, as Parquet files in a staging folder,
published whole or not at all, for the global step to merge and commit; and each shard's
inputs, published the same way by the tick's prepare step, so a shard step reads only its own
participants' rows and never opens the working database (or, with
`staging_url`, rows of a Postgres database, store/pgslices.py, or objects in an S3-compatible
bucket, store/s3slices.py; each is a `SliceStore`).

A slice is written into a temporary folder beside its final place, every file and the folder
fsynced, then renamed to `<staging>/<tick key>/shard-<k>-of-<n>/` (inputs:
`input-<k>-of-<n>/`) in one `os.rename`: a reader
sees the whole slice or none of it, even if the shard's process is killed mid-write (a killed
shard leaves only a `.tmp-` folder, which nothing reads and the next attempt replaces). Slices
are immutable once published; the DuckDB file keeps one writer, the global step.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import polars as pl

from cswf.calendar import key_of
from cswf.store.durable import fsync

# A slice's frame as given to `publish`: a frame, or a Parquet file already written (the
# prepare step's cut, store/cut.py), moved or read as it is
Frame = pl.DataFrame | Path

MANIFEST = "slice.json"
TMP_PREFIX = ".tmp-"
# What a slice holds: a shard's part of the tick's result (for the global step), or its
# inputs (published by the tick's prepare step, so a shard step reads nothing else)
RESULT, INPUT = "shard", "input"


class MissingSlice(RuntimeError):
    """The global step found a shard without its published slice: nothing is committed."""


class SliceStoreError(RuntimeError):
    """A slice store cannot be reached or used: one line naming it (never a secret) and what
    to do."""


def bucket_of(key: str) -> str:
    """The bucket of an id (an SQL expression), in DuckDB: docs/scaling.md's bucket SQL (the
    first 8 bytes of SHA-256 of the id as text, modulo 10,000); a null id is the empty
    string's, as engine/shards.py has it."""
    return f"('0x' || sha256(coalesce(CAST({key} AS VARCHAR), ''))[1:16])::UBIGINT % 10000"


def shard_of(key: str, shards: int) -> str:
    """The shard (of `shards`) of an SQL expression's bucket: engine/shards.py's
    `shard_of_bucket`."""
    return f"({bucket_of(key)} * {shards} // 10000)::INTEGER"



def staging_folder(folder: Path) -> Path:
    """`folder` (under staging_dir), made if need be; one line if it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        file = next((p for p in (folder, *folder.parents) if p.is_file()), None)
        why = f"{file} is a file, not a folder" if file else err.strerror or str(err)
        raise SliceStoreError(f"staging_dir: cannot use {folder}: {why} — give staging_dir (or "
                              "CSWF_STAGING_DIR) a folder cswf may write to") from None
    return folder


def tick_name(as_of: datetime) -> str:
    """The tick's key as a folder or object name: `2026-05-31-0000` (no `:`)."""
    return key_of(as_of).replace(":", "")


def tick_folder(staging: Path, as_of: datetime) -> Path:
    """Where the slices of the tick at `as_of` are published (one folder per tick)."""
    return staging / tick_name(as_of)


def slice_name(shard: int, shards: int, kind: str = RESULT) -> str:
    """`shard-1-of-4` (a shard's result) or `input-1-of-4` (its inputs)."""
    return f"{kind}-{shard}-of-{shards}"


def wanted(shards: int, only: int | None) -> list[int]:
    """The shards a read asks for: all of them, or `only` that one."""
    return list(range(shards)) if only is None else [only]


@dataclass(frozen=True)
class Slice:
    """One published slice: its frames by name and what the shard said about them."""

    shard: int
    frames: dict[str, pl.DataFrame]
    info: dict[str, object]


@dataclass(frozen=True)
class SliceFiles:
    """One published slice as Parquet files on this machine, for DuckDB and Polars to scan
    (the global step streams them into the tables and never holds them): its files by frame
    name and what the shard said about them."""

    shard: int
    files: dict[str, Path]
    info: dict[str, object]


def publish_slice(staging: Path, as_of: datetime, shard: int, shards: int,
                  frames: Mapping[str, Frame], info: Mapping[str, object],
                  before_publish: object = None, kind: str = RESULT) -> Path:
    """Write the frames (name → frame) and `info` as shard `shard`'s slice of the tick, then
    publish it atomically; a slice already published is replaced by the same rename, so
    re-running a shard is idempotent. `before_publish` (a callable) runs between the files
    being durable and the rename: the crash tests kill the process there."""
    folder = tick_folder(staging, as_of)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / slice_name(shard, shards, kind)
    work = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{final.name}-", dir=folder))
    for name, frame in frames.items():
        if isinstance(frame, Path):
            shutil.move(frame, work / f"{name}.parquet")  # a rename on the same file system
        else:
            frame.write_parquet(work / f"{name}.parquet")
    (work / MANIFEST).write_text(json.dumps({"shard": shard, "shards": shards,
                                             "frames": sorted(frames), **info}))
    for path in work.iterdir():
        fsync(path)
    fsync(work)
    if callable(before_publish):
        before_publish()
    if final.exists():  # a re-run: the new slice replaces the old one whole
        old = folder / f"{TMP_PREFIX}old-{final.name}-{os.getpid()}"
        os.rename(final, old)
        os.rename(work, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(work, final)
    fsync(folder)
    return final


def published(staging: Path, as_of: datetime, shards: int, kind: str = RESULT) -> list[int]:
    """The shards whose slice of the tick is published."""
    folder = tick_folder(staging, as_of)
    return [k for k in range(shards)
            if (folder / slice_name(k, shards, kind) / MANIFEST).exists()]


def read_slices(staging: Path, as_of: datetime, shards: int, kind: str = RESULT,
                only: int | None = None) -> list[Slice]:
    """Every shard's slice of the tick (or `only` that shard's), in shard order; MissingSlice
    naming the tick and the first shard without one (nothing else is read)."""
    folder = tick_folder(staging, as_of)
    found = set(published(staging, as_of, shards, kind))
    missing = [k for k in wanted(shards, only) if k not in found]
    if missing:
        raise MissingSlice(missing_line(as_of, shards, missing, str(folder), kind))
    out = []
    for k in wanted(shards, only):
        place = folder / slice_name(k, shards, kind)
        info = json.loads((place / MANIFEST).read_text())
        out.append(Slice(k, {name: pl.read_parquet(place / f"{name}.parquet", glob=False)
                             for name in info["frames"]}, info))
    return out


def slice_files(staging: Path, as_of: datetime, shards: int) -> list[SliceFiles]:
    """Every shard's slice of the tick as its files where they are, in shard order;
    MissingSlice as `read_slices` says it."""
    folder = tick_folder(staging, as_of)
    found = set(published(staging, as_of, shards))
    if missing := [k for k in range(shards) if k not in found]:
        raise MissingSlice(missing_line(as_of, shards, missing, str(folder)))
    out = []
    for k in range(shards):
        place = folder / slice_name(k, shards)
        info = json.loads((place / MANIFEST).read_text())
        out.append(SliceFiles(k, {name: place / f"{name}.parquet" for name in info["frames"]},
                              info))
    return out


@contextmanager
def local_files(store: SliceStore, as_of: datetime, shards: int, near: Path
                ) -> Iterator[list[SliceFiles]]:
    """Every shard's slice of the tick as files on this machine: a folder store's where they
    are; another store's fetched a slice at a time into a folder made under `near` (the
    tick's folder under staging_dir, removed when the block ends if nothing else is in it,
    as is what a killed global step fetched there), so no more than one slice is held.
    MissingSlice before anything is fetched or made."""
    if isinstance(store, FolderSlices):
        yield slice_files(store.staging, as_of, shards)
        return
    if len(store.published(as_of, shards)) < shards:
        store.read(as_of, shards)  # raises MissingSlice, naming the missing, reading nothing
    for left in near.glob(f"{TMP_PREFIX}fetched-*"):  # a killed global step's: this step
        shutil.rmtree(left, ignore_errors=True)  # holds the database's lock, so none runs
    work = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}fetched-", dir=staging_folder(near)))
    try:
        out = []
        for k in range(shards):
            [one] = store.read(as_of, shards, only=k)
            files = {}
            for name in sorted(one.frames):
                files[name] = work / f"{k}-{name}.parquet"
                one.frames.pop(name).write_parquet(files[name])
            out.append(SliceFiles(k, files, one.info))
        yield out
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not any(near.iterdir()):  # (the slices live elsewhere: no empty folder is left)
            near.rmdir()


def drop_tick(staging: Path, as_of: datetime) -> None:
    """Remove the tick's slices once the tick is committed (they are only a hand-over)."""
    shutil.rmtree(tick_folder(staging, as_of), ignore_errors=True)


def parquet_bytes(frame: Frame) -> bytes:
    """A frame as Parquet bytes: its exact Polars types survive the round trip (a store that
    keeps bytes, not files, keeps these); a Parquet file as it is."""
    if isinstance(frame, Path):
        return frame.read_bytes()
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def frame_of(data: bytes) -> pl.DataFrame:
    """The frame `parquet_bytes` made."""
    return pl.read_parquet(io.BytesIO(data))


def missing_line(as_of: datetime, shards: int, missing: Sequence[int], where: str,
                 kind: str = RESULT) -> str:
    """The one line for shards without a slice (the global step's) or without their inputs
    (a shard step's), whatever the store."""
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    steps = "those shards' steps" if more else "that shard's step"
    if kind == INPUT:
        return (f"tick {key_of(as_of)}: shard {missing[0]} of {shards}{more} has no inputs in "
                f"{where}: run the tick's prepare step again (or the whole tick), then its "
                "shards")
    return (f"tick {key_of(as_of)}: shard {missing[0]} of {shards}{more} has no slice in "
            f"{where}: run {steps} again (or the whole tick), then the global step")


class SliceStore(Protocol):
    """Where shards hand their slices to the global step: a folder (`FolderSlices`, the
    default), a Postgres database (store/pgslices.py) or an S3-compatible bucket
    (store/s3slices.py)."""

    def ensure(self) -> None: ...

    def publish(self, as_of: datetime, shard: int, shards: int,
                frames: Mapping[str, Frame], info: Mapping[str, object],
                before_publish: Callable[[], object] | None = None,
                kind: str = RESULT) -> object: ...

    def published(self, as_of: datetime, shards: int, kind: str = RESULT) -> list[int]: ...

    def read(self, as_of: datetime, shards: int, kind: str = RESULT,
             only: int | None = None) -> list[Slice]: ...

    def drop(self, as_of: datetime) -> None: ...


@dataclass(frozen=True)
class FolderSlices:
    """Slices as folders of Parquet files under `staging`, published by one rename."""

    staging: Path

    def ensure(self) -> None:
        staging_folder(self.staging)

    def publish(self, as_of: datetime, shard: int, shards: int,
                frames: Mapping[str, Frame], info: Mapping[str, object],
                before_publish: Callable[[], object] | None = None,
                kind: str = RESULT) -> Path:
        return publish_slice(self.staging, as_of, shard, shards, frames, info, before_publish,
                             kind)

    def published(self, as_of: datetime, shards: int, kind: str = RESULT) -> list[int]:
        return published(self.staging, as_of, shards, kind)

    def read(self, as_of: datetime, shards: int, kind: str = RESULT,
             only: int | None = None) -> list[Slice]:
        return read_slices(self.staging, as_of, shards, kind, only)

    def drop(self, as_of: datetime) -> None:
        drop_tick(self.staging, as_of)

