"""Shard slices handed over in PostgreSQL (store/pgslices.py), on a real server: a slice comes
back with its exact types, a re-publish replaces it whole, shards publish at once without
conflict, and an unreachable database is one line that names it without its password."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import pytest
from polars.testing import assert_frame_equal
from slice_frames import TICK, frames

from cswf.store.pgslices import PostgresSlices, SliceStoreError
from cswf.store.slices import MissingSlice


def test_a_slice_comes_back_whole_with_its_types(postgres: str) -> None:
    store = PostgresSlices(postgres)
    store.ensure()
    store.publish(TICK, 0, 2, frames(0), {"participants": {"0": 2}})
    assert store.published(TICK, 2) == [0]
    with pytest.raises(MissingSlice, match="shard 1 of 2 has no slice"):
        store.read(TICK, 2)
    store.publish(TICK, 1, 2, frames(1), {"participants": {"0": 2}})
    store.publish(TICK, 1, 2, {"0-state": frames(1)["0-state"].head(1)}, {"participants": {}})
    assert sorted(store.read(TICK, 2)[1].frames) == ["0-state"], "replaced whole"
    store.publish(TICK, 1, 2, frames(1), {"participants": {"0": 2}})
    slices = store.read(TICK, 2)
    assert [s.shard for s in slices] == [0, 1]
    for s in slices:
        assert sorted(s.frames) == ["0-actions", "0-state"]
        for name, frame in frames(s.shard).items():
            assert_frame_equal(s.frames[name], frame)
        assert s.info["participants"] == {"0": 2}
    assert store.published(TICK, 3) == []  # another shard count is another hand-over
    store.drop(TICK)
    assert store.published(TICK, 2) == []


def test_shards_publish_at_once(postgres: str) -> None:
    store = PostgresSlices(postgres)
    store.ensure()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: store.publish(TICK, k, 8, frames(k), {}), range(8)))
    assert store.published(TICK, 8) == list(range(8))
    assert [s.frames["0-state"]["participant_id"][0] for s in store.read(TICK, 8)] == [
        f"ACC-{k}" for k in range(8)]


def test_two_attempts_at_one_shard_take_turns_and_the_later_wins(postgres: str) -> None:
    """A retried shard beside its zombie: the second waits for the first's transaction, then
    replaces its rows (without the lock it would collide with them on the key)."""
    store = PostgresSlices(postgres)
    store.ensure()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(store.publish, TICK, 0, 1, frames(0), {"attempt": 1},
                            lambda: time.sleep(1.0))
        time.sleep(0.3)  # the first holds its transaction open, its rows written
        second = pool.submit(store.publish, TICK, 0, 1, frames(5), {"attempt": 2})
        first.result(), second.result()
    (only,) = store.read(TICK, 1)
    assert only.info["attempt"] == 2
    assert only.frames["0-state"]["participant_id"][0] == "ACC-5"


def test_a_failing_statement_is_one_line(postgres: str) -> None:
    import psycopg2

    with closing(psycopg2.connect(postgres)) as con, con, con.cursor() as cur:
        cur.execute("CREATE TABLE cswf_slices (tick text)")  # not the table cswf makes
    store = PostgresSlices(postgres)
    with pytest.raises(SliceStoreError) as raised:
        store.publish(TICK, 0, 1, frames(0), {})
    assert str(raised.value).startswith(f"staging_url: {store.where}: column ")
    assert str(raised.value).endswith(" — check the database and that this user may write "
                                      "to it")
    assert "\n" not in str(raised.value)


def test_an_unreachable_database_is_one_line_without_its_password() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = PostgresSlices(f"postgresql://cswf:s3cret@127.0.0.1:{port}/cswf")
    with pytest.raises(SliceStoreError) as raised:
        store.ensure()
    line = str(raised.value)
    assert line.startswith(f"staging_url: cannot connect to cswf_slices in "
                           f"postgresql://127.0.0.1:{port}/cswf: ")
    assert line.endswith(" — start the server or fix staging_url")
    assert "\n" not in line and "s3cret" not in line
