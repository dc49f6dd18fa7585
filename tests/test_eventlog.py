"""The SQLite event log stays open while a range of ticks runs (defs/eventlog.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg

from cswf.defs.eventlog import event_log_kept_open


@dg.asset
def one() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"n": 1})


def _materialize(instance: dg.DagsterInstance, run_id: str | None = None) -> None:
    job = dg.Definitions(assets=[one]).resolve_implicit_global_asset_job_def()
    assert job.execute_in_process(instance=instance, run_id=run_id).success


def test_each_event_closing_the_last_connection_checkpoints_the_log(tmp_path: Path) -> None:
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        _materialize(instance)
        assert (tmp_path / "history" / "runs" / "index.db").is_file()
        assert not (tmp_path / "history" / "runs" / "index.db-wal").exists()


def test_while_kept_open_no_event_checkpoints_the_log(tmp_path: Path) -> None:
    runs = tmp_path / "history" / "runs"
    seen: list[int] = []
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        _materialize(instance)  # the index exists from the first run on
        run_id = str(uuid.uuid4())
        with event_log_kept_open(instance, run_id) as keeper:
            _materialize(instance, run_id)
            assert (runs / "index.db-wal").exists()  # nobody checkpointed it away
            assert len(keeper._held) == 1  # the run's file did not exist yet
            observe = keeper.on_tick(lambda outcome, result: seen.append(1))
            observe(None, None)  # type: ignore[arg-type]
            assert seen == [1]  # held from the run's first tick on, then `then` is told
            assert len(keeper._held) == 2
        assert not (runs / "index.db-wal").exists()  # the last close checkpoints once
        assert instance.get_run_by_id(run_id) is not None  # the run is recorded as usual


def test_storage_without_files_is_left_alone(tmp_path: Path) -> None:
    with dg.DagsterInstance.ephemeral() as instance, event_log_kept_open(
        instance, str(uuid.uuid4())
    ) as keeper:
        _materialize(instance)
        assert keeper._held == {}
