"""The Dagster layer: definitions load (also through the dg project), tick partitions run in
order and end with the latest snapshot, checks pass on good data and fail (blocking where they
must) on bad data, tables report DuckDB schemas and row counts, the sensor and the schedule
request the right runs, a CLI tick is recorded like a Dagster one. Uses a tiny demo book."""

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
import yaml
from engine_harness import ASSET_GROUPS
from typer.testing import CliRunner

from cswf.cli import app
from cswf.defs import ProjectSettingsError, build_defs, project_settings
from cswf.defs.assets import ENGINE
from cswf.defs.automation import LANDING_SENSOR, TICK_JOB, TICK_SCHEDULE
from cswf.defs.launch import run_tick_range
from cswf.defs.partitions import latest_snapshot_day
from cswf.defs.resources import project_resource
from cswf.demo.generate import generate_book
from cswf.ingest.checks import account_rows, duplicate_ids, rejected_files
from cswf.settings import ENV_OVERRIDES, PACKAGE_SQL, Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
FIRST, SECOND = "2026-05-31-00:00", "2026-05-31-03:00"
LAST = "2026-06-09-21:00"  # the last tick of the book's last day (40 days from 2026-05-01)
# Every check and whether it blocks what comes after it in its run.
CHECKS = {
    "unique_ids": True, "required_columns": True, "snapshots_complete": True,
    "no_flagged_rows": False,
    "one_row_per_participant_and_tick": True, "snapshots_fresh": True, "tick_not_held": True,
    "unique_action_ids": True,
    "one_active_enrollment": True,
    "summary_counts_add_up": False, "every_workflow_summarized": False,
}


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
    defs = build_defs(settings)
    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == ASSET_GROUPS
    for key in graph.get_all_asset_keys():
        assert graph.get(key).kinds, key
        assert graph.get(key).description, key
        partitioned = graph.get(key).partitions_def is not None
        assert partitioned == (groups[key.to_user_string()] in ("facts", "engine"))
    checks = {key.name: graph.get_check_spec(key).blocking for key in graph.asset_check_keys}
    assert {name: checks[name] for name in CHECKS} == CHECKS
    declared = set(checks) - set(CHECKS)  # the SQL models' data tests: reported, not blocking
    assert "not_null_account_facts_participant_id" in declared
    assert not any(checks[name] for name in declared)
    enrollments = graph.get(dg.AssetKey("enrollments"))
    assert dg.AssetKey("enrollments") in enrollments.parent_keys  # its own previous tick
    assert defs.resolve_job_def(TICK_JOB).partitions_def is not None
    sensor = defs.resolve_sensor_def(LANDING_SENSOR)
    assert sensor.minimum_interval_seconds == 60
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED


