"""Shard slices handed over in an S3-compatible bucket (store/s3slices.py), on a real server
(moto's, on localhost: tests/s3server.py): a slice comes back with its exact types, a
re-publish replaces it whole, shards publish at once, a shard that dies before its manifest
publishes nothing, a committed tick's objects are removed, and a store that cannot be used is
one line that names the bucket and never a credential."""

from __future__ import annotations

import logging
import os
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import s3server
from polars.testing import assert_frame_equal
from slice_frames import TICK, frames

from cswf.store.s3slices import S3Slices
from cswf.store.slices import MissingSlice, SliceStoreError

FOLDER = "2026-06-01-0300"  # the tick's objects, under the URL's prefix


def test_a_slice_comes_back_whole_with_its_types(s3: str) -> None:
    store = S3Slices(s3)
    store.ensure()
    store.publish(TICK, 0, 2, frames(0), {"participants": {"0": 2}})
    assert store.published(TICK, 2) == [0]
    with pytest.raises(MissingSlice) as raised:
        store.read(TICK, 2)
    assert str(raised.value) == (
        f"tick 2026-06-01-03:00: shard 1 of 2 has no slice in {s3}/2026-06-01-0300: run "
        "that shard's step again (or the whole tick), then the global step")
    store.publish(TICK, 1, 2, frames(1), {"participants": {"0": 2}})
    store.publish(TICK, 1, 2, {"0-state": frames(1)["0-state"].head(1)}, {"participants": {}})
    again = store.read(TICK, 2)[1]
    assert sorted(again.frames) == ["0-state"] and again.frames["0-state"].height == 1, (
        "the later attempt replaced the slice whole")
    assert again.info["participants"] == {}
    store.publish(TICK, 1, 2, frames(1), {"participants": {"0": 2}})
    slices = store.read(TICK, 2)
    assert [s.shard for s in slices] == [0, 1]
    for s in slices:
        assert sorted(s.frames) == ["0-actions", "0-state"]
        for name, frame in frames(s.shard).items():
            assert_frame_equal(s.frames[name], frame)  # values and exact dtypes
        assert s.info == {"shard": s.shard, "shards": 2, "frames": ["0-actions", "0-state"],
                          "participants": {"0": 2}}
    assert store.published(TICK, 3) == []  # another shard count is another hand-over


def test_drop_removes_the_tick_s_objects_and_only_them(s3: str) -> None:
    """Every attempt of every shard of the tick goes (the attempts that lost too); another
    tick's slices stay."""
    store, later = S3Slices(s3), TICK + timedelta(hours=3)
    for k in (0, 1):
        store.publish(TICK, k, 2, frames(k), {})
    store.publish(TICK, 1, 2, frames(1), {})  # a second attempt: the first's objects remain
    store.publish(later, 0, 1, frames(0), {})
    assert len(s3server.keys(f"{s3}/{FOLDER}/")) == 2 + 3 + 3  # manifests, 3 attempts
    store.drop(TICK)
    assert s3server.keys(f"{s3}/{FOLDER}/") == []
    assert store.published(TICK, 2) == []
    assert store.published(later, 1) == [0]
    store.drop(TICK)  # nothing left to remove: still fine


def test_shards_publish_at_once(s3: str) -> None:
    store = S3Slices(s3)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: store.publish(TICK, k, 8, frames(k), {}), range(8)))
    assert store.published(TICK, 8) == list(range(8))
    assert [s.frames["0-state"]["participant_id"][0] for s in store.read(TICK, 8)] == [
        f"ACC-{k}" for k in range(8)]


class Killed(Exception):
    """Stands for the shard's process dying between its frames and its manifest."""


def die() -> None:
    raise Killed


def test_a_shard_that_dies_before_its_manifest_publishes_nothing(s3: str) -> None:
    """Its frame objects are stored and read by nothing; over an earlier slice of the same
    shard, the earlier slice stays published whole."""
    store = S3Slices(s3)
    with pytest.raises(Killed):
        store.publish(TICK, 0, 1, frames(0), {"attempt": 1}, before_publish=die)
    written = s3server.keys(f"{s3}/{FOLDER}/")
    assert len(written) == 2 and all(k.endswith(".parquet") for k in written)
    assert store.published(TICK, 1) == []
    with pytest.raises(MissingSlice, match="shard 0 of 1 has no slice"):
        store.read(TICK, 1)
    store.publish(TICK, 0, 1, frames(1), {"attempt": 2})
    with pytest.raises(Killed):
        store.publish(TICK, 0, 1, frames(5), {"attempt": 3}, before_publish=die)
    (only,) = store.read(TICK, 1)
    assert only.info["attempt"] == 2
    assert only.frames["0-state"]["participant_id"][0] == "ACC-1"


