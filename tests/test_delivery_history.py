"""What delivered stays delivered: compensating CRM rows for superseded and exited work, CRM
Parquet files that survive a SIGKILL, and dry runs that consume nothing (issue #10)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
from test_delivery_servers import (
    NOW,
    TICK,
    add_actions,
    field_update_row,
    make_config,
    statuses,
    task_row,
    warehouse,
)

from cswf.delivery import deliver
from cswf.store.tables import ensure_engine_tables
from cswf.store.warehouse import rewind

SRC = Path(__file__).resolve().parents[1] / "src"


def crm(con: duckdb.DuckDBPyConnection, table: str, *columns: str) -> list[tuple]:
    return con.execute(f"SELECT {', '.join(columns)} FROM {table} "
                       "ORDER BY action_id, operation").fetchall()


def test_a_superseded_task_is_cancelled_and_a_superseded_field_update_restored_or_flagged(
        tmp_path: Path) -> None:
    config = make_config(tmp_path)
    con = warehouse()
    earlier = {**field_update_row(0, tick=TICK - timedelta(days=1)), "action_id": "early/acc-1",
               "payload": '{"field": "lifecycle_stage", "value": "trial"}'}
    add_actions(con, [earlier, task_row(0), field_update_row(0),
                      field_update_row(1, participant="acc-2")])
    assert deliver(con, {}, config, NOW).outcomes == {"sent": 4}
    rewind(con, TICK)  # a re-run of TICK that emits none of them (with --rewrite-delivered)
    assert con.execute("SELECT action_id, fate, reason, delivery_status FROM superseded_actions "
                       "ORDER BY action_id").fetchall() == [
        (f"onboarding/{p}/1/{s}", "withdrawn", "rewound at tick 2026-06-02 06:00 by re-run",
         "sent") for p, s in (("acc-1", "s1.a0"), ("acc-1", "s2.a0"), ("acc-2", "s2.a1"))]
    assert len(statuses(con)) == 4  # every delivery row kept
    report = deliver(con, {}, config, NOW + timedelta(hours=1))
    assert report.outcomes == {"compensated": 3}
    assert crm(con, "crm_tasks", "action_id", "operation", "reason") == [
        ("onboarding/acc-1/1/s1.a0", "cancel", "rewound at tick 2026-06-02 06:00 by re-run"),
        ("onboarding/acc-1/1/s1.a0", "create", None)]
    assert crm(con, "crm_field_updates", "object_id", "operation", "value", "reason") == [
        ("acc-1", "set", "trial", None),  # early/acc-1
        ("acc-1", "restore", "trial",
         "rewound at tick 2026-06-02 06:00 by re-run: restored to the value set before"),
        ("acc-1", "set", "onboarding", None),
        ("acc-2", "review", None, "rewound at tick 2026-06-02 06:00 by re-run: the value "
                                  "before onboarding is unknown, check it"),
        ("acc-2", "set", "onboarding", None)]
    parquet = pl.read_parquet(tmp_path / "exports" / "crm_tasks.parquet")
    assert parquet["operation"].to_list() == ["create", "cancel"]  # in export order
    # Compensations are written once.
    assert deliver(con, {}, config, NOW + timedelta(hours=2)).outcomes == {}


def test_an_enrollment_that_exits_cancels_its_open_exported_tasks(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    con = warehouse()
    add_actions(con, [task_row(0), task_row(1), task_row(0, participant="acc-2")])
    deliver(con, {}, config, NOW)
    con.execute("INSERT INTO action_events VALUES ('onboarding/acc-1/1/s1.a1', 'completed', "
                "$t, NULL, 'file', $t)", {"t": NOW}).fetchall()
    con.execute("INSERT INTO transitions (tick, workflow, participant_id, enrollment_id, "
                "transition, reason) VALUES ($t, 'onboarding', 'acc-1', 'onboarding/acc-1/1', "
                "'exited', 'renewed early'), ($t, 'onboarding', 'acc-2', 'onboarding/acc-2/1', "
                "'completed', 'reached the end of the flow')",
                {"t": TICK + timedelta(hours=9)}).fetchall()
    assert deliver(con, {}, config, NOW + timedelta(hours=2)).outcomes == {"compensated": 1}
    assert crm(con, "crm_tasks", "action_id", "operation", "reason") == [
        ("onboarding/acc-1/1/s1.a0", "cancel",
         "enrollment exited at 2026-06-02 15:00: renewed early"),
        ("onboarding/acc-1/1/s1.a0", "create", None),
        ("onboarding/acc-1/1/s1.a1", "create", None),  # completed: nothing to cancel
        ("onboarding/acc-2/1/s1.a0", "create", None)]  # completed enrollments keep theirs


_KILLED = """
import os, signal, sys
from datetime import datetime
import duckdb
import cswf.delivery.exports as exports
from cswf.delivery import DeliveryConfig, deliver

