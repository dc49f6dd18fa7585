"""on_error (continue | retry | exit) and the `failed` event every final failure records."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from test_delivery_servers import (
    NOW,
    SmtpRecorder,
    WebhookReceiver,
    add_actions,
    deliveries,
    email_row,
    make_config,
    smtp_server,
    statuses,
    warehouse,
    webhook_row,
    webhook_server,
)

from cswf.delivery import (
    DeliveryConfig,
    DeliveryReport,
    default_senders,
    deliver,
    resolve_unknown,
)
from cswf.reports.insights import action_insights

ANN = "onboarding/acc-1/1/s0.a0"
BOB = "onboarding/acc-1/1/s0.a1"


class Greylisting(SmtpRecorder):
    """Answers 451 (try again later) to the addresses in `later`."""

    def __init__(self, later: set[str]) -> None:
        super().__init__()
        self.later = later
        self.tries: list[str] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        self.tries.append(address)
        if address in self.later:
            return "451 4.7.1 greylisted, try again later"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


@pytest.fixture
def greylisted(tmp_path: Path) -> Iterator[tuple[Greylisting, DeliveryConfig]]:
    recorder = Greylisting({"ann@customer.test"})
    with smtp_server(recorder) as port:
        yield recorder, make_config(tmp_path, smtp_port=port)


def run(con: duckdb.DuckDBPyConnection, config: DeliveryConfig, now: datetime = NOW
        ) -> DeliveryReport:
    return deliver(con, default_senders(config), config, now)


def failed_events(con: duckdb.DuckDBPyConnection) -> list[tuple[str, datetime, str]]:
    return con.execute("SELECT action_id, occurred_at, source FROM action_events "
                       "WHERE event_type = 'failed' ORDER BY action_id").fetchall()


def test_continue_makes_one_attempt_and_records_the_failure(
    greylisted: tuple[Greylisting, DeliveryConfig]
) -> None:
    recorder, config = greylisted
    con = warehouse()
    add_actions(con, [{**email_row(0, "ann@customer.test"), "on_error": "continue"}])
    assert run(con, config).outcomes == {"failed": 1}
    row = deliveries(con)[ANN]
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("failed", 1, None)
    assert "451" in row["last_error"]
    assert failed_events(con) == [(ANN, NOW, "smtp")]
    for hours in (1, 24):
        assert run(con, config, NOW + timedelta(hours=hours)).outcomes == {}
    assert recorder.tries == ["ann@customer.test"]


def test_continue_on_a_webhook_is_one_attempt_too(tmp_path: Path) -> None:
    receiver = WebhookReceiver(plan=[503] * 9)
    con = warehouse()
    add_actions(con, [{**webhook_row(0), "on_error": "continue"}])
    with webhook_server(receiver) as url:
        config = make_config(tmp_path, webhook_url=url)
        assert run(con, config).outcomes == {"failed": 1}
        assert run(con, config, NOW + timedelta(days=1)).outcomes == {}
    row = deliveries(con)["alerts/acc-1/1/s0.a0"]
    assert row["attempts"] == 1 and row["next_attempt_at"] is None
    assert [event[0] for event in failed_events(con)] == ["alerts/acc-1/1/s0.a0"]


@pytest.mark.parametrize("on_error", ["retry", None])  # None: an outbox from before on_error
def test_retry_retries_with_backoff_until_the_attempts_run_out(
    tmp_path: Path, greylisted: tuple[Greylisting, DeliveryConfig], on_error: str | None
) -> None:
    recorder, config = greylisted
    con = warehouse(tmp_path / "cswf.duckdb")
    add_actions(con, [{**email_row(0, "ann@customer.test"), "on_error": on_error}])
    assert run(con, config).outcomes == {"retrying": 1}
    row = deliveries(con)[ANN]
    assert row["next_attempt_at"] == NOW + timedelta(seconds=60) and failed_events(con) == []
    assert run(con, config, NOW + timedelta(seconds=30)).outcomes == {}  # not due yet
    assert run(con, config, NOW + timedelta(seconds=60)).outcomes == {"retrying": 1}
    assert deliveries(con)[ANN]["next_attempt_at"] == NOW + timedelta(seconds=180)
    final = NOW + timedelta(seconds=180)
    assert run(con, config, final).outcomes == {"failed": 1}
    assert recorder.tries == ["ann@customer.test"] * 3
    assert failed_events(con) == [(ANN, final, "smtp")]


def test_exit_retries_like_retry_and_records_failed_only_when_final(
    greylisted: tuple[Greylisting, DeliveryConfig]
) -> None:
    recorder, config = greylisted
    con = warehouse()
    add_actions(con, [{**email_row(0, "ann@customer.test"), "on_error": "exit"}])
    times = [NOW, NOW + timedelta(seconds=60), NOW + timedelta(seconds=180)]
    outcomes = []
    for now in times:
        outcomes.append(run(con, config, now).outcomes)
        if now != times[-1]:
            assert failed_events(con) == []  # still retrying: the flow goes on
    assert outcomes == [{"retrying": 1}, {"retrying": 1}, {"failed": 1}]
    # The event the engine exits the enrollment on, at the time it finally failed.
    assert failed_events(con) == [(ANN, times[-1], "smtp")]
    assert len(recorder.tries) == 3


def test_exit_after_a_permanent_error_records_failed_at_once(tmp_path: Path) -> None:
    recorder = SmtpRecorder(reject={"gone@customer.test"})
    con = warehouse()
    add_actions(con, [{**email_row(0, "gone@customer.test"), "on_error": "exit"},
                      {**email_row(1, None), "on_error": "exit"}])  # no recipient
    with smtp_server(recorder) as port:
        assert run(con, make_config(tmp_path, smtp_port=port)).outcomes == {"failed": 2}
    assert failed_events(con) == [(ANN, NOW, "smtp"), (BOB, NOW, "smtp")]
    assert "not a single email address" in deliveries(con)[BOB]["last_error"]


def test_a_template_that_did_not_render_records_failed_and_a_replay_clears_it(
    greylisted: tuple[Greylisting, DeliveryConfig]
) -> None:
    recorder, config = greylisted
    con = warehouse()
    broken = {**email_row(0, "bob@customer.test"), "subject": None, "status": "render_failed",
              "error": "UndefinedError: 'x' is undefined", "on_error": "exit"}
    add_actions(con, [broken])
    assert run(con, config).outcomes == {}
    events = con.execute("SELECT action_id, event_type, occurred_at, detail, source "
                         "FROM action_events").fetchall()
    assert events == [(ANN, "failed", NOW, "template did not render: UndefinedError: 'x' is "
                       "undefined", "delivery")]
    run(con, config, NOW + timedelta(minutes=5))  # recorded once
    assert len(failed_events(con)) == 1
    # The tick is rewound and replayed with a fixed template: the failure is gone, it is sent.
    con.execute("DELETE FROM actions_outbox").fetchall()
    add_actions(con, [{**email_row(0, "bob@customer.test"), "on_error": "exit"}])
    assert run(con, config, NOW + timedelta(minutes=10)).outcomes == {"sent": 1}
    assert failed_events(con) == []
    assert [m.rcpt_tos for m in recorder.messages] == [["bob@customer.test"]]


def test_giving_up_on_an_unknown_email_is_a_final_failure(tmp_path: Path) -> None:
    recorder = SmtpRecorder(drop_after_data=True)
    con = warehouse()
    add_actions(con, [{**email_row(0, "ann@customer.test"), "on_error": "exit"}])
    with smtp_server(recorder) as port:
        assert run(con, make_config(tmp_path, smtp_port=port)).outcomes == {"unknown": 1}
    assert failed_events(con) == []
    later = NOW + timedelta(hours=1)
    resolve_unknown(con, ANN, "failed", later, note="not in the server log")
    assert statuses(con) == {ANN: "failed"}
    assert failed_events(con) == [(ANN, later, "delivery")]


def test_insights_count_failed_and_retrying_deliveries_per_step(
    greylisted: tuple[Greylisting, DeliveryConfig]
) -> None:
    _, config = greylisted
    con = warehouse()
    broken = {**email_row(2, "cy@customer.test"), "subject": None, "status": "render_failed",
              "error": "boom"}
    add_actions(con, [
        {**email_row(0, "ann@customer.test"), "on_error": "continue"},  # fails for good
        email_row(1, "ann@customer.test", step=1),  # greylisted: retrying
        broken,
        email_row(3, "dee@customer.test"),  # sent
        {**webhook_row(0), "action_type": "carrier_pigeon"},  # no channel: failed
    ])
    run(con, config)
    report = action_insights(con, NOW)
    by_step = {(r["workflow"], r["step"]): r for r in report.iter_rows(named=True)}
    first = by_step[("onboarding", 0)]
    assert (first["actions_failed"], first["actions_retrying"], first["emails_failed"]) == (
        2, 0, 2)
    second = by_step[("onboarding", 1)]
    assert (second["actions_failed"], second["actions_retrying"]) == (0, 1)
    assert by_step[("alerts", 0)]["actions_failed"] == 1
    # As of before the failures happened: none yet.
    before = action_insights(con, NOW - timedelta(seconds=1))
    assert before.filter(before["step"] == 0)["actions_failed"].to_list() == [0, 0]
