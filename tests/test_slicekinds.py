"""A shard's inputs and its result are two slices of one tick in every slice store (a folder,
PostgreSQL, an S3-compatible bucket): kept apart, read one shard at a time, and dropped
together once the tick is committed."""

from __future__ import annotations

from pathlib import Path

import pytest
from polars.testing import assert_frame_equal
from slice_frames import TICK, frames

from cswf.store.pgslices import PostgresSlices
from cswf.store.s3slices import S3Slices
from cswf.store.slices import INPUT, FolderSlices, MissingSlice, SliceStore


@pytest.fixture(params=["folder", "postgres", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[SliceStore, str]:
    """A store, and where its missing-slice line says the tick's slices are."""
    if request.param == "folder":
        return FolderSlices(tmp_path), str(tmp_path / "2026-06-01-0300")
    url = request.getfixturevalue(request.param)
    if request.param == "s3":
        return S3Slices(url), f"{url}/2026-06-01-0300"
    return PostgresSlices(url), "cswf_slices in " + url.replace("cswf@", "")


def test_inputs_and_results_are_apart_read_one_shard_at_a_time_and_dropped_together(
        store: tuple[SliceStore, str]) -> None:
    slices, where = store
    slices.ensure()
    for k in range(3):
        slices.publish(TICK, k, 3, frames(k), {"feeds": [["w"]]}, kind=INPUT)
    slices.publish(TICK, 0, 3, {"0-state": frames(9)["0-state"]}, {"participants": {}})
    assert slices.published(TICK, 3, kind=INPUT) == [0, 1, 2]
    assert slices.published(TICK, 3) == [0], "inputs are not results"
    [one] = slices.read(TICK, 3, kind=INPUT, only=1)
    assert one.shard == 1 and one.info["feeds"] == [["w"]]
    for name, frame in frames(1).items():
        assert_frame_equal(one.frames[name], frame)
    with pytest.raises(MissingSlice) as raised:
        slices.read(TICK, 3, only=2)
    assert str(raised.value) == (
        f"tick 2026-06-01-03:00: shard 2 of 3 has no slice in {where}: run that shard's "
        "step again (or the whole tick), then the global step")
    with pytest.raises(MissingSlice) as raised:
        slices.read(TICK, 3)
    assert str(raised.value) == (
        f"tick 2026-06-01-03:00: shard 1 of 3 (and 1 more) has no slice in {where}: run those "
        "shards' steps again (or the whole tick), then the global step")
    with pytest.raises(MissingSlice) as raised:
        slices.read(TICK, 4, kind=INPUT, only=3)
    assert str(raised.value) == (
        f"tick 2026-06-01-03:00: shard 3 of 4 has no inputs in {where}: run the tick's "
        "prepare step again (or the whole tick), then its shards")
    [result] = slices.read(TICK, 3, only=0)
    assert sorted(result.frames) == ["0-state"]
    slices.drop(TICK)
    assert slices.published(TICK, 3, kind=INPUT) == [] and slices.published(TICK, 3) == []
