"""Delivery against real servers on 127.0.0.1: what arrives, exactly once, crashes, dry run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from test_delivery_servers import (
    NOW,
    SmtpRecorder,
    WebhookReceiver,
    add_actions,
    deliveries,
    email_row,
    field_update_row,
    make_config,
    smtp_server,
    statuses,
    task_row,
    warehouse,
    webhook_row,
    webhook_server,
)

from cswf.delivery import (
    DeliveryConfig,
    DeliveryReport,
    Fault,
    OutboundAction,
    default_senders,
    deliver,
    resolve_unknown,
)
from cswf.delivery.email import message_id


class Crash(Exception):
    """Stands for the process dying at the hook's point."""


def crash_at(stage: str, action_id: str | None = None) -> Fault:
    def fault(at: str, action: OutboundAction) -> None:
        if at == stage and (action_id is None or action.action_id == action_id):
            raise Crash(f"crash {at} {action.action_id}")
    return fault


@pytest.fixture
def hooks() -> Iterator[tuple[WebhookReceiver, str]]:
    receiver = WebhookReceiver()
    with webhook_server(receiver) as url:
        yield receiver, url


Both = tuple[SmtpRecorder, WebhookReceiver, DeliveryConfig]


@pytest.fixture
def both(tmp_path: Path, smtp: tuple[SmtpRecorder, int], hooks: tuple[WebhookReceiver, str]
         ) -> Both:
    return smtp[0], hooks[0], make_config(tmp_path, smtp_port=smtp[1], webhook_url=hooks[1])


def run(con: duckdb.DuckDBPyConnection, config: DeliveryConfig, now: datetime = NOW,
        **kwargs: Any) -> DeliveryReport:
    return deliver(con, default_senders(config), config, now, **kwargs)


# -- email ------------------------------------------------------------------------------------


def test_smtp_server_receives_each_email_once_with_headers_and_body(both: Both) -> None:
    recorder, _, config = both
    con = warehouse()
    add_actions(con, [email_row(0, "Ann@Customer.test"),
                      email_row(1, "bob@customer.test", participant="acc-2",
                                body="<p>Hi <b>Bob</b> &amp; team</p><script>x()</script>",
                                html=True)])
    report = run(con, config)
    assert report.outcomes["sent"] == 2 and not report.errors
    assert len(recorder.messages) == 2
    first = recorder.messages[0].message
    action_id = "onboarding/acc-1/1/s0.a0"
    assert recorder.messages[0].rcpt_tos == ["Ann@Customer.test"]
    assert recorder.messages[0].mail_from == "cs@vendor.test"
    assert first["From"] == "CS Team <cs@vendor.test>"
    assert first["To"] == "Ann@Customer.test"
    assert first["Subject"] == "Welcome 0"
    assert first["Message-ID"] == message_id(action_id, "vendor.test")
    assert first["X-Cswf-Action-Id"] == action_id
    assert first["List-Unsubscribe"] == (
        "<mailto:unsubscribe@vendor.test?subject=unsubscribe%20onboarding%2Facc-1%2F1%2Fs0.a0>, "
        "<https://vendor.test/u?e=Ann%40Customer.test&a=onboarding%2Facc-1%2F1%2Fs0.a0>"
    )
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert first.get_content_type() == "text/plain"
    assert first.get_content() == "Hello,\nwelcome aboard.\n"
    second = recorder.messages[1].message
    assert second.get_content_type() == "multipart/alternative"
    text, html = (part.get_content() for part in second.iter_parts())
    assert text.strip() == "Hi Bob & team"
    assert "<b>Bob</b>" in html
    rows = deliveries(con)
    assert rows[action_id]["status"] == "sent" and rows[action_id]["channel"] == "smtp"
    assert rows[action_id]["provider_id"] == first["Message-ID"]
    assert rows[action_id]["sent_at"] == NOW and rows[action_id]["attempts"] == 1
    # Running again, later, sends nothing.
    again = run(con, config, NOW + timedelta(hours=1))
    assert sum(again.outcomes.values()) == 0 and len(recorder.messages) == 2


