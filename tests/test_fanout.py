"""A tick's shards run apart (project/fanout.py): each shard publishes its slice, the global step
merges and commits; the tables equal one process's, and a missing slice commits nothing."""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path

import pytest
from test_tick_chunks import REPO

from cswf import project
from cswf.demo.delivering import QuarterDelivery
from cswf.demo.generate import generate_book
from cswf.demo.responses import SimulatedAudience
from cswf.project.fanout import commit_tick, prepare_tick, shard_tick
from cswf.settings import Settings, load_settings
from cswf.store.slices import MissingSlice, tick_folder
from cswf.store.warehouse import connect

# What must be equal, ordered so the comparison is row for row.
TABLES = {"enrollment_history": "workflow, participant_id, valid_from",
          "transitions": "ALL", "actions_outbox": "action_id", "tick_log": "as_of",
          "action_events": "ALL"}
FIRST, LAST = datetime(2026, 5, 31), datetime(2026, 6, 1, 21)  # two days of ticks


def make_project(root: Path, landing: Path, shards: int, **extra: str) -> Settings:
    """The shipped specs and groups over `landing`, in `shards` shards."""
    shutil.copytree(REPO / "workflow_specs", root / "workflow_specs")
    shutil.copy(REPO / "user_groups.yaml", root / "user_groups.yaml")
    more = "".join(f"{key}: {value}\n" for key, value in extra.items())
    (root / "cswf.yaml").write_text(
        f"database: {root / 'cswf.duckdb'}\nlanding_dir: {landing}\n"
        f"tick_start: '2026-05-31 00:00'\nshards: {shards}\n{more}")
    return load_settings(root)


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("land")
    generate_book(folder, accounts=60, days=40, start=date(2026, 5, 1))
    return folder


def tables(settings: Settings) -> dict[str, list]:
    with connect(settings.database_path, read_only=True) as con:
        return {t: con.sql(f"SELECT * EXCLUDE (recorded_at, detail) FROM {t} ORDER BY {o}")
                .fetchall() if t == "action_events" else
                con.sql(f"FROM {t} ORDER BY {o}").fetchall() for t, o in TABLES.items()}


def audience(settings: Settings) -> SimulatedAudience:
    return SimulatedAudience(QuarterDelivery(settings.delivery_config()))


def in_one_process(settings: Settings) -> None:
    ticks = project.ticks_in(settings, FIRST, LAST)
    with connect(settings.database_path) as con:
        project.ingest(con, settings, ticks[-1])
        project.store_facts(con, settings, ticks)
        project.run_ticks(con, settings, project.load_workflows(settings), ticks,
                          respond=audience(settings))


def in_slices(settings: Settings, skip: tuple[datetime, int] | None = None) -> None:
    """Every tick as prepare, each shard (its own read-only connection), then commit."""
    ticks = project.ticks_in(settings, FIRST, LAST)
    workflows = project.load_workflows(settings)
    respond = audience(settings)
    with connect(settings.database_path) as con:
        project.ingest(con, settings, ticks[-1])
        project.store_facts(con, settings, ticks)
    for as_of in ticks:
        with connect(settings.database_path) as con:
            prepare_tick(con, settings, workflows, as_of)
        for k in range(settings.shards):
            if (as_of, k) != skip:
                shard_tick(settings, workflows, as_of, k, settings.shards)
        with connect(settings.database_path) as con:
            commit_tick(con, settings, workflows, as_of, settings.shards, respond=respond)


def test_ticks_in_published_slices_equal_one_process(tmp_path: Path, landing: Path) -> None:
    one = make_project(tmp_path / "one", landing, 1)
    four = make_project(tmp_path / "four", landing, 4)
    in_one_process(one)
    in_slices(four)
    expected, got = tables(one), tables(four)
    assert expected["actions_outbox"], "the book should make the workflows act"
    with connect(four.database_path, read_only=True) as con:
        assert con.sql("SELECT count(DISTINCT owner_group) FROM actions_outbox "
                       "WHERE assignee IS NOT NULL").fetchall()[0][0] >= 1
    for table in TABLES:
        assert got[table] == expected[table], table
    assert not any(four.staging_path.iterdir()), "a committed tick's slices are removed"


def test_a_missing_slice_fails_the_global_step_with_one_line(tmp_path: Path,
                                                              landing: Path) -> None:
    settings = make_project(tmp_path / "p", landing, 3)
    with pytest.raises(MissingSlice) as raised:
        in_slices(settings, skip=(FIRST, 1))
    folder = tick_folder(settings.staging_path, FIRST)
    assert str(raised.value) == (
        f"tick 2026-05-31-00:00: shard 1 of 3 has no slice in {folder}: run that shard's "
        "step again (or the whole tick), then the global step")
    with connect(settings.database_path, read_only=True) as con:
        assert con.sql("SELECT count(*) FROM tick_log").fetchall() == [(0,)]
        assert con.sql("SELECT count(*) FROM actions_outbox").fetchall() == [(0,)]
