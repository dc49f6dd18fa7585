"""Delivery's brakes against a real SMTP server: rate limits defer and later runs send the rest
(nothing lost, nothing twice); a spike far above the norm is held until someone approves it."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from test_delivery_servers import (
    NOW,
    SmtpRecorder,
    add_actions,
    deliveries,
    email_row,
    make_config,
    statuses,
    task_row,
    warehouse,
)
from typer.testing import CliRunner

from cswf.cli import app
from cswf.defs import build_defs
from cswf.delivery import DeliveryConfig, DeliveryReport, approve_spike, default_senders, deliver
from cswf.delivery.config import RateLimit
from cswf.settings import load_settings
from cswf.store.tables import ensure_engine_tables

MINUTE = timedelta(minutes=1)
HELD = ("delivery held by the breaker: smtp has 80 due against a norm of 5 per run (trips above "
        "10× the norm and 50); nothing was sent — check the outbox, then release it: "
        "cswf deliver --approve-spike")


def run(con: duckdb.DuckDBPyConnection, config: DeliveryConfig, now: datetime) -> DeliveryReport:
    return deliver(con, default_senders(config), config, now)


def emails(batch: str, n: int, tick: datetime = NOW - timedelta(hours=8)) -> list[dict[str, Any]]:
    return [email_row(i, f"{batch}{i}@customer.test", participant=f"{batch}-{i}", tick=tick)
            for i in range(n)]


def sent_ids(recorder: SmtpRecorder) -> list[str]:
    return [m.message["X-Cswf-Action-Id"] for m in recorder.messages]


def test_rate_limits_defer_the_rest_and_later_runs_send_it_once(
    tmp_path: Path, smtp: tuple[SmtpRecorder, int]
) -> None:
    recorder, port = smtp
    config = make_config(tmp_path, smtp_port=port,
                         rate_limits={"smtp": {"per_minute": 3, "per_run": 5}})
    con = warehouse()
    add_actions(con, emails("a", 8))
    report = run(con, config, NOW)
    assert report.summary() == "3 sent, 5 held by the smtp rate limit"
    held = [row for row in deliveries(con).values() if row["status"] == "deferred"]
    assert len(held) == 5
    assert {(r["last_error"], r["next_attempt_at"], r["attempts"]) for r in held} == {
        ("rate limit of 3 per minute and 5 per run on smtp", NOW + MINUTE, 0)}
    assert run(con, config, NOW).summary() == "nothing due"  # the same instant: no room
    assert run(con, config, NOW + MINUTE / 2).summary() == "nothing due"
    assert run(con, config, NOW + MINUTE).summary() == "3 sent, 2 held by the smtp rate limit"
    assert run(con, config, NOW + 2 * MINUTE).summary() == "2 sent"
    assert sorted(sent_ids(recorder)) == sorted(r["action_id"] for r in emails("a", 8))
    assert set(statuses(con).values()) == {"sent"}
    # Oldest first: the first run sent the first three of the batch.
    assert sent_ids(recorder)[:3] == [f"onboarding/a-{i}/1/s0.a{i}" for i in range(3)]


def test_per_run_limit_alone_and_a_channel_without_sender(tmp_path: Path) -> None:
    config = make_config(tmp_path, rate_limits={"table": {"per_run": 2}})
    con = warehouse()
    add_actions(con, [task_row(i) for i in range(5)])
    assert deliver(con, {}, config, NOW).summary() == "2 sent, 3 held by the table rate limit"
    assert deliver(con, {}, config, NOW + MINUTE).summary() == (
        "2 sent, 1 held by the table rate limit")
    assert deliver(con, {}, config, NOW + 2 * MINUTE).summary() == "1 sent"
    assert con.sql("SELECT count(*), count(DISTINCT action_id) FROM crm_tasks").fetchall() == [
        (5, 5)]


def test_a_spike_ten_times_the_norm_is_held_until_approved(
    tmp_path: Path, smtp: tuple[SmtpRecorder, int]
) -> None:
    recorder, port = smtp
    config = make_config(tmp_path, smtp_port=port)  # the default brakes: 60/min, 500/run
    con = warehouse()
    for hour in (3, 2, 1):  # the norm: 5 emails per run
        add_actions(con, emails(f"h{hour}x", 5))
        assert run(con, config, NOW - timedelta(hours=hour)).summary() == "5 sent"
    add_actions(con, emails("spike", 80))
    before = len(recorder.messages)
    report = run(con, config, NOW)
    assert report.summary() == HELD and report.breaker == HELD
    assert len(recorder.messages) == before  # 0 emails out
    assert set(statuses(con)[r["action_id"]] for r in emails("spike", 80)) == {"pending"}
    assert run(con, config, NOW + MINUTE).breaker == HELD  # still held, one row
    breaks = con.sql("SELECT run_at, channel, due, norm, status, held_runs, approved_at "
                     "FROM delivery_breaks").fetchall()
    assert breaks == [(NOW, "smtp", 80, 5.0, "tripped", 2, None)]

    add_actions(con, emails("late", 5))  # a few more meanwhile: still the approved spike
    assert approve_spike(con, NOW + 2 * MINUTE, by="test") == 1
    approved = run(con, config, NOW + 2 * MINUTE)
    assert approved.summary() == "60 sent, 25 held by the smtp rate limit"
    drained = run(con, config, NOW + 3 * MINUTE)
    assert drained.summary() == "25 sent"
    assert con.sql("SELECT status, approved_by, closed_at FROM delivery_breaks").fetchall() == [
        ("approved", "test", NOW + 3 * MINUTE)]
    ids = sent_ids(recorder)
    assert len(ids) == len(set(ids)) == 100  # nothing lost, nothing twice


def test_a_bigger_spike_on_top_of_an_approved_one_trips_again(tmp_path: Path) -> None:
    config = make_config(tmp_path, rate_limits={"table": {"per_run": 10}})
    con = warehouse()
    add_actions(con, [task_row(i, participant="p0") for i in range(60)])
    assert deliver(con, {}, config, NOW).breaker == (
        "delivery held by the breaker: table has 60 due against a norm of 0 per run (trips "
        "above 10× the norm and 50); nothing was sent — check the outbox, then release it: "
        "cswf deliver --approve-spike")
    approve_spike(con, NOW)
    assert deliver(con, {}, config, NOW).summary() == "10 sent, 50 held by the table rate limit"
    add_actions(con, [task_row(i, participant="p1") for i in range(120)])
    # 170 due: more than the 60 approved + max(floor 50, 10 × the norm of 10) = 160.
    held = deliver(con, {}, config, NOW + MINUTE)
    assert held.breaker is not None
    assert "table has 170 due against a norm of 10 per run" in held.breaker
    assert con.sql("SELECT count(*) FROM crm_tasks").fetchall() == [(10,)]


def test_the_brakes_hold_a_dry_run_only_when_asked_and_can_be_switched_off(
    tmp_path: Path
) -> None:
    con = warehouse()
    add_actions(con, [task_row(i) for i in range(60)])
    preview = make_config(tmp_path, dry_run=True, rate_limits={"table": {"per_run": 10}})
    rehearsal = make_config(tmp_path, dry_run=True, brakes_in_dry_run=True,
                            rate_limits={"table": {"per_run": 10}})
    assert rehearsal.rate_limits["table"] == RateLimit(per_minute=None, per_run=10)
    assert deliver(con, {}, rehearsal, NOW).breaker is not None
    off = make_config(tmp_path, breaker={"enabled": False}, rate_limits={"table": None})
    assert deliver(con, {}, off, NOW).summary() == "60 sent"
    con = warehouse()
    add_actions(con, [task_row(i) for i in range(60)])
    assert deliver(con, {}, preview, NOW).summary().startswith("60 previewed (dry run")


def test_rate_limit_settings_merge_over_the_defaults_and_name_known_channels() -> None:
    config = DeliveryConfig.from_mapping({"rate_limits": {"smtp": {"per_minute": 30}}})
    assert config.rate_limits == {"smtp": RateLimit(per_minute=30, per_run=500),
                                  "webhook": RateLimit(per_minute=120, per_run=1000),
                                  "table": RateLimit(per_minute=None, per_run=2000)}
    assert (config.breaker.factor, config.breaker.floor) == (10.0, 50)
    with pytest.raises(ValueError, match="no channel 'email' \\(action type 'email' goes by "
                                         "channel 'smtp'\\)"):
        DeliveryConfig.from_mapping({"rate_limits": {"email": {"per_minute": 1}}})
    with pytest.raises(ValueError, match="no channel 'fax' \\(channels: smtp, webhook, table"):
        DeliveryConfig.from_mapping({"rate_limits": {"fax": {"per_minute": 1}}})


def _project(root: Path) -> Path:
    """A project that sends for real (tasks: no server needed) with 60 tasks due."""
    (root / "cswf.yaml").write_text(
        "database: cswf.duckdb\ntick_start: '2026-05-31 00:00'\n"
        "delivery: {dry_run: false, export_dir: exports, quiet_hours: null,\n"
        "           rate_limits: {table: {per_run: 40}}}\n")
    with duckdb.connect(str(root / "cswf.duckdb")) as con:
        ensure_engine_tables(con)
        add_actions(con, [task_row(i) for i in range(60)])
    return root


def test_cswf_deliver_reports_the_breaker_in_one_line_and_approve_spike_releases_it(
    tmp_path: Path
) -> None:
    root = str(_project(tmp_path))
    runner = CliRunner()
    held = runner.invoke(app, ["deliver", "--now", "2026-06-02T14:00", "--root", root])
    assert held.exit_code == 1
    assert held.stderr == (
        "error: delivery held by the breaker: table has 60 due against a norm of 0 per run "
        "(trips above 10× the norm and 50); nothing was sent — check the outbox, then release "
        "it: cswf deliver --approve-spike\n")
    released = runner.invoke(app, ["deliver", "--approve-spike", "--now", "2026-06-02T14:05",
                                   "--root", root], terminal_width=200)
    assert released.exit_code == 0, released.output
    assert released.stdout.splitlines()[:2] == [
        "approved 1 held delivery spike(s)",
        "delivery as of 2026-06-02 14:05: 40 sent, 20 held by the table rate limit"]
    assert released.stdout.splitlines()[2].startswith("BI copy before any tick: 6 tables in ")
    rest = runner.invoke(app, ["deliver", "--now", "2026-06-02T14:20", "--root", root],
                         terminal_width=200)
    assert rest.stdout.splitlines()[0] == "delivery as of 2026-06-02 14:20: 20 sent"
    again = runner.invoke(app, ["deliver", "--approve-spike", "--now", "2026-06-02T14:35",
                                "--root", root], terminal_width=200)
    assert again.stdout.splitlines()[0] == "no delivery spike was held: nothing to approve"


def test_the_dagster_delivery_asset_fails_with_the_breakers_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    root = _project(tmp_path)
    defs = build_defs(load_settings(root))
    config = {"ops": {name: {"config": {"now": "2026-06-02T14:00:00"}}
                      for name in ("deliveries", "action_insights")}}
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("delivery_job").execute_in_process(
            instance=instance, run_config=config, raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events
                  if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_key == "deliveries"
    assert failure.event_specific_data.error.message.strip().endswith(
        "nothing was sent — check the outbox, then release it: cswf deliver --approve-spike")
