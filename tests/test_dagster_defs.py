"""The Dagster layer: definitions load, tick partitions run in order, blocking checks stop a
tick, the sensor and the schedule request the right runs. Uses a tiny demo book."""

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
import yaml
from engine_harness import ASSET_GROUPS

from cswf.defs import build_defs
from cswf.defs.assets import ENGINE, markdown_table
from cswf.defs.automation import LANDING_SENSOR, TICK_JOB, TICK_SCHEDULE
from cswf.defs.checks import account_rows, duplicate_ids, rejected_files
from cswf.defs.launch import run_tick_range
from cswf.defs.partitions import tick_partitions
from cswf.defs.resources import project_resource
from cswf.demo.generate import generate_book
from cswf.settings import ENV_OVERRIDES, Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
FIRST, SECOND = "2026-05-31-00:00", "2026-05-31-03:00"


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*ENV_OVERRIDES, "CSWF_ROOT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("book") / "landing"
    generate_book(landing, accounts=60, days=40, start=date(2026, 5, 1))
    return landing


@pytest.fixture
def settings(tmp_path: Path, book: Path) -> Settings:
    """A project folder in tmp_path with its own landing copy and DuckDB; real specs and SQL."""
    shutil.copytree(book, tmp_path / "landing")
    config = {
        "database": "db/cswf.duckdb",
        "landing_dir": "landing",
        "specs_dir": str(REPO / "workflow_specs"),
        "tick_cron": "0 */3 * * *",
        "tick_start": "2026-05-31 00:00",
    }
    (tmp_path / "cswf.yaml").write_text(yaml.safe_dump(config))
    return load_settings(tmp_path)


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def query(settings: Settings, sql: str) -> list[tuple]:
    con = duckdb.connect(str(settings.database_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def tables(settings: Settings) -> set[str]:
    return {name for (name,) in query(settings, "SELECT table_name FROM duckdb_tables()")}


def run_partition(
    defs: dg.Definitions, key: str, instance: dg.DagsterInstance, **kwargs: object
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(TICK_JOB)
    return job.execute_in_process(partition_key=key, instance=instance, **kwargs)


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    events = [
        e for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(asset)
    ]
    assert events, f"{asset} was not materialized"
    raw = events[-1].materialization.metadata
    return {k: getattr(v, "value", v) for k, v in raw.items()}


# -- definitions -----------------------------------------------------------------------------


def test_definitions_load(settings: Settings) -> None:
    from cswf.defs import defs as module_defs

    assert isinstance(module_defs, dg.Definitions)
    defs = build_defs(settings)
    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == ASSET_GROUPS
    for key in graph.get_all_asset_keys():
        assert graph.get(key).kinds, key
        assert graph.get(key).description, key
        partitioned = graph.get(key).partitions_def is not None
        assert partitioned == (groups[key.to_user_string()] in ("facts", "engine"))
    checks = {key.name: key for key in graph.asset_check_keys}
    assert set(checks) == {"unique_ids", "required_columns", "non_empty"}
    assert all(graph.get_check_spec(k).blocking for k in checks.values())
    enrollments = graph.get(dg.AssetKey("enrollments"))
    assert dg.AssetKey("enrollments") in enrollments.parent_keys  # its own previous tick
    assert defs.resolve_job_def(TICK_JOB).partitions_def is not None
    sensor = defs.resolve_sensor_def(LANDING_SENSOR)
    assert sensor.minimum_interval_seconds == 60
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED


def test_project_resource_reproduces_settings(settings: Settings) -> None:
    assert project_resource(settings).overrides == {}
    assert project_resource(settings).settings() == settings
    changed = load_settings(settings.root, database="elsewhere.duckdb", tick_cron="0 * * * *")
    resource = project_resource(changed)
    assert resource.overrides == {"database": "elsewhere.duckdb", "tick_cron": "0 * * * *"}
    assert resource.settings() == changed


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside Dagster's schedule builder
def test_schedule_runs_the_latest_tick(settings: Settings) -> None:
    schedule = build_defs(settings).resolve_schedule_def(TICK_SCHEDULE)
    assert schedule.cron_schedule == settings.tick_cron
    assert schedule.job_name == TICK_JOB
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    at = datetime(2026, 6, 1, 3, tzinfo=UTC)
    with dg.build_schedule_context(scheduled_execution_time=at) as context:
        data = schedule.evaluate_tick(context)
    assert [r.partition_key for r in data.run_requests or []] == ["2026-06-01-03:00"]


# -- running ticks ---------------------------------------------------------------------------


def test_consecutive_ticks_carry_state(settings: Settings, instance: dg.DagsterInstance) -> None:
    defs = build_defs(settings)
    first = run_partition(defs, FIRST, instance)
    second = run_partition(defs, SECOND, instance)
    assert first.success and second.success

    logged = [row[0] for row in query(settings, "SELECT as_of FROM tick_log ORDER BY as_of")]
    assert logged == [datetime(2026, 5, 31, 0), datetime(2026, 5, 31, 3)]
    for table in (*ENGINE, "workflow_summary"):
        assert query(settings, f"SELECT count(*) FROM {table}")[0][0] > 0, table
    # The second tick continued from the first one's state: nobody entered twice.
    twice = query(
        settings,
        "SELECT workflow, participant_id FROM transitions WHERE transition = 'entered' "
        "GROUP BY ALL HAVING count(DISTINCT tick) > 1",
    )
    assert twice == []
    assert metadata(first, "enrollments")["tick_status"] == "written"
    assert metadata(second, "enrollments")["tick_status"] == "written"
    assert metadata(second, "enrollments")["active_enrollments"] > 0
    assert metadata(first, "account_facts")["participants"] > 0
    assert "| participant_id |" in metadata(first, "account_facts")["preview"]
    assert metadata(first, "workflow_summary")["dagster/row_count"] > 0

    again = run_partition(defs, FIRST, instance)
    assert metadata(again, "enrollments")["tick_status"] == "unchanged"
    assert metadata(again, "landing_snapshots")["files_loaded"] == 0
    assert query(settings, "SELECT count(*) FROM tick_log")[0][0] == 2  # nothing rewound

    materialized = instance.get_materialized_partitions(dg.AssetKey("enrollments"))
    assert materialized == {FIRST, SECOND}


def test_tick_range_is_one_run(settings: Settings, instance: dg.DagsterInstance) -> None:
    result = run_tick_range(settings, datetime(2026, 5, 31), datetime(2026, 5, 31, 21), instance)
    assert result.success
    assert len(instance.get_run_records()) == 1
    expected = {f"2026-05-31-{h:02d}:00" for h in range(0, 24, 3)}
    for asset in ("account_facts", *ENGINE):
        assert instance.get_materialized_partitions(dg.AssetKey(asset)) == expected, asset
    assert metadata(result, "transitions")["run_ticks"] == 8
    assert "| workflow |" in metadata(result, "transitions")["preview"]
    assert query(settings, "SELECT count(*) FROM tick_log")[0][0] == 8
    with pytest.raises(ValueError, match="no tick"):
        run_tick_range(settings, datetime(2026, 5, 31, 1), datetime(2026, 5, 31, 2), instance)


def test_failed_blocking_check_stops_the_tick(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    accounts = settings.landing_path / "accounts"
    first = sorted(accounts.iterdir())[0]
    shutil.copy(first, accounts / f"zz_copy_of_{first.name}")  # same (date, account) keys again

    result = run_partition(build_defs(settings), FIRST, instance, raise_on_error=False)
    assert not result.success
    checks = {
        e.asset_check_evaluation_data.asset_check_key.name: e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }
    assert not checks["unique_ids"].passed
    assert checks["unique_ids"].metadata["offending"].value > 0
    assert first.name in checks["unique_ids"].metadata["examples"].value
    assert checks["required_columns"].passed and checks["non_empty"].passed
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"landing_snapshots"}
    present = tables(settings)
    for table in ("actions_outbox", "tick_log"):
        assert table not in present or query(settings, f"SELECT count(*) FROM {table}")[0][0] == 0


def test_rejected_file_fails_required_columns(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    from cswf.ingest.snapshots import ingest_landing

    landing = tmp_path / "landing"
    (landing / "accounts").mkdir(parents=True)
    pl.DataFrame({"snapshot_date": ["2026-05-01"], "account_id": ["A1"]}).write_csv(
        landing / "accounts" / "accounts_2026-05-01.csv"
    )
    ingest_landing(con, landing)
    finding = rejected_files(con)
    assert finding.count == 1
    assert any("accounts_2026-05-01.csv" in e and "account_name" in e for e in finding.examples)
    assert duplicate_ids(con).count == 0
    assert account_rows(con) == 0
    con.close()


# -- sensor ----------------------------------------------------------------------------------


def test_landing_sensor_requests_runs_for_new_files(settings: Settings) -> None:
    defs = build_defs(settings)
    sensor = defs.resolve_sensor_def(LANDING_SENSOR)

    def evaluate(cursor: str | None) -> tuple[list[dg.RunRequest], str | None]:
        with dg.build_sensor_context(
            cursor=cursor, definitions=defs, resources={"cswf": project_resource(settings)}
        ) as context:
            data = sensor.evaluate_tick(context)
        return list(data.run_requests or []), data.cursor

    first, cursor = evaluate(None)
    assert len(first) == 1 and cursor
    latest = tick_partitions(settings.calendar).get_last_partition_key()
    assert first[0].partition_key == latest
    assert first[0].run_key

    nothing, same = evaluate(cursor)
    assert nothing == [] and same in (None, cursor)

    usage = settings.landing_path / "usage"
    newest = sorted(usage.iterdir())[-1]
    shutil.copy(newest, usage / "usage_2026-06-10.parquet")
    again, newer = evaluate(cursor)
    assert len(again) == 1 and newer != cursor
    assert again[0].run_key != first[0].run_key

    requests = settings.landing_path / "deploy_requests"  # a deploy file starts a tick too
    requests.mkdir(exist_ok=True)
    (requests / "push.csv").write_text("workflow,participant_id\nrenewal_preparation,ACC-1\n")
    deploy, newest_cursor = evaluate(newer)
    assert len(deploy) == 1 and newest_cursor != newer
    (requests / "push.csv").unlink()  # the fixture's project is shared: leave it as it was


# -- helpers ---------------------------------------------------------------------------------


def test_markdown_table() -> None:
    frame = pl.DataFrame({"a": [1, 2, 3], "b": ["x|y", None, "z\nw"]})
    text = markdown_table(frame, limit=2)
    lines = text.splitlines()
    assert lines[0] == "| a | b |" and lines[1] == "|---|---|"
    assert lines[2] == "| 1 | x\\|y |" and lines[3] == "| 2 |  |"
    assert "2 of 3 rows" in text


def test_delivery_job_runs_after_a_tick_in_dry_run(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    defs = build_defs(settings)
    run_tick_range(settings, datetime(2026, 5, 31), datetime(2026, 6, 1, 21), instance)
    emitted = query(settings, "SELECT count(*) FROM actions_outbox")[0][0]
    assert emitted > 0
    job = defs.resolve_job_def("delivery_job")
    config = {"ops": {name: {"config": {"now": "2026-06-02T10:00:00"}}
                      for name in ("deliveries", "action_insights")}}
    result = job.execute_in_process(instance=instance, run_config=config)
    assert result.success
    recorded = dict(query(settings, "SELECT status, count(*) FROM deliveries GROUP BY ALL"))
    assert sum(recorded.values()) == emitted
    assert recorded.get("sent", 0) > 0 and "pending" not in recorded
    previews = list((settings.root / "data" / "outbox_preview").iterdir())
    assert any(p.suffix == ".eml" for p in previews)
    assert query(settings, "SELECT count(*) FROM action_insights")[0][0] > 0
    again = job.execute_in_process(instance=instance, run_config=config)
    assert str(metadata(again, "deliveries")["summary"]).startswith("nothing due")