def test_a_bad_setting_fails_the_definitions_with_the_clis_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`dg dev` loads the definitions through project_settings: a bad value is named as `cswf
    validate` names it (file, key, what to do), not as a pydantic error."""
    (tmp_path / "cswf.yaml").write_text("shards: 0\n")
    monkeypatch.delenv("CSWF_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProjectSettingsError) as raised:
        project_settings(tmp_path / "src" / "project")
    assert str(raised.value) == ("cswf.yaml: shards: Input should be greater than or equal to 1 "
                                 "— fix the value")
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_project_resource_reproduces_settings(settings: Settings) -> None:
    assert project_resource(settings).overrides == {}
    assert project_resource(settings).settings() == settings
    changed = load_settings(settings.root, database="elsewhere.duckdb", tick_cron="0 * * * *")
    resource = project_resource(changed)
    assert resource.overrides == {"database": "elsewhere.duckdb", "tick_cron": "0 * * * *"}
    assert resource.settings() == changed


def test_schedule_runs_the_tick_due_until_the_snapshots_end(settings: Settings) -> None:
    defs = build_defs(settings)
    schedule = defs.resolve_schedule_def(TICK_SCHEDULE)
    assert schedule.cron_schedule == settings.tick_cron
    assert schedule.job_name == TICK_JOB
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED

    def evaluate(at: datetime) -> dg.SensorResult:
        with dg.build_schedule_context(
            scheduled_execution_time=at, repository_def=defs.get_repository_def()
        ) as context:
            return schedule.evaluate_tick(context)

    due = evaluate(datetime(2026, 6, 1, 3, tzinfo=UTC))
    assert [r.partition_key for r in due.run_requests or []] == ["2026-06-01-03:00"]
    after = evaluate(datetime(2026, 6, 10, 3, tzinfo=UTC))  # the book ends on 2026-06-09
    assert not after.run_requests
    assert f"after the last tick with a snapshot ({LAST})" in (after.skip_message or "")


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
    facts_preview = metadata(first, "account_facts")[f"preview (tick {FIRST})"]
    assert facts_preview.records and "participant_id" in facts_preview.records[0].data
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
    # One run for the range, then one for the data tests of the whole tables (not per tick).
    runs = [r.dagster_run.job_name for r in instance.get_run_records()]
    assert sorted(runs) == ["data_tests_job", "tick_range_job"]
    expected = {f"2026-05-31-{h:02d}:00" for h in range(0, 24, 3)}
    for asset in ("account_facts", *ENGINE):
        assert instance.get_materialized_partitions(dg.AssetKey(asset)) == expected, asset
    assert metadata(result, "transitions")["run_ticks"] == 8
    shown = metadata(result, "transitions")["preview (tick 2026-05-31-21:00)"]
    assert [c.name for c in shown.schema.columns][:2] == ["tick", "workflow"]
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
    assert checks["required_columns"].passed and checks["snapshots_complete"].passed
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"landing_snapshots"}
    present = tables(settings)
    for table in ("actions_outbox", "tick_log"):
        assert table not in present or query(settings, f"SELECT count(*) FROM {table}")[0][0] == 0


def test_a_duplicate_dated_after_the_tick_does_not_block_it(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    """unique_ids checks the snapshots the run's ticks can see, as `cswf tick` does."""
    accounts = settings.landing_path / "accounts"
    last = sorted(accounts.iterdir())[-1]  # 2026-06-09: after FIRST
    shutil.copy(last, accounts / f"zz_copy_of_{last.name}")

    result = run_partition(build_defs(settings), FIRST, instance, raise_on_error=False)
    assert result.success
    (check,) = [e.asset_check_evaluation_data for e in result.all_events
                if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
                and e.asset_check_evaluation_data.asset_check_key.name == "unique_ids"]
    assert check.passed
    assert check.metadata["scope"].value == (
        "snapshots dated on or before 2026-05-31 (the run's last tick)")


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
    assert first[0].partition_key == LAST
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
    assert recorded.get("previewed", 0) > 0 and "pending" not in recorded
    previews = list((settings.root / "data" / "outbox_preview").iterdir())
    assert any(p.suffix == ".eml" for p in previews)
    assert query(settings, "SELECT count(*) FROM action_insights")[0][0] > 0
    again = job.execute_in_process(instance=instance, run_config=config)
    assert str(metadata(again, "deliveries")["summary"]).startswith("nothing due")


# -- table metadata --------------------------------------------------------------------------


