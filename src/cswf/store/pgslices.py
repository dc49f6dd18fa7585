"""A tick's shard slices in a Postgres database (`staging_url: postgresql://…`): the store that
shard steps on machines with no shared file system hand their slices over in.

A slice is one transaction: its frames as Parquet (the exact Polars types) and its manifest,
as rows of `cswf_slices` keyed by (tick, shards, shard, name); a shard's inputs, published by
the tick's prepare step, the same way under the tick `<tick> input`. A reader sees the whole slice
or none of it whatever happens to the shard's process mid-write (Postgres rolls an unfinished
transaction back). Many shards publish at once, each writing only its own rows; publishing
again replaces a shard's rows in the same transaction. The global step reads the tick's slices
and deletes them once the tick is committed to the working database.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import polars as pl

from cswf.calendar import key_of
from cswf.store.slices import (
    INPUT,
    RESULT,
    Frame,
    MissingSlice,
    Slice,
    SliceStoreError,
    frame_of,
    missing_line,
    parquet_bytes,
    wanted,
)

log = logging.getLogger(__name__)

TABLE = "cswf_slices"
MANIFEST = ""  # the manifest row's name; every frame has a non-empty one
_CREATE = (f"CREATE TABLE IF NOT EXISTS {TABLE} (tick text NOT NULL, shards integer NOT NULL, "
           "shard integer NOT NULL, name text NOT NULL, frame bytea, info jsonb, "
           "published_at timestamptz NOT NULL DEFAULT now(), "
           "PRIMARY KEY (tick, shards, shard, name))")


class PostgresSlices:
    """Shard slices as rows of `cswf_slices` in the database at `url`."""

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)  # named without user or password (settings refuse a password)
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:  # settings check the port; a URL given in code may still be wrong
            port = ":<bad port>"
        self.where = f"{TABLE} in postgresql://{parts.hostname or 'localhost'}{port}{parts.path}"

    def ensure(self) -> None:
        """The table, made once before a tick's shards (not by shards racing to make it)."""
        with self._transaction() as cur:
            cur.execute(_CREATE)

    def publish(self, as_of: datetime, shard: int, shards: int,
                frames: Mapping[str, Frame], info: Mapping[str, object],
                before_publish: Callable[[], object] | None = None,
                kind: str = RESULT) -> str:
        """Shard `shard`'s slice of the tick, replacing any earlier one, in one transaction;
        `before_publish` runs after every row is written and before the commit (the crash
        tests kill the process there)."""
        tick = _tick(as_of, kind)
        manifest = json.dumps({"shard": shard, "shards": shards, "frames": sorted(frames),
                               **info})
        rows = [(tick, shards, shard, name, parquet_bytes(frame), None)
                for name, frame in frames.items()]
        rows.append((tick, shards, shard, MANIFEST, None, manifest))
        with self._transaction() as cur:
            # Two attempts at one shard (a retry beside a zombie) take turns: the later one
            # waits, then replaces the earlier's rows rather than colliding with them.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s), %s)",
                        (f"{TABLE}:{tick}:{shards}", shard))
            cur.execute(f"DELETE FROM {TABLE} WHERE tick = %s AND shards = %s AND shard = %s",
                        (tick, shards, shard))
            cur.executemany(f"INSERT INTO {TABLE} (tick, shards, shard, name, frame, info) "
                            "VALUES (%s, %s, %s, %s, %s, %s)", rows)
            if before_publish is not None:
                before_publish()
        return f"{self.where}: tick {tick}, shard {shard} of {shards}"

    def published(self, as_of: datetime, shards: int, kind: str = RESULT) -> list[int]:
        """The shards whose slice of the tick is committed."""
        with self._transaction() as cur:
            cur.execute(f"SELECT shard FROM {TABLE} WHERE tick = %s AND shards = %s "
                        "AND name = %s ORDER BY shard", (_tick(as_of, kind), shards, MANIFEST))
            return [row[0] for row in cur.fetchall()]

    def read(self, as_of: datetime, shards: int, kind: str = RESULT,
             only: int | None = None) -> list[Slice]:
        """Every shard's slice of the tick (or `only` that shard's), in shard order;
        MissingSlice naming the first shard without one (and nothing else is read)."""
        shard_list = wanted(shards, only)
        with self._transaction() as cur:
            cur.execute(f"SELECT shard, name, frame, info FROM {TABLE} WHERE tick = %s "
                        "AND shards = %s AND shard = ANY(%s) ORDER BY shard, name",
                        (_tick(as_of, kind), shards, shard_list))
            rows = cur.fetchall()
        infos = {shard: info for shard, name, _, info in rows if name == MANIFEST}
        missing = [k for k in shard_list if k not in infos]
        if missing:
            raise MissingSlice(missing_line(as_of, shards, missing, self.where, kind))
        frames: dict[int, dict[str, pl.DataFrame]] = {k: {} for k in shard_list}
        for shard, name, frame, _ in rows:
            if name != MANIFEST:
                frames[shard][name] = frame_of(bytes(frame))
        return [Slice(k, frames[k], _info(infos[k])) for k in shard_list]

    def drop(self, as_of: datetime) -> None:
        """Remove the tick's slices once the tick is committed (they are only a hand-over).
        Best effort, as a folder's removal is: the tick is already written, and rows left
        behind are replaced by the tick's next run or removed after its next commit."""
        try:
            with self._transaction() as cur:
                cur.execute(f"DELETE FROM {TABLE} WHERE tick IN (%s, %s)",
                            (_tick(as_of, RESULT), _tick(as_of, INPUT)))
        except SliceStoreError as err:
            log.warning("tick %s committed; its slices stay in %s: %s", key_of(as_of),
                        self.where, err)

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A cursor in one transaction: committed when the block ends, rolled back if it
        raises; the connection closed either way."""
        try:
            import psycopg2
        except ImportError:
            raise SliceStoreError(
                "staging_url needs the Postgres driver: pip install 'cswf[postgres]'") from None
        try:
            con = psycopg2.connect(self.url)
        except psycopg2.OperationalError as err:
            raise SliceStoreError(f"staging_url: cannot connect to {self.where}: {_first(err)} "
                                  "— start the server or fix staging_url") from None
        except psycopg2.Error:  # a malformed URL: libpq's text would repeat it, password and all
            raise SliceStoreError(f"staging_url: {self.where} is not a URL PostgreSQL can "
                                  "read — fix staging_url") from None
        try:
            with con, con.cursor() as cur:
                yield cur
        except psycopg2.Error as err:
            raise SliceStoreError(f"staging_url: {self.where}: {_first(err)} — check the "
                                  "database and that this user may write to it") from None
        finally:
            con.close()


def _tick(as_of: datetime, kind: str) -> str:
    """The `tick` a slice's rows are keyed by: the tick's key; a shard's inputs', with ` input`."""
    return key_of(as_of) if kind == RESULT else f"{key_of(as_of)} {kind}"


def _first(err: Exception) -> str:
    """PostgreSQL's own message, first line only (its DETAIL and LINE parts are for a log)."""
    diag = getattr(err, "diag", None)
    primary = getattr(diag, "message_primary", None)
    text = (primary or str(err)).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _info(raw: object) -> dict[str, object]:
    """A manifest as psycopg2 returns jsonb (a dict), or as text from another driver."""
    return raw if isinstance(raw, dict) else json.loads(str(raw))