exports.after_commit = lambda: os.kill(os.getpid(), signal.SIGKILL)
config = DeliveryConfig.from_mapping(
    {"dry_run": False, "export_dir": sys.argv[2], "quiet_hours": None, "cap_per_day": None})
with duckdb.connect(sys.argv[1]) as con:
    deliver(con, {}, config, datetime.fromisoformat(sys.argv[3]))
"""


def test_a_sigkill_between_the_table_commit_and_the_parquet_write_is_repaired_next_run(
        tmp_path: Path) -> None:
    database, exports = tmp_path / "cswf.duckdb", tmp_path / "exports"
    config = make_config(tmp_path)
    with duckdb.connect(str(database)) as con:
        ensure_engine_tables(con)
        add_actions(con, [task_row(0)])
        deliver(con, {}, config, NOW)
        add_actions(con, [task_row(1), field_update_row(0)])
    assert pl.read_parquet(exports / "crm_tasks.parquet").height == 1
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(_KILLED))
    moment = NOW + timedelta(hours=1)
    done = subprocess.run([sys.executable, str(script), str(database), str(exports),
                           moment.isoformat()], env={**os.environ, "PYTHONPATH": str(SRC)},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -9, done.stderr
    with duckdb.connect(str(database)) as con:
        assert con.execute("SELECT count(*) FROM crm_tasks").fetchall() == [(2,)]  # committed
        assert pl.read_parquet(exports / "crm_tasks.parquet").height == 1  # the file was not
        assert not (exports / "crm_field_updates.parquet").exists()
        report = deliver(con, {}, config, moment + timedelta(hours=1))
        assert report.outcomes == {} and len(report.export_files) == 2
        for table in ("crm_tasks", "crm_field_updates"):
            stored = con.sql(f"FROM {table} ORDER BY action_id, exported_at, operation").pl()
            assert pl.read_parquet(exports / f"{table}.parquet").equals(stored)
        assert deliver(con, {}, config, moment + timedelta(hours=2)).export_files == []


def test_a_dry_run_previews_and_a_real_run_sends_what_is_due_and_expires_what_is_too_old(
        tmp_path: Path) -> None:
    con = warehouse()
    old = TICK - timedelta(days=3)
    add_actions(con, [task_row(0), task_row(1, participant="acc-2", tick=old)])
    dry = make_config(tmp_path, dry_run=True)
    assert deliver(con, {}, dry, NOW).outcomes == {"previewed": 2}
    assert set(statuses(con).values()) == {"previewed"}
    assert deliver(con, {}, dry, NOW + timedelta(hours=1)).outcomes == {}  # nothing due
    report = deliver(con, {}, make_config(tmp_path), NOW + timedelta(hours=2))
    assert report.outcomes == {"sent": 1, "expired": 1}
    assert statuses(con) == {"onboarding/acc-1/1/s1.a0": "sent",
                             "onboarding/acc-2/1/s1.a1": "expired"}
    assert con.execute("SELECT last_error FROM deliveries WHERE status = 'expired'"
                       ).fetchall() == [("not sent: emitted at 2026-05-30 06:00, more than 48 "
                                         "hours (delivery.max_age_hours) before this run",)]
    assert crm(con, "crm_tasks", "action_id") == [("onboarding/acc-1/1/s1.a0",)]


def test_dry_run_sends_of_an_older_warehouse_become_previews(tmp_path: Path) -> None:
    con = warehouse()
    # A warehouse from before previews: its CRM tasks were keyed by action_id alone.
    con.execute("DROP TABLE crm_tasks").fetchall()
    con.execute(
        "CREATE TABLE crm_tasks (action_id VARCHAR PRIMARY KEY, workflow VARCHAR, "
        "step_name VARCHAR, object_type VARCHAR, object_id VARCHAR, owner VARCHAR, "
        "title VARCHAR, description VARCHAR, category VARCHAR, priority VARCHAR, "
        "subtasks VARCHAR[], due_at TIMESTAMP, due_date DATE, created_at TIMESTAMP, "
        "exported_at TIMESTAMP)").fetchall()
    add_actions(con, [task_row(0)])
    con.execute("INSERT INTO deliveries (action_id, action_type, channel, status, attempts, "
                "sent_at) VALUES ('onboarding/acc-1/1/s1.a0', 'task', 'dry_run', 'sent', 1, "
                "$t)", {"t": NOW}).fetchall()
    report = deliver(con, {}, make_config(tmp_path), NOW + timedelta(hours=1))
    assert report.outcomes == {"sent": 1}
    assert crm(con, "crm_tasks", "action_id") == [("onboarding/acc-1/1/s1.a0",)]