def test_tables_report_duckdb_types_row_counts_and_previews(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    result = run_tick_range(settings, datetime(2026, 5, 31), datetime(2026, 5, 31, 3), instance)
    delivered = build_defs(settings).resolve_job_def("delivery_job").execute_in_process(
        instance=instance, run_config={"ops": {name: {"config": {"now": "2026-06-01T10:00"}}
                                               for name in ("deliveries", "action_insights")}})
    events = [*result.get_asset_materialization_events(),
              *delivered.get_asset_materialization_events()]
    assert {e.asset_key.to_user_string() for e in events} == set(ASSET_GROUPS)
    for event in events:  # every table asset, every tick of it
        assert "dagster/row_count" in event.materialization.metadata, event.asset_key
    for asset in ASSET_GROUPS:
        found = metadata(delivered if asset in ("deliveries", "action_insights") else result,
                         asset)
        schema = found["dagster/column_schema"]
        types = {c.name: c.type for c in schema.columns}
        assert types, asset
        assert not {"String", "Float64", "Int32", "Int64", "Boolean"} & set(types.values())
        assert not any(t.startswith(("Datetime", "List")) for t in types.values()), types
        previews = [v for k, v in found.items() if k.startswith("preview") and "folder" not in k]
        assert all(isinstance(v, dg.TableMetadataValue) for v in previews), asset
    facts = metadata(result, "account_facts")["dagster/column_schema"]
    columns = {c.name: c for c in facts.columns}
    assert (columns["as_of"].type, columns["participant_id"].type) == ("TIMESTAMP", "VARCHAR")
    assert (columns["arr"].type, columns["seats_active"].type) == ("DOUBLE", "INTEGER")
    assert columns["days_to_renewal"].description.startswith("renewal_date - D")
    outbox = metadata(result, "actions_outbox")["dagster/column_schema"]
    assert {c.name: c.type for c in outbox.columns}["due_at"] == "TIMESTAMP"
    assert metadata(result, "actions_outbox")["dagster/table_name"] == "actions_outbox"
    shown = metadata(result, "actions_outbox")["preview (tick 2026-05-31-03:00)"]
    assert "body" not in {c.name for c in shown.schema.columns}
    summary = metadata(result, "workflow_summary")  # numbers the Plots tab draws per run
    entered = query(settings, "SELECT sum(deployed) FROM workflow_summary")[0][0]
    assert summary["entered"] == int(entered) > 0
    assert {"active", "completed", "exited"} <= set(summary)
    assert {"actions", "failed_deliveries"} <= set(metadata(result, "workflow_daily"))
    assert {"overdue", "on_time_or_ahead"} <= set(metadata(result, "milestone_history"))


def test_column_descriptions_come_from_a_models_yaml_when_there_is_one(tmp_path: Path) -> None:
    from cswf.defs.metadata import column_docs, column_schema, model_description

    sql = tmp_path / "sql"
    (sql / "facts").mkdir(parents=True)
    (sql / "facts" / "account_facts.sql").write_text("-- Facts per tick.\nSELECT 1 AS arr\n")
    assert column_docs(sql, "account_facts") == {}  # no YAML yet: nothing, no error
    assert model_description(sql, "account_facts") == "Facts per tick."
    (sql / "facts" / "broken.yml").write_text("models: [unclosed\n")
    assert column_docs(sql, "account_facts") == {}  # an unreadable YAML is skipped
    (sql / "facts" / "account_facts.yml").write_text(yaml.safe_dump({
        "version": 2,
        "models": [{"name": "account_facts", "description": "One row per tick and account.",
                    "columns": [{"name": "arr", "description": "ARR in the YAML"},
                                {"name": "tier"}]}],
    }))
    assert column_docs(sql, "account_facts") == {"arr": "ARR in the YAML"}
    assert model_description(sql, "account_facts") == "One row per tick and account."
    con = duckdb.connect()
    con.execute("CREATE TABLE account_facts (arr DOUBLE, health_score DOUBLE)")
    described = {c.name: c.description for c in column_schema(con, "account_facts", sql).columns}
    assert described["arr"] == "ARR in the YAML"  # the YAML wins over the docs
    assert described["health_score"] == "From the snapshot (may be NULL)"  # the docs fill in


# -- partitions ------------------------------------------------------------------------------


def test_partitions_end_with_the_last_tick_of_the_latest_snapshot(settings: Settings) -> None:
    def last_partition() -> str | None:
        job = build_defs(settings).resolve_job_def(TICK_JOB)
        return job.partitions_def.get_last_partition_key()

    accounts = settings.landing_path / "accounts"
    assert latest_snapshot_day(settings.landing_path) == date(2026, 6, 9)
    assert last_partition() == LAST
    with pytest.raises(ValueError, match="comes after the last tick with a landed account"):
        run_tick_range(settings, datetime(2026, 6, 10), datetime(2026, 6, 10))

    newest = sorted(accounts.iterdir())[-1]
    shutil.copy(newest, accounts / "accounts_2026-06-12.parquet")
    shutil.copy(newest, accounts / "accounts_backfill.parquet")  # no date in its name: ignored
    (accounts / ".accounts_2026-07-01.parquet").write_bytes(b"")  # hidden: still being written
    assert last_partition() == "2026-06-12-21:00"

    shutil.rmtree(accounts)  # no snapshot yet: the partitions follow the clock
    now = datetime.now(UTC).replace(tzinfo=None)
    assert last_partition() == settings.calendar.latest(now).strftime("%Y-%m-%d-%H:%M")


# -- checks ----------------------------------------------------------------------------------


def evaluations(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    return {
        e.asset_check_evaluation_data.asset_check_key.name: e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def deliver(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    config = {"ops": {name: {"config": {"now": "2026-06-02T10:00:00"}}
                      for name in ("deliveries", "action_insights")}}
    return defs.resolve_job_def("delivery_job").execute_in_process(
        instance=instance, run_config=config, raise_on_error=False)


def test_every_check_passes_on_good_data_for_the_ticks_of_the_run(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    result = run_tick_range(settings, datetime(2026, 5, 31), datetime(2026, 6, 1, 21), instance)
    checks = evaluations(result)
    [tests] = instance.get_run_records(dg.RunsFilter(job_name="data_tests_job"))
    checks |= {
        e.dagster_event.asset_check_evaluation_data.asset_check_key.name:
            e.dagster_event.asset_check_evaluation_data
        for e in instance.all_logs(tests.dagster_run.run_id,
                                   of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    }
    assert "not_null_raw_accounts_account_id" not in evaluations(result)  # once, after the range
    assert set(CHECKS) <= set(checks)
    declared = {name for name in checks if name not in CHECKS}  # the models' data tests
    assert {"not_null_account_facts_participant_id", "not_null_raw_accounts_account_id",
            "unique_workflow_summary_workflow"} <= declared
    assert all(check.passed for check in checks.values()), checks
    for name in ("one_row_per_participant_and_tick", "unique_action_ids",
                 "one_active_enrollment"):
        assert checks[name].metadata["ticks_checked"].value == 16, name
        assert checks[name].metadata["first_tick"].value == FIRST
    delivered = deliver(build_defs(settings), instance)
    assert delivered.success
    whole = evaluations(delivered)  # the delivery run has no ticks: the whole outbox
    assert set(whole) == {"unique_action_ids", "one_active_enrollment"}
    assert all(c.passed and c.metadata["scope"].value == "the whole table"
               for c in whole.values())


def test_duplicate_facts_fail_their_check_and_stop_the_engine(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    sql = settings.root / "sql"
    shutil.copytree(PACKAGE_SQL, sql)
    model = sql / "facts" / "account_facts.sql"
    text = model.read_text().strip().rstrip(";")
    model.write_text(f"SELECT * FROM ({text})\nUNION ALL\n(SELECT * FROM ({text}) LIMIT 1)\n")
    bad = load_settings(settings.root, sql_dir=str(sql))

    result = run_partition(build_defs(bad), FIRST, instance, raise_on_error=False)
    assert not result.success
    check = evaluations(result)["one_row_per_participant_and_tick"]
    assert not check.passed and check.metadata["offending"].value == 1
    assert "tick 2026-05-31 00:00:" in check.metadata["examples"].value
    assert materialized(result) == {"landing_snapshots", "account_facts"}  # no engine
    assert "tick_log" not in tables(settings) or \
        query(settings, "SELECT count(*) FROM tick_log")[0][0] == 0


def test_outbox_checks_block_delivery_on_hand_made_bad_data(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    run_tick_range(settings, datetime(2026, 5, 31), datetime(2026, 6, 1, 21), instance)
    defs = build_defs(settings)
    con = duckdb.connect(str(settings.database_path))
    (action_id,) = con.execute("SELECT min(action_id) FROM actions_outbox").fetchone()
    con.execute("INSERT INTO actions_outbox SELECT * FROM actions_outbox WHERE action_id = ?",
                [action_id])
    con.close()

    blocked = deliver(defs, instance)
    assert not blocked.success
    check = evaluations(blocked)["unique_action_ids"]
    assert not check.passed and f"{action_id} x2" in check.metadata["examples"].value
    assert materialized(blocked) == set()  # nothing was delivered
    assert "deliveries" not in tables(settings) or \
        query(settings, "SELECT count(*) FROM deliveries")[0][0] == 0

    con = duckdb.connect(str(settings.database_path))
    con.execute("DELETE FROM actions_outbox WHERE action_id = ?", [action_id])
    con.execute(  # a second active enrollment of a pair that has one
        "INSERT INTO enrollment_history SELECT * REPLACE (enrollment_id || '-copy' AS "
        "enrollment_id) FROM enrollment_history WHERE status = 'active' AND valid_to IS NULL "
        "ORDER BY enrollment_id LIMIT 1"
    )
    (workflow, participant) = con.execute(
        "SELECT workflow, participant_id FROM enrollment_history "
        "WHERE enrollment_id LIKE '%-copy'").fetchone()
    con.close()
    blocked = deliver(defs, instance)
    assert not blocked.success
    check = evaluations(blocked)["one_active_enrollment"]
    assert not check.passed
    assert f"now: {workflow} / {participant} x2" in check.metadata["examples"].value
    assert evaluations(blocked)["unique_action_ids"].passed
    assert materialized(blocked) == set()


def test_report_checks_fail_on_impossible_counts_and_missing_workflows(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    run_tick_range(settings, datetime(2026, 5, 31), datetime(2026, 5, 31, 21), instance)
    con = duckdb.connect(str(settings.database_path))
    first, second = [w for (w,) in con.execute(
        "SELECT workflow FROM workflow_summary ORDER BY workflow LIMIT 2").fetchall()]
    con.execute("UPDATE workflow_summary SET active = -1 WHERE workflow = ?", [first])
    con.execute("DELETE FROM workflow_summary WHERE workflow = ?", [second])
    con.close()
    checks_only = dg.define_asset_job(
        "report_checks", selection=dg.AssetSelection.checks_for_assets("workflow_summary"))
    defs = dg.Definitions.merge(build_defs(settings), dg.Definitions(jobs=[checks_only]))
    result = defs.resolve_job_def("report_checks").execute_in_process(instance=instance)
    assert result.success  # not blocking: they report, nothing downstream waits on them
    checks = evaluations(result)
    assert not checks["summary_counts_add_up"].passed
    assert checks["summary_counts_add_up"].metadata["examples"].value.startswith(
        f"- {first}: deployed")
    assert not checks["every_workflow_summarized"].passed
    assert checks["every_workflow_summarized"].metadata["examples"].value == f"- {second}"


def test_declared_data_tests_are_checks_that_fail_on_bad_rows(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    run_tick_range(settings, datetime(2026, 5, 31), datetime(2026, 5, 31, 21), instance)
    con = duckdb.connect(str(settings.database_path))
    con.execute("UPDATE workflow_summary SET workflow = NULL WHERE workflow = "
                "(SELECT min(workflow) FROM workflow_summary)")
    con.close()
    checks_only = dg.define_asset_job(
        "summary_checks", selection=dg.AssetSelection.checks_for_assets("workflow_summary"))
    defs = dg.Definitions.merge(build_defs(settings), dg.Definitions(jobs=[checks_only]))
    result = defs.resolve_job_def("summary_checks").execute_in_process(instance=instance)
    checks = evaluations(result)
    failed = checks["not_null_workflow_summary_workflow"]
    assert not failed.passed and failed.metadata["failing"].value == 1
    assert failed.severity == dg.AssetCheckSeverity.ERROR
    assert checks["unique_workflow_summary_workflow"].passed  # NULLs are not duplicates


# -- the CLI and the dg project --------------------------------------------------------------


def test_a_cli_tick_is_a_materialized_partition_in_the_instance(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster_home" / "dagster.yaml")
    ran = CliRunner().invoke(app, ["tick", "--as-of", "2026-05-31T03:00", "--root",
                                   str(settings.root)], terminal_width=200)
    assert ran.exit_code == 0, ran.output
    assert "1 ticks" in ran.output and "1 written" in ran.output
    assert "recorded in" in ran.output
    assert " - DEBUG - " not in ran.output and "STEP_" not in ran.output  # in the event log only
    with dg.DagsterInstance.get() as home:
        assert home.get_materialized_partitions(dg.AssetKey("enrollments")) == {SECOND}
        assert home.get_materialized_partitions(dg.AssetKey("account_facts")) == {SECOND}
        (record,) = home.get_run_records()
        assert record.dagster_run.job_name == TICK_JOB

    accounts = settings.landing_path / "accounts"  # a blocking check fails: one clear line
    first = sorted(accounts.iterdir())[0]
    shutil.copy(first, accounts / f"zz_copy_of_{first.name}")
    blocked = CliRunner().invoke(app, ["tick", "--as-of", "2026-05-31T06:00", "--root",
                                       str(settings.root)], terminal_width=200)
    assert blocked.exit_code == 1
    assert "check unique_ids on landing_snapshots failed:" in blocked.stderr
    assert "Traceback" not in blocked.output


def test_the_dg_project_loads_through_its_entry_point(settings: Settings) -> None:
    """`dg list defs` from the repository root: the scaffold's definitions.py, the defs folder,
    cswf's build_defs (for the project that CSWF_ROOT names)."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["CSWF_ROOT"] = str(settings.root)
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "list", "defs", "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    found = json.loads(listed.stdout)
    assert {a["asset_key"]: a["group_name"] for a in found["assets"]} == ASSET_GROUPS
    assert set(CHECKS) <= {c["name"] for c in found["asset_checks"]}
    assert {j["name"] for j in found["jobs"]} == {TICK_JOB, "tick_range_job", "data_tests_job",
                                                  "delivery_job", "compact_job"}
