"""A tick's shard slices as objects in an S3-compatible bucket (`staging_url:
s3://bucket/prefix`): for shard steps on machines that share no file system and no PostgreSQL.

Object storage renames no folder atomically, but one PUT of one object is atomic: a reader sees
the whole object or none. So a shard first writes each frame as a Parquet object under a key
of its own attempt, `<prefix>/<tick>/shard-<k>-of-<n>/<attempt>/<name>.parquet`, and LAST the
slice's manifest at a fixed key, `<prefix>/<tick>/shard-<k>-of-<n>/manifest.json`, naming
that attempt and its frames. Only manifests publish: a shard killed before its manifest leaves
frame objects that nothing reads, and a re-run writes a new attempt and replaces the manifest
in one PUT, so the later attempt wins whole. No attempt's objects are deleted while the tick is
open (a reader holding an earlier manifest still finds its frames); `drop` removes every object
of the tick once it is committed. This relies on the store's strong read-after-write
consistency for PUT, GET and LIST (AWS S3's since 2020, MinIO's). A shard's inputs, published
by the tick's prepare step, are a slice the same way under `<tick>/input-<k>-of-<n>/`.

The endpoint, region and credentials come from the standard environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP=true for an http://
endpoint), read by obstore (the Python binding of Rust's object_store), never from cswf.yaml.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, TypeVar
from urllib.parse import urlsplit

import polars as pl

from cswf.calendar import key_of
from cswf.store.slices import (
    RESULT,
    Frame,
    MissingSlice,
    Slice,
    SliceStoreError,
    frame_of,
    missing_line,
    parquet_bytes,
    slice_name,
    tick_name,
    wanted,
)

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
READERS = 8  # objects the global step fetches at once: each GET is a round trip
CLIENT = {"connect_timeout": "5s", "read_timeout": "15s", "timeout": "10m"}  # (a whole
# request: a large frame on a slow link may take minutes; a stalled one is cut by read_timeout)
RETRIES = {"max_retries": 2, "retry_timeout": timedelta(minutes=1)}
_MANIFEST_KEY = re.compile(r"([a-z]+)-(\d+)-of-(\d+)/" + re.escape(MANIFEST))
_T = TypeVar("_T")
# S3's codes (and obstore's exceptions) for credentials or a policy that do not let us in
_REFUSED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
            "InvalidToken", "PermissionDeniedError", "UnauthenticatedError"}


class S3Slices:
    """Shard slices as objects under `s3://bucket/prefix`."""

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)  # settings refuse credentials in it; named without them anyway
        bucket = parts.netloc.rpartition("@")[2]
        self.where = f"s3://{bucket}{parts.path.rstrip('/')}"

    def ensure(self) -> None:
        """Before a tick's shards: the bucket can be listed with these credentials, so a wrong
        setting is one line from the step before the shards rather than one per shard."""
        self._call(lambda: next(iter(self._obstore.list(self._store, "", chunk_size=1)), None))

    def publish(self, as_of: datetime, shard: int, shards: int,
                frames: Mapping[str, Frame], info: Mapping[str, object],
                before_publish: Callable[[], object] | None = None,
                kind: str = RESULT) -> str:
        """Shard `shard`'s slice of the tick: its frames under a new attempt's keys, then its
        manifest in one PUT, replacing any earlier one; `before_publish` runs after the frames
        are stored and before the manifest (the crash tests kill the process there)."""
        place = f"{tick_name(as_of)}/{slice_name(shard, shards, kind)}"
        attempt = uuid.uuid4().hex
        for name, frame in frames.items():
            data = parquet_bytes(frame)
            self._call(lambda name=name, data=data: self._obstore.put(
                self._store, f"{place}/{attempt}/{name}.parquet", data))
        manifest = json.dumps({"attempt": attempt, "info": {
            "shard": shard, "shards": shards, "frames": sorted(frames), **info}})
        if before_publish is not None:
            before_publish()
        self._call(lambda: self._obstore.put(self._store, f"{place}/{MANIFEST}",
                                             manifest.encode()))
        return f"{self.where}/{place}"

    def published(self, as_of: datetime, shards: int, kind: str = RESULT) -> list[int]:
        """The shards whose manifest for the tick is stored."""
        found: set[int] = set()
        for path in self._paths(tick_name(as_of)):
            named = _MANIFEST_KEY.fullmatch(path)
            if named and named[1] == kind and int(named[3]) == shards and \
                    int(named[2]) < shards:
                found.add(int(named[2]))
        return sorted(found)

    def read(self, as_of: datetime, shards: int, kind: str = RESULT,
             only: int | None = None) -> list[Slice]:
        """Every shard's slice of the tick (or `only` that shard's), in shard order;
        MissingSlice naming the first shard without a manifest (and nothing else is read).
        Each manifest names the frames of the attempt it published."""
        tick = tick_name(as_of)
        found = set(self.published(as_of, shards, kind))
        shard_list = wanted(shards, only)
        missing = [k for k in shard_list if k not in found]
        if missing:
            raise MissingSlice(missing_line(as_of, shards, missing, f"{self.where}/{tick}",
                                            kind))
        places = [f"{tick}/{slice_name(k, shards, kind)}" for k in shard_list]
        with ThreadPoolExecutor(READERS) as pool:
            manifests = [self._manifest(place, data) for place, data in zip(places, pool.map(
                lambda place: self._get(f"{place}/{MANIFEST}"), places), strict=True)]
            keys = [(i, name, f"{places[i]}/{m['attempt']}/{name}.parquet")
                    for i, m in enumerate(manifests) for name in m["info"]["frames"]]
            frames = pool.map(lambda key: self._frame(key[2], self._get(key[2])), keys)
            by_place: list[dict[str, pl.DataFrame]] = [{} for _ in shard_list]
            for (i, name, _), frame in zip(keys, frames, strict=True):
                by_place[i][name] = frame
        return [Slice(k, by_place[i], manifests[i]["info"]) for i, k in enumerate(shard_list)]

    def drop(self, as_of: datetime) -> None:
        """Remove every object of the tick once it is committed (they are only a hand-over),
        the attempts that lost included. Best effort, as a folder's removal is: the tick is
        already written, and objects left behind stay until removed by hand or by a lifecycle
        rule on the prefix."""
        tick = tick_name(as_of)
        try:
            paths = [f"{tick}/{path}" for path in self._paths(tick)]
            if paths:
                self._call(lambda: self._obstore.delete(self._store, paths))
        except SliceStoreError as err:
            log.warning("tick %s committed; its slices stay in %s/%s: %s", key_of(as_of),
                        self.where, tick, err)

    def _paths(self, folder: str) -> list[str]:
        """The keys under `folder` (relative to it)."""
        chunks = self._call(lambda: list(self._obstore.list(self._store, folder,
                                                            chunk_size=1000)))
        return [meta["path"][len(folder) + 1:] for chunk in chunks for meta in chunk]

    def _manifest(self, place: str, data: bytes) -> dict[str, Any]:
        """A slice's manifest, or one line if something other than a shard wrote it."""
        try:
            manifest = json.loads(data)
            if isinstance(manifest["attempt"], str) and isinstance(
                    manifest["info"]["frames"], list):
                return manifest  # type: ignore[no-any-return]
        except (ValueError, KeyError, TypeError):
            pass
        raise SliceStoreError(_foreign(self.where, f"{place}/{MANIFEST}"))

    def _frame(self, path: str, data: bytes) -> pl.DataFrame:
        """A slice's frame, or one line if its object is not the Parquet a shard wrote."""
        try:
            return frame_of(data)
        except (pl.exceptions.PolarsError, OSError, ValueError):
            raise SliceStoreError(_foreign(self.where, path)) from None

    def _get(self, path: str) -> bytes:
        return self._call(lambda: bytes(self._obstore.get(self._store, path).bytes()))

    @cached_property
    def _obstore(self) -> Any:
        try:
            import obstore
        except ImportError:
            raise SliceStoreError("staging_url: an s3:// URL needs obstore: pip install "
                                  "'cswf[s3]'") from None
        return obstore

    @cached_property
    def _store(self) -> Any:
        """The bucket, configured from the URL and the AWS_* environment. A request gives up
        on a connection after 5 s and on a stalled one after 15 s without a byte; two retries
        with backoff ride out a flaky network, so an endpoint that accepts connections and
        never answers fails a request in about 45 s (obstore's defaults, no read timeout and
        ten retries within three minutes, held a tick three minutes per request)."""
        # (options given here replace those obstore reads from the environment: the one of
        # them the docs name, AWS_ALLOW_HTTP, is carried over)
        allow_http = os.environ.get("AWS_ALLOW_HTTP", "").strip().lower() == "true"
        return self._call(lambda: self._obstore.store.S3Store.from_url(
            self.url, client_options={**CLIENT, "allow_http": allow_http},
            retry_config=RETRIES))

    def _call(self, action: Callable[[], _T]) -> _T:
        """`action`, with any error of the store as one SliceStoreError line."""
        try:
            return action()
        except SliceStoreError:
            raise
        except Exception as err:
            if not _from_obstore(err):
                raise
            raise SliceStoreError(_line(self.where, err)) from None