def test_non_ascii_subject_and_body_arrive_intact_and_7bit_clean(both: Both) -> None:
    recorder, _, config = both
    con = warehouse()
    add_actions(con, [email_row(0, "ann@customer.test", subject="Grüße, Zoë — día 1",
                                body="<p>Schöne Grüße 👋</p>", html=True)])
    run(con, config)
    (received,) = recorder.messages
    assert received.data.isascii()
    message = received.message
    assert message["Subject"] == "Grüße, Zoë — día 1"
    text, html = (part.get_content() for part in message.iter_parts())
    assert text == "Schöne Grüße 👋\n" and "<p>Schöne Grüße 👋</p>" in html


def test_webhook_secret_headers_are_sent_and_never_stored(tmp_path: Path, both: Both,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    _, receiver, config = both
    monkeypatch.setenv("CSWF_TEST_HOOK_TOKEN", "Bearer tok-123-secret")
    config = make_config(tmp_path, webhook_url=config.webhook.url,
                         webhook={"headers_env": {"Authorization": "CSWF_TEST_HOOK_TOKEN"}})
    receiver.plan, receiver.echo = [401], True
    con = warehouse()
    add_actions(con, [webhook_row(0)])
    run(con, config)
    assert receiver.requests[0][0]["Authorization"] == "Bearer tok-123-secret"
    stored = str(con.execute("SELECT * FROM deliveries").fetchall())
    stored += str(con.execute("SELECT * FROM action_events").fetchall())
    assert "tok-123" not in stored and "HTTP 401" in stored and "Authorization" in stored


def test_crlf_in_a_subject_fails_that_email_only(both: Both) -> None:
    recorder, _, config = both
    con = warehouse()
    add_actions(con, [email_row(0, "ann@customer.test", subject="Hi\r\nBcc: all@victim.test"),
                      email_row(1, "bob@customer.test", subject="Fine")])
    report = run(con, config)
    assert [m.rcpt_tos for m in recorder.messages] == [["bob@customer.test"]]
    row = deliveries(con)["onboarding/acc-1/1/s0.a0"]
    assert row["status"] == "failed" and row["next_attempt_at"] is None
    assert "subject contains a line break (CR/LF)" in row["last_error"]
    assert report.outcomes == {"sent": 1, "failed": 1}
    events = con.sql("SELECT event_type FROM action_events WHERE action_id = "
                     "'onboarding/acc-1/1/s0.a0'").pl()["event_type"].to_list()
    assert events == ["failed"]


def test_a_template_that_did_not_render_is_failed_and_never_sent(both: Both) -> None:
    recorder, _, config = both
    con = warehouse()
    broken = {**email_row(0, "ann@customer.test", subject=None), "subject": None,
              "status": "render_failed", "error": "UndefinedError: 'x' is undefined"}
    add_actions(con, [broken, email_row(1, "bob@customer.test")])
    run(con, config)
    row = deliveries(con)["onboarding/acc-1/1/s0.a0"]
    assert row["status"] == "failed" and "UndefinedError" in row["last_error"]
    assert len(recorder.messages) == 1


def test_smtp_550_is_a_bounce_that_suppresses_the_address(tmp_path: Path) -> None:
    recorder = SmtpRecorder(reject={"gone@customer.test"})
    con = warehouse()
    add_actions(con, [email_row(0, "Gone@Customer.test"), email_row(1, "ok@customer.test")])
    with smtp_server(recorder) as port:
        config = make_config(tmp_path, smtp_port=port)
        report = run(con, config)
        assert report.outcomes == {"failed": 1, "sent": 1}
        add_actions(con, [email_row(2, "gone@customer.test", step=1)])
        later = run(con, config, NOW + timedelta(days=1))
    assert later.outcomes == {"suppressed": 1}
    row = deliveries(con)["onboarding/acc-1/1/s0.a0"]
    assert row["status"] == "failed" and row["next_attempt_at"] is None
    assert "550" in row["last_error"]
    events = con.execute("SELECT event_type, detail FROM action_events WHERE action_id = "
                     "'onboarding/acc-1/1/s0.a0' ORDER BY event_type").fetchall()
    assert events[0][0] == "bounced" and events[0][1].startswith("550")
    assert con.execute("SELECT address, reason FROM suppressions").fetchall() == [
        ("gone@customer.test", "bounced")]
    assert [m.rcpt_tos for m in recorder.messages] == [["ok@customer.test"]]


def test_a_connection_lost_after_the_message_is_unknown_not_resent(tmp_path: Path) -> None:
    recorder = SmtpRecorder(drop_after_data=True)
    con = warehouse()
    add_actions(con, [email_row(0, "ann@customer.test")])
    with smtp_server(recorder) as port:
        config = make_config(tmp_path, smtp_port=port)
        report = run(con, config)
        assert report.outcomes == {"unknown": 1}
        run(con, config, NOW + timedelta(days=1))
    row = deliveries(con)["onboarding/acc-1/1/s0.a0"]
    assert row["status"] == "unknown" and "may have accepted" in row["last_error"]
    assert len(recorder.messages) == 1


# -- exactly once across crashes ------------------------------------------------------------


def test_crash_after_smtp_accepted_marks_unknown_and_never_resends(both: Both) -> None:
    recorder, _, config = both
    con = warehouse()
    add_actions(con, [email_row(0, "ann@customer.test"), email_row(1, "bob@customer.test")])
    with pytest.raises(Crash):
        run(con, config, fault=crash_at("after_send", "onboarding/acc-1/1/s0.a0"))
    assert statuses(con)["onboarding/acc-1/1/s0.a0"] == "sending"
    assert len(recorder.messages) == 1
    report = run(con, config, NOW + timedelta(minutes=5))
    assert report.recovered_unknown == ["onboarding/acc-1/1/s0.a0"]
    assert statuses(con) == {"onboarding/acc-1/1/s0.a0": "unknown",
                             "onboarding/acc-1/1/s0.a1": "sent"}
    assert "Message-ID" in deliveries(con)["onboarding/acc-1/1/s0.a0"]["last_error"]
    run(con, config, NOW + timedelta(days=2))
    assert [m.rcpt_tos for m in recorder.messages] == [["ann@customer.test"],
                                                       ["bob@customer.test"]]
    # A human checked the server log: it went out.
    resolve_unknown(con, "onboarding/acc-1/1/s0.a0", "sent", NOW + timedelta(days=2))
    assert statuses(con)["onboarding/acc-1/1/s0.a0"] == "sent"


def test_crash_before_the_smtp_send_is_also_unknown(both: Both) -> None:
    recorder, _, config = both
    con = warehouse()
    add_actions(con, [email_row(0, "ann@customer.test")])
    with pytest.raises(Crash):
        run(con, config, fault=crash_at("before_send"))
    run(con, config, NOW + timedelta(minutes=5))
    assert statuses(con) == {"onboarding/acc-1/1/s0.a0": "unknown"}
    assert recorder.messages == []
    resolve_unknown(con, "onboarding/acc-1/1/s0.a0", "pending", NOW + timedelta(minutes=6))
    run(con, config, NOW + timedelta(minutes=7))
    assert len(recorder.messages) == 1 and statuses(con)["onboarding/acc-1/1/s0.a0"] == "sent"


@pytest.mark.parametrize("stage", ["before_send", "after_send"])
def test_crash_mid_webhook_rerun_delivers_exactly_once(
        tmp_path: Path, both: Both, stage: str) -> None:
    _, receiver, config = both
    con = warehouse(tmp_path / "cswf.duckdb")
    add_actions(con, [webhook_row(0), webhook_row(1)])
    with pytest.raises(Crash):
        run(con, config, fault=crash_at(stage, "alerts/acc-1/1/s0.a0"))
    assert statuses(con)["alerts/acc-1/1/s0.a0"] == "sending"
    report = run(con, config, NOW + timedelta(minutes=5))
    assert report.recovered_retried == ["alerts/acc-1/1/s0.a0"]
    assert statuses(con) == {"alerts/acc-1/1/s0.a0": "sent", "alerts/acc-1/1/s0.a1": "sent"}
    assert receiver.effects == 2
    assert sorted(receiver.applied) == ["alerts/acc-1/1/s0.a0", "alerts/acc-1/1/s0.a1"]
    sent_twice = stage == "after_send"
    assert receiver.keys().count("alerts/acc-1/1/s0.a0") == (2 if sent_twice else 1)


# -- webhooks ---------------------------------------------------------------------------------


def test_webhook_posts_the_action_with_its_idempotency_key(both: Both) -> None:
    _, receiver, config = both
    con = warehouse()
    add_actions(con, [webhook_row(0)])
    run(con, config)
    (headers, body), = receiver.requests
    assert headers["Idempotency-Key"] == "alerts/acc-1/1/s0.a0"
    assert headers["Content-Type"] == "application/json"
    document = json.loads(body)
    assert document["action_id"] == "alerts/acc-1/1/s0.a0"
    assert document["payload"] == {"channel": "#cs-alerts"}
    assert document["tick"] == "2026-06-02T06:00:00Z"
    row = deliveries(con)["alerts/acc-1/1/s0.a0"]
    assert (row["status"], row["channel"], row["provider_id"]) == ("sent", "webhook", "HTTP 200")


def test_a_500_after_the_receiver_applied_is_retried_and_applied_once(
        tmp_path: Path, both: Both) -> None:
    _, receiver, config = both
    receiver.plan = ["fail_after", "fail_before", "ok"]
    con = warehouse(tmp_path / "cswf.duckdb")
    add_actions(con, [webhook_row(0)])
    report = run(con, config)
    assert report.outcomes == {"sent": 1}
    assert receiver.keys() == ["alerts/acc-1/1/s0.a0"] * 3  # the same key every time
    assert len({body for _, body in receiver.requests}) == 1  # and the same body
    assert receiver.effects == 1


def test_a_stalled_receiver_times_out_and_the_retry_is_deduplicated(
        tmp_path: Path, both: Both) -> None:
    _, receiver, config = both
    receiver.plan = ["stall", "ok"]
    con = warehouse(tmp_path / "cswf.duckdb")
    add_actions(con, [webhook_row(0)])
    assert run(con, config).outcomes == {"sent": 1}
    assert len(receiver.requests) == 2 and receiver.effects == 1


def test_webhook_retries_are_bounded_then_backed_off_across_runs(
        tmp_path: Path, both: Both) -> None:
    _, receiver, config = both
    receiver.plan = [503] * 3
    con = warehouse(tmp_path / "cswf.duckdb")
    add_actions(con, [webhook_row(0)])
    report = run(con, config)
    assert report.outcomes == {"retrying": 1} and len(receiver.requests) == 3
    row = deliveries(con)["alerts/acc-1/1/s0.a0"]
    assert row["status"] == "failed" and row["attempts"] == 1
    assert row["next_attempt_at"] == NOW + timedelta(seconds=60)
    assert "HTTP 503" in row["last_error"]
    assert sum(run(con, config, NOW + timedelta(seconds=30)).outcomes.values()) == 0
    assert run(con, config, NOW + timedelta(seconds=60)).outcomes == {"sent": 1}
    assert receiver.effects == 1 and deliveries(con)["alerts/acc-1/1/s0.a0"]["attempts"] == 2


def test_a_4xx_fails_at_once_without_retry(both: Both) -> None:
    _, receiver, config = both
    receiver.plan = [422]
    con = warehouse()
    add_actions(con, [webhook_row(0)])
    assert run(con, config).outcomes == {"failed": 1}
    assert len(receiver.requests) == 1
    row = deliveries(con)["alerts/acc-1/1/s0.a0"]
    assert row["next_attempt_at"] is None and row["provider_id"] == "HTTP 422"
    assert con.execute("SELECT event_type, detail FROM action_events").fetchall()[0][0] == "failed"
    assert run(con, config, NOW + timedelta(days=1)).outcomes == {}


def test_retries_exhaust_after_max_attempts(tmp_path: Path, both: Both) -> None:
    _, receiver, config = both
    receiver.plan = [500] * 9
    con = warehouse(tmp_path / "cswf.duckdb")
    add_actions(con, [webhook_row(0)])
    outcomes = [run(con, config, NOW + timedelta(hours=h)).outcomes for h in range(4)]
    assert outcomes == [{"retrying": 1}, {"retrying": 1}, {"failed": 1}, {}]
    row = deliveries(con)["alerts/acc-1/1/s0.a0"]
    assert row["attempts"] == 3 and row["next_attempt_at"] is None


def test_a_receiver_that_never_answers_costs_one_try_per_later_action(tmp_path: Path) -> None:
    receiver = WebhookReceiver(plan=["stall"] * 4, stall_seconds=0.4)
    con = warehouse()
    add_actions(con, [webhook_row(0), webhook_row(1)])
    with webhook_server(receiver) as url:
        config = make_config(tmp_path, webhook_url=url, webhook={"timeout_seconds": 0.15})
        report = run(con, config)
    assert report.outcomes == {"retrying": 2}
    assert receiver.keys() == ["alerts/acc-1/1/s0.a0"] * 3 + ["alerts/acc-1/1/s0.a1"]
    assert "no answer from the webhook" in deliveries(con)["alerts/acc-1/1/s0.a1"]["last_error"]
    assert receiver.effects == 2  # applied before stalling: the next run's retry dedups


def test_an_unreachable_smtp_server_stops_email_for_the_run(tmp_path: Path) -> None:
    config = make_config(tmp_path, smtp_port=9)  # nothing listens on 127.0.0.1:9
    con = warehouse()
    add_actions(con, [email_row(0, "ann@customer.test"), email_row(1, "bob@customer.test")])
    report = run(con, config)
    assert report.outcomes == {"retrying": 1} and report.waiting == 1
    assert statuses(con) == {"onboarding/acc-1/1/s0.a0": "failed",
                             "onboarding/acc-1/1/s0.a1": "pending"}
    assert "cannot use SMTP server 127.0.0.1:9" in report.errors[0]


# -- tasks and field updates --------------------------------------------------------------------


def test_tasks_and_field_updates_are_exported_once_as_tables_and_parquet(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    con = warehouse()
    add_actions(con, [task_row(0), task_row(1, participant="acc-2"), field_update_row(0)])
    report = deliver(con, {}, config, NOW)
    assert report.outcomes == {"sent": 3}
    tasks = con.sql("SELECT * FROM crm_tasks ORDER BY action_id").pl()
    assert tasks.height == 2
    first = tasks.row(0, named=True)
    assert first["owner"] == "csm@vendor.test" and first["title"] == "Kickoff call 0"
    assert first["subtasks"] == ["agenda", "invite champion"]
    assert first["priority"] == "high" and first["category"] == "Onboarding"
    assert str(first["due_date"]) == "2026-06-05" and first["object_type"] == "account"
    updates = con.execute("SELECT object_id, field, value FROM crm_field_updates").fetchall()
    assert updates == [("acc-1", "lifecycle_stage", "onboarding")]
    parquet = pl.read_parquet(tmp_path / "exports" / "crm_tasks.parquet")
    assert parquet["action_id"].to_list() == tasks["action_id"].to_list()
    assert {r["channel"] for r in deliveries(con).values()} == {"table"}
    # The same actions again (a re-run, a replayed tick) change nothing.
    con.execute("UPDATE deliveries SET status = 'pending'").fetchall()
    deliver(con, {}, config, NOW + timedelta(hours=1))
    assert con.execute("SELECT count(*) FROM crm_tasks").fetchall() == [(2,)]
    assert pl.read_parquet(tmp_path / "exports" / "crm_field_updates.parquet").height == 1


def test_a_rewound_tick_that_emits_the_same_actions_sends_nothing_twice(both: Both) -> None:
    recorder, _, config = both
    con = warehouse()
    add_actions(con, [email_row(0, "ann@customer.test"), email_row(1, "bob@customer.test",
                                                                   tick=NOW + timedelta(hours=1))])
    run(con, config)
    con.execute("DELETE FROM actions_outbox").fetchall()  # the tick is rewound ...
    run(con, config, NOW + timedelta(minutes=30))
    assert "onboarding/acc-1/1/s0.a0" in statuses(con)
    add_actions(con, [email_row(0, "ann@customer.test")])  # ... and replayed
    run(con, config, NOW + timedelta(hours=2))
    assert [m.rcpt_tos for m in recorder.messages] == [["ann@customer.test"]]


def test_an_action_type_without_a_channel_fails_clearly(tmp_path: Path) -> None:
    con = warehouse()
    add_actions(con, [{**webhook_row(0), "action_type": "carrier_pigeon"}])
    report = deliver(con, {}, make_config(tmp_path), NOW)
    assert report.outcomes == {"failed": 1}
    assert "carrier_pigeon" in deliveries(con)["alerts/acc-1/1/s0.a0"]["last_error"]


def test_without_a_sender_actions_wait(tmp_path: Path) -> None:
    con = warehouse()
    add_actions(con, [email_row(0, "ann@customer.test"), webhook_row(0)])
    report = deliver(con, {}, make_config(tmp_path), NOW)
    assert report.waiting == 2 and set(statuses(con).values()) == {"pending"}


# -- dry run ------------------------------------------------------------------------------------


def test_dry_run_writes_files_and_nothing_reaches_the_servers(tmp_path: Path, both: Both) -> None:
    recorder, receiver, config = both
    config = config.model_copy(update={"dry_run": True})
    con = warehouse()
    add_actions(con, [email_row(0, "ann@customer.test", html=True, body="<p>Hi</p>"),
                      email_row(1, "bob@customer.test", subject="bad\nsubject"),
                      webhook_row(0), task_row(0)])
    report = deliver(con, default_senders(config), config, NOW)
    assert recorder.messages == [] and receiver.requests == []
    assert report.preview_dir == tmp_path / "preview" and "dry run" in report.summary()
    names = sorted(p.name for p in (tmp_path / "preview").iterdir())
    assert names == ["alerts%2Facc-1%2F1%2Fs0.a0.json", "onboarding%2Facc-1%2F1%2Fs0.a0.eml",
                     "onboarding%2Facc-1%2F1%2Fs1.a0.json"]
    eml = (tmp_path / "preview" / "onboarding%2Facc-1%2F1%2Fs0.a0.eml").read_bytes()
    assert b"List-Unsubscribe:" in eml and b"multipart/alternative" in eml
    rows = deliveries(con)
    assert {r["channel"] for r in rows.values()} == {"dry_run"}
    assert statuses(con) == {"alerts/acc-1/1/s0.a0": "previewed",
                             "onboarding/acc-1/1/s0.a0": "previewed",
                             "onboarding/acc-1/1/s0.a1": "failed",
                             "onboarding/acc-1/1/s1.a0": "previewed"}
    assert con.execute("SELECT count(*) FROM crm_tasks").fetchall() == [(0,)]
    assert not (tmp_path / "exports").exists()


def test_a_preview_that_cannot_be_written_records_nothing_as_previewed(tmp_path: Path) -> None:
    config = make_config(tmp_path).model_copy(update={"dry_run": True})
    con = warehouse()
    add_actions(con, [email_row(0, "ann@customer.test"), email_row(1, "bob@customer.test"),
                      webhook_row(0)])
    (tmp_path / "preview").mkdir()
    blocked = tmp_path / "preview" / "onboarding%2Facc-1%2F1%2Fs0.a1.eml"
    blocked.mkdir()  # a folder where the second email's file goes: that write fails
    with pytest.raises(IsADirectoryError):
        deliver(con, default_senders(config), config, NOW)
    assert "previewed" not in set(statuses(con).values())
    blocked.rmdir()
    report = deliver(con, default_senders(config), config, NOW + timedelta(minutes=15))
    assert report.outcomes == {"previewed": 3}
    assert blocked.is_file()


def test_the_default_config_is_a_dry_run() -> None:
    config = DeliveryConfig.from_mapping({})
    assert config.dry_run and config.dry_run_dir == Path("data/outbox_preview")
    assert config.smtp.security == "starttls" and config.export_dir == Path("data/exports")
    resolved = DeliveryConfig.from_mapping({"smtp": {"ca_file": "certs/ca.pem"}},
                                           root=Path("/project"))
    assert resolved.dry_run_dir == Path("/project/data/outbox_preview")
    assert resolved.smtp.ca_file == Path("/project/certs/ca.pem")


def test_plain_smtp_is_refused_for_a_remote_host() -> None:
    with pytest.raises(ValueError, match="plain text"):
        DeliveryConfig.from_mapping({"smtp": {"host": "mail.example.com", "security": "none"}})
    with pytest.raises(ValueError, match="only"):
        DeliveryConfig.from_mapping({"unsubscribe": {"url": "https://x.test/{email}"}})
