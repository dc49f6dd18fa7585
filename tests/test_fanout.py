"""A tick's shards run apart (project/fanout.py): each shard publishes its slice, the global step
merges and commits; the tables equal one process's, and a missing slice commits nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import pytest
import s3server
from test_tick_chunks import REPO

from cswf import project
from cswf.defs import ProjectSettingsError, build_defs, project_settings
from cswf.defs.fanout import SHARDS_JOB
from cswf.defs.launch import run_tick_range
from cswf.demo.delivering import QuarterDelivery
from cswf.demo.generate import generate_book
from cswf.demo.responses import SimulatedAudience
from cswf.engine.holdout import sha256_buckets
from cswf.project.fanout import (
    PAUSE_BEFORE_PUBLISH,
    commit_tick,
    prepare_tick,
    shard_tick,
    slice_store,
)
from cswf.settings import Settings, load_settings
from cswf.store.slices import (
    INPUT,
    MANIFEST,
    TMP_PREFIX,
    MissingSlice,
    SliceStoreError,
    shard_of,
    tick_folder,
)
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


@pytest.fixture(params=["folder", "postgres", "s3"])
def store(request: pytest.FixtureRequest) -> dict[str, str]:
    """Where the shards hand over their slices: `staging_dir` (a folder) or `staging_url` (a
    real PostgreSQL database, tests/pgserver.py, or a bucket of a real S3-compatible server,
    tests/s3server.py, with the AWS_* environment set for it): the settings that choose it."""
    if request.param == "folder":
        return {}
    return {"staging_url": f"'{request.getfixturevalue(request.param)}'"}


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
    """Every tick as prepare, each shard (with the working database moved away: a shard reads
    only its input slice), then commit."""
    ticks = project.ticks_in(settings, FIRST, LAST)
    workflows = project.load_workflows(settings)
    respond = audience(settings)
    with connect(settings.database_path) as con:
        project.ingest(con, settings, ticks[-1])
        project.store_facts(con, settings, ticks)
    for as_of in ticks:
        with connect(settings.database_path) as con:
            prepare_tick(con, settings, workflows, as_of)
        with database_away(settings):
            for k in range(settings.shards):
                if (as_of, k) != skip:
                    shard_tick(settings, workflows, as_of, k, settings.shards)
        with connect(settings.database_path) as con:
            commit_tick(con, settings, workflows, as_of, settings.shards, respond=respond)


def prepare_first(settings: Settings, workflows: list) -> None:
    """The first tick's snapshots ingested, its facts stored and its prepare step run."""
    with connect(settings.database_path) as con:
        project.ingest(con, settings, FIRST)
        project.store_facts(con, settings, [FIRST])
        prepare_tick(con, settings, workflows, FIRST)


@contextmanager
def database_away(settings: Settings) -> Iterator[None]:
    """The working database (and any log of it) moved elsewhere while the block runs."""
    moved = [(path, path.with_name(path.name + ".away")) for path in (
        settings.database_path, settings.database_path.with_name(
            settings.database_path.name + ".wal")) if path.exists()]
    for path, away in moved:
        path.rename(away)
    try:
        yield
    finally:
        for path, away in moved:
            away.rename(path)


def test_ticks_in_published_slices_equal_one_process(tmp_path: Path, landing: Path,
                                                     store: dict[str, str]) -> None:
    every_six_hours = {"tick_cron": "'0 */6 * * *'"}  # 8 ticks over the two days
    one = make_project(tmp_path / "one", landing, 1, **every_six_hours)
    # a folder named like a hive partition, and a glob's brackets: no column, no pattern
    awkward = {"staging_dir": f"'{tmp_path / 'env=prod' / 'slices [1]'}'"}
    four = make_project(tmp_path / "four", landing, 4, **every_six_hours, **store, **awkward)
    in_one_process(one)
    in_slices(four)
    expected, got = tables(one), tables(four)
    assert expected["actions_outbox"], "the book should make the workflows act"
    with connect(four.database_path, read_only=True) as con:
        assert con.sql("SELECT count(DISTINCT owner_group) FROM actions_outbox "
                       "WHERE assignee IS NOT NULL").fetchall()[0][0] >= 1
    for table in TABLES:
        assert got[table] == expected[table], table
    assert list(four.staging_path.iterdir()) == [], \
        "a committed tick's slices are removed, and nothing made to cut or fetch them is left"
    if is_s3(four):
        assert s3server.keys(four.staging_url) == [], "a committed tick's slices are removed"
    elif four.staging_url:
        assert slice_rows(four.staging_url) == 0, "a committed tick's slices are removed"