def _from_obstore(err: Exception) -> bool:
    """Whether obstore raised `err` (its own exceptions, or the builtins it maps some to, such
    as FileNotFoundError, with its message)."""
    return type(err).__module__.startswith("obstore") or "Debug source:" in str(err)


def _line(where: str, err: Exception) -> str:
    """obstore's error (a page of Rust debug output, S3's XML answer inside) as one line that
    names the bucket and prefix, never a credential, and says what to do."""
    text = str(err)
    code = re.search(r"<Code>([^<]+)</Code>", text)
    said = code[1] if code else type(err).__name__
    endpoint = re.search(r"\b(https?://[^/\s]+)", text)
    at = f" at {_no_userinfo(endpoint[1])}" if endpoint else ""
    if said == "NoSuchBucket":
        return (f"staging_url: {where}: the bucket does not exist{at} — create it, or fix "
                "staging_url or AWS_ENDPOINT_URL")
    if said == "NoSuchKey":
        return (f"staging_url: {where}: an object of a published slice is gone{at} (deleted "
                "by hand, or by a lifecycle rule?) — run the whole tick again (its prepare "
                "step, its shards, then the global step)")
    if said in _REFUSED:
        return (f"staging_url: {where}: access refused{at} ({said}) — check "
                "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket's policy")
    if "builder error" in text and at.startswith(" at http://"):
        return (f"staging_url: {where}: the endpoint{at} is plain http — set AWS_ALLOW_HTTP=true "
                "(a server on this machine) or give AWS_ENDPOINT_URL as https://")
    if "kind: Timeout" in text or "TimedOut" in text:
        return (f"staging_url: cannot reach {where}{at}: no answer in time — check that the "
                "endpoint answers (a firewall that drops packets?) and AWS_ENDPOINT_URL")
    if "error sending request" in text or "kind: Connect" in text:
        reason = re.findall(r'(?:message|error): "([^"]+)"', text)
        because = f": {reason[-1]}" if reason else ""
        return (f"staging_url: cannot reach {where}{at}{because} — start the server or fix "
                "AWS_ENDPOINT_URL (and AWS_REGION)")
    first = text.split("\n\nDebug source:")[0].strip().splitlines()
    what = re.sub(r": <\?xml.*", "", first[0] if first else said)
    return (f"staging_url: {where}: {_no_userinfo(what)} ({said}) — check the bucket, "
            "staging_url and the AWS_* settings")


def _foreign(where: str, path: str) -> str:
    """The line for an object under the prefix that is not what a shard writes."""
    return (f"staging_url: {where}/{path}: not a slice object cswf wrote (another program "
            "writing under this prefix?) — give cswf a prefix of its own, then run the whole "
            "tick again")


def _no_userinfo(text: str) -> str:
    """A URL's `user:password@` removed, should an endpoint carry one."""
    return re.sub(r"://[^/@\s]+@", "://", text)