def test_a_missing_bucket_is_one_line(s3: str, caplog: pytest.LogCaptureFixture) -> None:
    store = S3Slices("s3://cswf-no-such-bucket/slices")
    for call in (store.ensure, lambda: store.publish(TICK, 0, 1, frames(0), {}),
                 lambda: store.read(TICK, 1)):
        with pytest.raises(SliceStoreError) as raised:
            call()
        assert str(raised.value) == (
            "staging_url: s3://cswf-no-such-bucket/slices: the bucket does not exist at "
            f"{_endpoint()} — create it, or fix staging_url or "
            "AWS_ENDPOINT_URL")
    with caplog.at_level(logging.WARNING, logger="cswf.store.s3slices"):
        store.drop(TICK)  # best effort after a commit: a warning, not an error
    assert "its slices stay in s3://cswf-no-such-bucket/slices/2026-06-01-0300" in caplog.text


def test_objects_cswf_did_not_write_are_one_line(s3: str) -> None:
    """Another program writing under the prefix: a manifest that is not one, a frame that is
    not Parquet."""
    store = S3Slices(s3)
    store.publish(TICK, 0, 1, frames(0), {})
    place = f"{FOLDER}/shard-0-of-1"
    attempt = s3server.keys(f"{s3}/{place}/")[0].split("/")[-2]

    def put(path: str, data: bytes) -> None:  # (with the store's own client)
        store._obstore.put(store._store, path, data)

    put(f"{place}/{attempt}/0-state.parquet", b"not parquet")
    with pytest.raises(SliceStoreError) as raised:
        store.read(TICK, 1)
    assert str(raised.value) == (
        f"staging_url: {s3}/{place}/{attempt}/0-state.parquet: not a slice object cswf wrote "
        "(another program writing under this prefix?) — give cswf a prefix of its own, then "
        "run the whole tick again")
    for manifest in (b"{not json", b'{"info": {"frames": []}}', b'{"attempt": 1, "info": {}}'):
        put(f"{place}/manifest.json", manifest)
        with pytest.raises(SliceStoreError) as raised:
            store.read(TICK, 1)
        assert str(raised.value).startswith(
            f"staging_url: {s3}/{place}/manifest.json: not a slice object cswf wrote ")


def test_an_endpoint_that_never_answers_is_one_line(
        s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """It accepts connections and never answers (a firewall dropping packets): cut by the
    read timeout (15 s, and two retries, in earnest: 1 s and none here)."""
    from cswf.store import s3slices

    monkeypatch.setattr(s3slices, "CLIENT", {**s3slices.CLIENT, "read_timeout": "1s"})
    monkeypatch.setattr(s3slices, "RETRIES", {"max_retries": 0})
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        with pytest.raises(SliceStoreError) as raised:
            S3Slices(s3).ensure()
    assert str(raised.value) == (
        f"staging_url: cannot reach {s3} at {endpoint}: no answer in time — check that the "
        "endpoint answers (a firewall that drops packets?) and AWS_ENDPOINT_URL")


def _endpoint() -> str:
    return os.environ["AWS_ENDPOINT_URL"]


def test_an_unreachable_endpoint_is_one_line_without_a_secret(
        s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens on the endpoint's port: after obstore's retries (a few seconds), one
    line naming the bucket, the endpoint and the reason."""
    port = s3server.free_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(SliceStoreError) as raised:
        S3Slices(s3).ensure()
    line = str(raised.value)
    assert line == (f"staging_url: cannot reach {s3} at http://127.0.0.1:{port}: Connection "
                    "refused — start the server or fix AWS_ENDPOINT_URL (and AWS_REGION)")
    assert s3server.SECRET not in line


def test_a_plain_http_endpoint_needs_allow_http(s3: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ALLOW_HTTP")
    with pytest.raises(SliceStoreError) as raised:
        S3Slices(s3).publish(TICK, 0, 1, frames(0), {})
    assert str(raised.value) == (
        f"staging_url: {s3}: the endpoint at {_endpoint()} is plain http — set "
        "AWS_ALLOW_HTTP=true (a server on this machine) or give AWS_ENDPOINT_URL as https://")


def test_a_url_obstore_cannot_read_is_one_line(s3: str) -> None:
    """Settings refuse such a URL in cswf.yaml (tests/test_fanout.py); one given in code is
    still one line."""
    with pytest.raises(SliceStoreError) as raised:
        S3Slices("s3:///slices").ensure()
    line = str(raised.value)
    assert line.startswith("staging_url: s3:///slices: ") and "\n" not in line
    assert line.endswith(" — check the bucket, staging_url and the AWS_* settings")


def test_without_obstore_the_line_says_what_to_install(s3: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "obstore", None)  # `import obstore` fails
    with pytest.raises(SliceStoreError) as raised:
        S3Slices(s3).ensure()
    assert str(raised.value) == ("staging_url: an s3:// URL needs obstore: pip install "
                                 "'cswf[s3]'")