def is_s3(settings: Settings) -> bool:
    return (settings.staging_url or "").startswith("s3://")


def slice_rows(url: str) -> int:
    import psycopg2

    with closing(psycopg2.connect(url)) as con, con.cursor() as cur:
        cur.execute("SELECT count(*) FROM cswf_slices")
        return int(cur.fetchone()[0])


def test_a_staging_dir_that_cannot_be_a_folder_is_one_line(tmp_path: Path,
                                                             landing: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    settings = make_project(tmp_path / "p", landing, 2, staging_dir=f"'{blocker}'")
    with pytest.raises(SliceStoreError) as caught:
        prepare_first(settings, project.load_workflows(settings))
    assert str(caught.value) == (
        f"staging_dir: cannot use {blocker}: {blocker} is a file, not a folder — give "
        "staging_dir (or CSWF_STAGING_DIR) a folder cswf may write to")


def test_a_missing_slice_fails_the_global_step_with_one_line(tmp_path: Path, landing: Path,
                                                              store: dict[str, str]) -> None:
    settings = make_project(tmp_path / "p", landing, 3, **store)
    with pytest.raises(MissingSlice) as raised:
        in_slices(settings, skip=(FIRST, 1))
    where = str(tick_folder(settings.staging_path, FIRST))
    if is_s3(settings):  # the bucket, the prefix and the tick
        where = f"{settings.staging_url}/2026-05-31-0000"
    elif settings.staging_url:  # the table and database, never a password
        where = "cswf_slices in " + settings.staging_url.replace("cswf@", "")
    assert str(raised.value) == (
        f"tick 2026-05-31-00:00: shard 1 of 3 has no slice in {where}: run that shard's "
        "step again (or the whole tick), then the global step")
    with connect(settings.database_path, read_only=True) as con:
        assert con.sql("SELECT count(*) FROM tick_log").fetchall() == [(0,)]
        assert con.sql("SELECT count(*) FROM actions_outbox").fetchall() == [(0,)]


@pytest.mark.parametrize("shards", [2, 7, 64])
def test_any_shard_count_in_input_slices_equals_one_process(tmp_path: Path, landing: Path,
                                                            shards: int) -> None:
    """Two daily ticks in 2, 7 and 64 shards (64 of 60 accounts: shards with no one in them,
    empty input slices) give one process's tables."""
    daily = {"tick_cron": "'0 0 * * *'"}
    one = make_project(tmp_path / "one", landing, 1, **daily)
    many = make_project(tmp_path / "many", landing, shards, **daily)
    in_one_process(one)
    in_slices(many)
    assert tables(many) == tables(one)


def test_each_shard_s_inputs_are_its_own_participants_and_nothing_else(
        tmp_path: Path, landing: Path) -> None:
    """The prepare step cuts the tick's inputs once: every account's facts in exactly one
    shard's input slice, the shard of the documented bucket SQL; contacts with their account."""
    settings = make_project(tmp_path / "p", landing, 3)
    workflows = project.load_workflows(settings)
    killed = tick_folder(settings.staging_path, FIRST) / f"{TMP_PREFIX}cut-killed" / "0-facts"
    killed.mkdir(parents=True)  # what a prepare step killed mid-cut leaves: the next one's
    unpublished = killed.parents[1] / f"{TMP_PREFIX}shard-1-of-3-killed"  # and a killed shard
    unpublished.mkdir()
    (unpublished / "0-actions.parquet").write_bytes(b"")
    prepare_first(settings, workflows)
    with connect(settings.database_path, read_only=True) as con:
        expected = dict(con.sql(
            f"SELECT participant_id, {shard_of('participant_id', 3)} AS __shard FROM account_facts "
            "WHERE as_of = $t", params={"t": FIRST}).fetchall())
    left = sorted(p.name for p in tick_folder(settings.staging_path, FIRST).iterdir())
    assert left == ["input-0-of-3", "input-1-of-3", "input-2-of-3"], "the cut's files moved, " \
        "a killed prepare step's and a killed shard's removed"
    given = slice_store(settings).read(FIRST, 3, kind=INPUT)
    feeds = [[name for name, _ in members] for members in given[0].info["feeds"]]
    account = next(i for i, names in enumerate(feeds)
                   if workflows[[w.name for w in workflows].index(names[0])].spec.object
                   == "account")
    got = {pid: s.shard for s in given for pid in s.frames[f"{account}-facts"]["participant_id"]}
    assert got == expected and len(set(got.values())) == 3
    contact = next(i for i, names in enumerate(feeds) if i != account)
    for s in given:
        accounts = sorted(set(s.frames[f"{contact}-facts"]["account_id"]))
        assert accounts and {b * 3 // 10_000 for b in sha256_buckets(accounts)} == {s.shard}


def test_a_shard_without_its_inputs_or_with_other_workflows_is_one_line(
        tmp_path: Path, landing: Path) -> None:
    settings = make_project(tmp_path / "p", landing, 2)
    workflows = project.load_workflows(settings)
    with pytest.raises(MissingSlice) as raised:
        shard_tick(settings, workflows, FIRST, 1, 2)
    assert str(raised.value) == (
        f"tick 2026-05-31-00:00: shard 1 of 2 has no inputs in "
        f"{tick_folder(settings.staging_path, FIRST)}: run the tick's prepare step again (or "
        "the whole tick), then its shards")
    prepare_first(settings, workflows)
    edited = [replace(workflows[0], version="edited"), *workflows[1:]]  # same names
    for other in (workflows[1:], edited):
        with pytest.raises(SliceStoreError) as raised:
            shard_tick(settings, other, FIRST, 1, 2)
        assert str(raised.value) == (
            "tick 2026-05-31-00:00: shard 1 of 2: the workflows changed since the tick's "
            "prepare step read its inputs — run the whole tick again")


def test_a_tick_without_its_account_facts_is_not_prepared(tmp_path: Path,
                                                          landing: Path) -> None:
    """`tick_shards_job` launched alone for a tick whose facts are not stored: the prepare step
    stops with one line rather than run the tick with no account in it."""
    settings = make_project(tmp_path / "p", landing, 2)
    workflows = project.load_workflows(settings)
    with connect(settings.database_path) as con:
        project.ingest(con, settings, FIRST)
        project.store_facts(con, settings, [FIRST])
        later = project.ticks_in(settings, FIRST, LAST)[1]
        with pytest.raises(SliceStoreError) as raised:
            prepare_tick(con, settings, workflows, later)
    assert str(raised.value) == (
        "tick 2026-05-31-03:00: no account facts are stored for this tick — materialize "
        "account_facts for it first (cswf run and cswf tick do), then the tick")
    assert not slice_store(settings).published(later, 2, kind=INPUT)


def test_a_shard_step_loads_its_specs_without_the_warehouse(
        tmp_path: Path, landing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The working database exists, but a shard step's specs come without it: the prepare
    step checked them against it, and the input slice names their versions."""
    settings = make_project(tmp_path / "p", landing, 2)
    with connect(settings.database_path) as con:
        project.ingest(con, settings, FIRST)

    def no(*_: object, **__: object) -> None:
        raise AssertionError("a shard step opened the working database")

    monkeypatch.setattr("cswf.project.specs.connect", no)
    assert project.load_workflows(settings, warehouse=False)
    with pytest.raises(AssertionError, match="opened the working database"):
        project.load_workflows(settings)


def test_slices_of_two_prepare_steps_are_not_merged(tmp_path: Path, landing: Path) -> None:
    """A prepare step run again while only some shards ran again: the global step stops with
    one line, commits nothing; the other shards run again and the tick commits."""
    settings = make_project(tmp_path / "p", landing, 2)
    workflows = project.load_workflows(settings)
    prepare_first(settings, workflows)
    shard_tick(settings, workflows, FIRST, 0, 2)
    with connect(settings.database_path) as con:
        prepare_tick(con, settings, workflows, FIRST)
    shard_tick(settings, workflows, FIRST, 1, 2)
    refused_then_committed(settings, workflows, 0, (
        "tick 2026-05-31-00:00: shards 0 and 1 ran on the inputs of different prepare steps: "
        "run the whole tick again (its prepare step, its shards, then the global step)"))


def test_workflows_edited_after_the_shards_or_a_second_global_step_are_one_line(
        tmp_path: Path, landing: Path) -> None:
    """A spec edited after the shards ran is refused by the global step, as by a shard; and
    the global step run again once its tick is committed says so, rather than send the user
    to run shards whose inputs are gone."""
    settings = make_project(tmp_path / "p", landing, 2)
    workflows = project.load_workflows(settings)
    prepare_first(settings, workflows)
    for k in range(2):
        shard_tick(settings, workflows, FIRST, k, 2)
    edited = [replace(workflows[0], version="edited"), *workflows[1:]]
    commit_refused(settings, edited, (
        "tick 2026-05-31-00:00: the workflows changed since the tick's prepare step read its "
        "inputs — run the whole tick again (its prepare step, its shards, then the global "
        "step)"))
    manifest = tick_folder(settings.staging_path, FIRST) / "shard-0-of-2" / "slice.json"
    older = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({k: v for k, v in older.items() if k != "feeds"}))
    commit_refused(settings, workflows, (
        "tick 2026-05-31-00:00: shard 0's slice does not say which workflow versions it ran (it "
        "was published by another version of cswf): run the whole tick again (its prepare "
        "step, its shards, then the global step)"))
    manifest.write_text(json.dumps(older))
    with connect(settings.database_path) as con:
        assert commit_tick(con, settings, workflows, FIRST, 2)[0].status == "written"
        with pytest.raises(MissingSlice) as again:
            commit_tick(con, settings, workflows, FIRST, 2)
        assert str(again.value) == (
            "tick 2026-05-31-00:00 is already committed, and its slices went when it was: there "
            "is nothing for the global step to do. To run the tick again, run the whole tick "
            "(its prepare step, its shards, then the global step), as cswf tick does")
        prepare_tick(con, settings, workflows, FIRST)  # the tick run again: its shards missing
        with pytest.raises(MissingSlice, match=r"shard 0 of 2 \(and 1 more\) has no slice"):
            commit_tick(con, settings, workflows, FIRST, 2)


def test_what_a_killed_global_step_fetched_is_removed_by_the_next(
        tmp_path: Path, landing: Path, store: dict[str, str]) -> None:
    """A global step killed while it read the slices leaves what it fetched under
    staging_dir; the next one (re-executed alone, as Dagster's "from failure" does) removes
    it, and nothing is left once the tick is committed."""
    settings = make_project(tmp_path / "p", landing, 2, **store)
    workflows = project.load_workflows(settings)
    prepare_first(settings, workflows)
    for k in range(2):
        shard_tick(settings, workflows, FIRST, k, 2)
    stale = tick_folder(settings.staging_path, FIRST) / f"{TMP_PREFIX}fetched-killed"
    stale.mkdir(parents=True)
    (stale / "0-0-changed.parquet").write_bytes(b"")
    with connect(settings.database_path) as con:
        assert commit_tick(con, settings, workflows, FIRST, 2)[0].status == "written"
    assert list(settings.staging_path.iterdir()) == []


def commit_refused(settings: Settings, workflows: list, line: str) -> None:
    """The global step of the first tick stops with `line` and commits nothing."""
    with connect(settings.database_path) as con, pytest.raises(SliceStoreError) as raised:
        commit_tick(con, settings, workflows, FIRST, 2)
    assert str(raised.value) == line
    with connect(settings.database_path, read_only=True) as con:
        assert con.sql("SELECT count(*) FROM tick_log").fetchall() == [(0,)]


def refused_then_committed(settings: Settings, workflows: list, shard: int, line: str) -> None:
    """The global step of the first tick stops with `line` and commits nothing; once `shard`
    runs again, it commits the tick."""
    commit_refused(settings, workflows, line)
    shard_tick(settings, workflows, FIRST, shard, 2)
    with connect(settings.database_path) as con:
        assert commit_tick(con, settings, workflows, FIRST, 2)[0].status == "written"


def test_a_slice_of_another_version_is_refused_not_read_as_an_idle_shard(
        tmp_path: Path, landing: Path) -> None:
    """A slice handing over a whole state (as cswf did before the global step stopped holding
    the book) would read as a shard that changed nothing: the global step stops with one
    line, commits nothing, and the tick run again commits."""
    settings = make_project(tmp_path / "p", landing, 2)
    workflows = project.load_workflows(settings)
    prepare_first(settings, workflows)
    shard_tick(settings, workflows, FIRST, 0, 2)
    shard_tick(settings, workflows, FIRST, 1, 2)
    store = slice_store(settings)
    [old] = store.read(FIRST, 2, only=1)
    frames = {name.replace("-changed", "-state"): frame for name, frame in old.frames.items()}
    info = {key: value for key, value in old.info.items() if key not in ("frames", "shard",
                                                                         "shards")}
    store.publish(FIRST, 1, 2, frames, info)
    refused_then_committed(settings, workflows, 1, (
        "tick 2026-05-31-00:00: shard 1's slice holds '0-state', which this version of cswf "
        "does not write (it was published by another version, or for other workflows): run "
        "the whole tick again (its prepare step, its shards, then the global step)"))


SHARD_CHILD = """
import sys
from datetime import datetime
from pathlib import Path
from cswf import project
from cswf.project.fanout import shard_tick
from cswf.settings import load_settings
settings = load_settings(Path(sys.argv[1]))
shard_tick(settings, project.load_workflows(settings, warehouse=False),
           datetime.fromisoformat(sys.argv[2]),
           int(sys.argv[3]), settings.shards)
"""


def test_a_shard_killed_before_publishing_leaves_nothing_and_a_rerun_completes_the_tick(
        tmp_path: Path, landing: Path, store: dict[str, str]) -> None:
    """SIGKILL a shard's process after its slice is written and before it is published (the
    rename of its folder; the commit of its Postgres transaction; the PUT of its manifest
    object, its frame objects stored): no slice is visible, the
    global step commits nothing; running the shard again completes the tick, and running the
    tick again changes nothing (no action twice)."""
    settings = make_project(tmp_path / "p", landing, 2, **store)
    workflows = project.load_workflows(settings)
    prepare_first(settings, workflows)
    shard_tick(settings, workflows, FIRST, 0, 2)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path),
           PAUSE_BEFORE_PUBLISH: "1:120"}
    child = subprocess.Popen([sys.executable, "-c", SHARD_CHILD, str(settings.root),
                              FIRST.isoformat(), "1"], env=env)
    deadline = time.monotonic() + 60
    while not written_unpublished(settings):
        assert child.poll() is None and time.monotonic() < deadline, "the shard never wrote"
        time.sleep(0.1)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert slice_store(settings).published(FIRST, 2) == [0]
    with connect(settings.database_path) as con, pytest.raises(MissingSlice, match="shard 1"):
        commit_tick(con, settings, workflows, FIRST, 2)
    with connect(settings.database_path, read_only=True) as con:
        assert con.sql("SELECT count(*) FROM tick_log").fetchall() == [(0,)]
    shard_tick(settings, workflows, FIRST, 1, 2)  # the re-run: replaces the leftovers
    with connect(settings.database_path) as con:
        assert commit_tick(con, settings, workflows, FIRST, 2)[0].status == "written"
    with connect(settings.database_path) as con:  # the whole tick again: inputs and slices
        prepare_tick(con, settings, workflows, FIRST)  # rewritten, the commit a no-op
    for k in (0, 1):
        shard_tick(settings, workflows, FIRST, k, 2)
        shard_tick(settings, workflows, FIRST, k, 2)
    with connect(settings.database_path) as con:
        assert commit_tick(con, settings, workflows, FIRST, 2)[0].status == "unchanged"
        total, distinct = con.sql("SELECT count(*), count(DISTINCT action_id) "
                                  "FROM actions_outbox").fetchall()[0]
        assert total == distinct > 0
        assert con.sql("SELECT count(*) FROM tick_log").fetchall() == [(1,)]
    one = make_project(tmp_path / "one", landing, 1)
    with connect(one.database_path) as con:
        project.ingest(con, one, FIRST)
        project.store_facts(con, one, [FIRST])
        project.run_ticks(con, one, project.load_workflows(one), [FIRST])
    assert tables(settings) == tables(one)


def fresh_forkserver() -> None:
    """Step processes fork from a server that keeps the environment it started with: stop the
    one an earlier test started, so this test's variables reach its steps (a CLI command is a
    process of its own, whose server starts with its environment)."""
    from multiprocessing import forkserver

    forkserver._forkserver._stop()


def frames_without_manifest(settings: Settings) -> bool:
    """Whether shard 1 of 2 has frame objects of the first tick and no manifest."""
    found = s3server.keys(f"{settings.staging_url}/2026-05-31-0000/shard-1-of-2/")
    return any(k.endswith(".parquet") for k in found) and not any(
        k.endswith("/manifest.json") for k in found)


def documented_instance() -> str:
    """The `dagster.yaml` docs/scaling.md gives for Dagster's records in PostgreSQL."""
    text = (REPO / "docs" / "scaling.md").read_text()
    start = text.index("# dagster.yaml (DAGSTER_HOME)\n")
    return text[start:text.index("```", start)]


def written_unpublished(settings: Settings) -> bool:
    """Whether a shard has written its slice and waits before publishing it: its folder's
    files are in a temporary folder, its rows in a transaction not yet committed, or its
    frame objects stored without a manifest."""
    if is_s3(settings):
        if not frames_without_manifest(settings):
            return False
        time.sleep(1.0)  # still so a second later: in its pause, not between two PUTs
        return frames_without_manifest(settings)
    if not settings.staging_url:
        folder = tick_folder(settings.staging_path, FIRST)
        return any((p / MANIFEST).exists() for p in folder.glob(f"{TMP_PREFIX}*"))
    import psycopg2

    with closing(psycopg2.connect(settings.staging_url)) as con, con.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state = 'idle in transaction' AND query LIKE 'INSERT INTO cswf_slices%'")
        return int(cur.fetchone()[0]) > 0


@pytest.mark.parametrize("records", ["sqlite", "postgres", "sqlite+s3"])
def test_ticks_on_the_multiprocess_executor_equal_one_shard(
        tmp_path: Path, landing: Path, monkeypatch: pytest.MonkeyPatch, records: str,
        request: pytest.FixtureRequest) -> None:
    """`cswf run`'s and `cswf demo`'s path (run_tick_range): 4 shards, each a process of its own
    (two at once), over two daily ticks, give the tables of one shard, the simulated customers'
    answers included (they answer in this process between one tick's run and the next); the
    caller still hears every tick. With `postgres`, what several machines need: Dagster's
    records in PostgreSQL (dagster-postgres, as docs/scaling.md configures it) and the slices
    handed over in PostgreSQL (`staging_url`), on a real server. With `sqlite+s3`, the slices
    handed over in a bucket (moto's server), each step's process finding the AWS_* settings in
    its environment."""
    from cswf.defs.resources import project_resource
    from cswf.demo.audience import SimulatedCustomers

    (tmp_path / "dagster").mkdir()
    instance = "telemetry:\n  enabled: false\n"
    shared: dict[str, str] = {}
    if records == "postgres":  # docs/scaling.md's dagster.yaml, as written there
        server = request.getfixturevalue("postgres_server")
        instance = documented_instance()
        records_url = urlsplit(server.database())
        for name, value in {"HOST": records_url.hostname, "USER": records_url.username,
                            "PASSWORD": "unused: the test server trusts 127.0.0.1",
                            "DB": records_url.path[1:], "PORT": str(records_url.port)}.items():
            monkeypatch.setenv(f"DAGSTER_PG_{name}", str(value))
        shared["staging_url"] = f"'{server.database()}'"
        fresh_forkserver()
    if records == "sqlite+s3":
        shared["staging_url"] = f"'{request.getfixturevalue('s3')}'"
        fresh_forkserver()
    (tmp_path / "dagster" / "dagster.yaml").write_text(instance)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    daily = {"tick_cron": "'0 0 * * *'"}
    one = make_project(tmp_path / "one", landing, 1, **daily)
    four = make_project(tmp_path / "four", landing, 4, executor="multiprocess",
                        max_concurrent_shards="2", **daily, **shared)
    heard = []
    last = datetime(2026, 6, 1)
    for settings in (one, four):
        customers = SimulatedCustomers(project=project_resource(settings),
                                       last_tick=last.isoformat())
        run = run_tick_range(settings, FIRST, last, quiet=True, ingest_now=last,
                             audience=customers,
                             on_tick=lambda outcome, result: heard.append(
                                 (outcome.as_of, outcome.status, result.actions.height)))
        assert run.success
    assert heard[2:] == heard[:2] and heard[0][1] == "written"
    with dg.DagsterInstance.get() as instance:  # the runs were recorded in DAGSTER_HOME
        assert type(instance.run_storage).__name__ == (
            "PostgresRunStorage" if records == "postgres" else "SqliteRunStorage")
        runs = instance.get_run_records(dg.RunsFilter(job_name=SHARDS_JOB))
        assert sorted(r.dagster_run.tags["dagster/partition"] for r in runs) == [
            "2026-05-31-00:00", "2026-06-01-00:00"]
        started = [e for e in instance.all_logs(runs[0].dagster_run.run_id)
                   if e.is_dagster_event and e.dagster_event.event_type_value == "STEP_START"]
    pids = {e.step_key: e.dagster_event.pid for e in started}
    assert {f"workflow_engine.engine_shard_{k}" for k in range(4)} <= set(pids)
    assert len(set(pids.values())) == len(pids), "each step runs in a process of its own"
    expected, got = tables(one), tables(four)
    assert expected["actions_outbox"] and expected["action_events"]
    if four.staging_url:
        assert not any(p.is_file() for p in four.staging_path.rglob("*")), \
            "the slices went through staging_url (the prepare step's cut, removed, only here)"
    if is_s3(four):  # the slices went through the bucket, and were removed once committed
        assert s3server.keys(four.staging_url) == []
    elif four.staging_url:  # the slices went through PostgreSQL, and were removed once committed
        assert slice_rows(four.staging_url) == 0
    for table in TABLES:
        assert got[table] == expected[table], table


@pytest.mark.parametrize(("line", "said"), [
    ("executor: threads\n", "cswf.yaml: executor: Input should be 'in_process' or "
                            "'multiprocess' — fix the value"),
    ("max_concurrent_shards: 0\n", "cswf.yaml: max_concurrent_shards: Input should be greater "
                                   "than or equal to 1 — fix the value"),
    ("staging_url: /data/staging\n", "cswf.yaml: staging_url: expected a PostgreSQL or S3 URL "
                                     "such as postgresql://cswf@db.example.internal:5432/cswf or "
                                     "s3://cswf-slices/prod — fix the value"),
    ("staging_url: postgresql://cswf:s3cret@db:5432/cswf\n",
     "cswf.yaml: staging_url: the URL holds a password: remove it and set PGPASSWORD or "
     "~/.pgpass instead — fix the value"),
    ("staging_url: postgresql://cswf@db:5x/cswf\n",
     "cswf.yaml: staging_url: the port is not a number from 0 to 65535 — fix the value"),
    ("staging_url: s3://AKIAEXAMPLE:s3cret@cswf-slices/prod\n",
     "cswf.yaml: staging_url: the URL holds credentials: remove them and set AWS_ACCESS_KEY_ID "
     "and AWS_SECRET_ACCESS_KEY instead — fix the value"),
    ("staging_url: s3:///prod\n", "cswf.yaml: staging_url: no bucket: expected "
                                  "s3://<bucket>/<prefix>, such as s3://cswf-slices/prod — fix "
                                  "the value"),
    ("staging_url: s3://localhost:9000/cswf-slices\n",
     "cswf.yaml: staging_url: a port after the bucket: the endpoint goes in AWS_ENDPOINT_URL, "
     "the URL is s3://<bucket>/<prefix> — fix the value"),
    ("staging_url: s3://Cswf_Slices/prod\n",
     "cswf.yaml: staging_url: 'Cswf_Slices' is not a bucket name: 3 to 63 lower-case letters, "
     "digits, dots and hyphens, not shaped like an IP address — fix the value"),
    ("staging_url: s3://192.168.1.1/prod\n",
     "cswf.yaml: staging_url: '192.168.1.1' is not a bucket name: 3 to 63 lower-case letters, "
     "digits, dots and hyphens, not shaped like an IP address — fix the value"),
    ("staging_url: s3://cswf..slices/prod\n",
     "cswf.yaml: staging_url: 'cswf..slices' is not a bucket name: 3 to 63 lower-case letters, "
     "digits, dots and hyphens, not shaped like an IP address — fix the value"),
    ("staging_url: s3://cswf-slices/prod/../other\n",
     "cswf.yaml: staging_url: the prefix 'prod/../other': parts of letters, digits, '_', '.' "
     "and '-' between single '/', not '.' or '..' — fix the value"),
    ("staging_url: s3://cswf-slices/a%2Fb\n",
     "cswf.yaml: staging_url: the prefix 'a%2Fb': parts of letters, digits, '_', '.' and '-' "
     "between single '/', not '.' or '..' — fix the value"),
    ("staging_url: s3://cswf-slices/a//b\n",
     "cswf.yaml: staging_url: the prefix 'a//b': parts of letters, digits, '_', '.' and '-' "
     "between single '/', not '.' or '..' — fix the value"),
    ("staging_url: 's3://cswf-slices/prod#'\n",
     "cswf.yaml: staging_url: expected s3://<bucket>/<prefix> and nothing after it (endpoint, "
     "region and credentials come from the AWS_* environment) — fix the value"),
    ("staging_url: s3://cswf-slices/prod?endpoint=http://minio:9000\n",
     "cswf.yaml: staging_url: expected s3://<bucket>/<prefix> and nothing after it (endpoint, "
     "region and credentials come from the AWS_* environment) — fix the value"),
])
def test_a_bad_executor_setting_fails_the_definitions_with_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, said: str) -> None:
    (tmp_path / "cswf.yaml").write_text(line)
    monkeypatch.delenv("CSWF_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProjectSettingsError) as raised:
        project_settings(tmp_path / "src" / "project")
    assert str(raised.value) == said


def test_the_engine_is_shard_steps_only_with_shards(tmp_path: Path, landing: Path) -> None:
    """`shards: 1`, and `shards: 3` in process, keep the one-op engine and no tick_shards_job;
    `shards: 3` on the multiprocess executor makes the engine a graph of prepare, three shard
    steps and the global step."""
    one = build_defs(make_project(tmp_path / "one", landing, 1))
    assert isinstance(one.resolve_assets_def("enrollments").node_def, dg.OpDefinition)
    assert SHARDS_JOB not in {job.name for job in one.resolve_all_job_defs()}
    # in process, shards run inside the engine's one step: no steps of their own to pay for
    inside = build_defs(make_project(tmp_path / "inside", landing, 3))
    assert isinstance(inside.resolve_assets_def("enrollments").node_def, dg.OpDefinition)
    assert SHARDS_JOB not in {job.name for job in inside.resolve_all_job_defs()}
    three = build_defs(make_project(tmp_path / "three", landing, 3, executor="multiprocess",
                                    max_concurrent_shards="2"))
    engine = three.resolve_assets_def("enrollments")
    assert isinstance(engine.node_def, dg.GraphDefinition)
    assert sorted(node.name for node in engine.node_def.nodes) == [
        "commit_tick", "engine_shard_0", "engine_shard_1", "engine_shard_2", "prepare_tick"]
    shard = next(node for node in engine.node_def.nodes if node.name == "engine_shard_0")
    assert shard.definition.pool == "cswf_shards"
    job = three.resolve_job_def(SHARDS_JOB)
    assert job.executor_def.name == "multiprocess"
    assert three.resolve_job_def("tick_job").executor_def.name == "in_process"


def test_a_project_may_put_the_shard_steps_on_its_own_executor(tmp_path: Path,
                                                               landing: Path) -> None:
    """What docs/scaling.md's k8s example does: `build_defs(..., shard_executor=...)`."""
    mine = dg.multiprocess_executor.configured({"max_concurrent": 7}, name="cluster")
    defs = build_defs(make_project(tmp_path / "p", landing, 2), shard_executor=mine)
    assert defs.resolve_job_def(SHARDS_JOB).executor_def.name == "cluster"


def test_the_shard_sql_finds_the_shards_of_the_engine() -> None:
    """The prepare step cuts a tick's inputs with store/slices.py's shard SQL: the same
    shards as engine/shards.py gives them, for any count."""
    import duckdb
    import polars as pl

    from cswf.engine.shards import participant_shards
    from cswf.store.slices import shard_of

    ids = pl.DataFrame({"participant_id": [f"ACC-{i}" for i in range(500)] + [None]})
    for shards in (2, 3, 7):
        expected = participant_shards(ids, None, [], shards)
        for k in range(shards):
            shard = shard_of("participant_id", shards)
            got = duckdb.sql(f"SELECT participant_id FROM (SELECT *, {shard} AS __shard "
                             f"FROM ids) WHERE __shard = {k} ORDER BY participant_id "
                             "NULLS FIRST").pl()["participant_id"]
            assert got.to_list() == expected.filter(pl.col("__shard") == k).sort(
                "participant_id", nulls_last=False)["participant_id"].to_list()


def test_a_simulated_audience_answers_the_same_with_shards_in_process(
        tmp_path: Path, landing: Path) -> None:
    """`cswf demo` with shards in process: one run for the range, the shards inside each
    tick's engine step, the customers' answers the same as with one shard."""
    from cswf.defs.resources import project_resource
    from cswf.demo.audience import SimulatedCustomers

    daily = {"tick_cron": "'0 0 * * *'"}
    last = datetime(2026, 6, 2)
    found = []
    for shards in (1, 4):
        settings = make_project(tmp_path / f"s{shards}", landing, shards, **daily)
        audience = SimulatedCustomers(project=project_resource(settings),
                                      last_tick=last.isoformat())
        assert run_tick_range(settings, FIRST, last, audience=audience, quiet=True,
                              ingest_now=last).success
        found.append(tables(settings))
    assert found[0]["action_events"], "the customers should answer"
    assert found[1] == found[0]
