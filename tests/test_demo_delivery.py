"""The demo delivers along the quarter as the 15-minute schedule would: quiet hours hold an email
until they end (between ticks), the daily cap holds the rest of a burst, and the simulated
customers answer only what was sent, from its send."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import duckdb
import polars as pl
import pytest
from test_delivery_servers import add_actions, email_row, make_config, task_row, warehouse

from cswf.demo.delivering import QuarterDelivery, slot_at_or_after
from cswf.demo.responses import SimulatedAudience
from cswf.engine.frames import ACTION_SCHEMA, conform
from cswf.engine.tick import TickResult

DAY = datetime(2026, 6, 2)
TICKS = [DAY + timedelta(hours=3 * i) for i in range(9)]  # 00:00 .. 24:00 UTC
BOUNCING = "gone@customer.example"  # onboarding/acc-51/1/s0.a0 draws a bounce


def test_slots_are_quarter_hours_at_or_after() -> None:
    assert slot_at_or_after(DAY) == DAY
    assert slot_at_or_after(DAY + timedelta(minutes=1)) == DAY + timedelta(minutes=15)
    assert slot_at_or_after(DAY + timedelta(minutes=59, seconds=59)) == DAY + timedelta(hours=1)


def _result(as_of: datetime, rows: list[dict[str, object]]) -> TickResult:
    actions = conform(pl.DataFrame(rows, infer_schema_length=None), ACTION_SCHEMA) if rows \
        else pl.DataFrame(schema=ACTION_SCHEMA)
    return TickResult(as_of=as_of, participants=0, workflows=0, state=pl.DataFrame(),
                      actions=actions, transitions=pl.DataFrame())


Quarter = tuple[duckdb.DuckDBPyConnection, dict[datetime, pl.DataFrame]]


def _day(tmp_path: Path, last_tick: datetime | None = None) -> Quarter:
    """Tick by tick through one day (UTC; quiet hours 20:00-08:00, 3 emails a day an address):
    an email at 03:00, five to one address at 12:00, a task at 12:00; an email at 09:00 that
    bounces (its id draws a bounce) and one to the same address at 15:00."""
    con = warehouse()
    config = make_config(tmp_path, dry_run=True, quiet_hours={"start": "20:00", "end": "08:00"},
                         cap_per_day=3)
    emitted = {
        TICKS[1]: [email_row(0, "early@customer.example", participant="acc-1", tick=TICKS[1])],
        TICKS[3]: [email_row(0, BOUNCING, participant="acc-51", tick=TICKS[3])],
        TICKS[4]: [email_row(n, "busy@customer.example", participant="acc-2", tick=TICKS[4])
                   for n in range(5)] + [task_row(0, participant="acc-3", tick=TICKS[4])],
        TICKS[5]: [email_row(1, BOUNCING, participant="acc-51", tick=TICKS[5])],
    }
    audience = SimulatedAudience(QuarterDelivery(config), last_tick=last_tick)
    seen = {}
    for as_of, until in pairwise(TICKS):
        rows = emitted.get(as_of, [])
        if rows:
            add_actions(con, rows)  # what write_tick does before the audience is called
        seen[as_of] = audience(con, _result(as_of, rows), until)
    return con, seen


@pytest.fixture
def quarter(tmp_path: Path) -> Quarter:
    return _day(tmp_path)


def test_recording_results_only_before_deliveries_and_at_the_end_changes_nothing(
        tmp_path: Path) -> None:
    every_tick, _ = _day(tmp_path / "a")
    lazily, _ = _day(tmp_path / "b", last_tick=TICKS[-2])
    query = ("SELECT action_id, event_type, occurred_at, source FROM action_events "
             "ORDER BY ALL")
    assert every_tick.sql(query).fetchall() == lazily.sql(query).fetchall()
    query = "SELECT action_id, status, sent_at FROM deliveries ORDER BY ALL"
    assert every_tick.sql(query).fetchall() == lazily.sql(query).fetchall()


def test_a_bounce_suppresses_the_address_before_the_next_send(quarter: Quarter) -> None:
    con, _ = quarter
    bounced = con.sql("SELECT occurred_at FROM action_events WHERE event_type = 'bounced' AND "
                      "action_id = 'onboarding/acc-51/1/s0.a0'").fetchall()
    assert bounced and TICKS[3] < bounced[0][0] < TICKS[5]
    assert con.sql("SELECT status FROM deliveries WHERE action_id = "
                   "'onboarding/acc-51/1/s0.a1'").fetchall() == [("suppressed",)]


def test_quiet_hours_hold_an_email_until_they_end_between_ticks(quarter: Quarter) -> None:
    con, seen = quarter
    early = "onboarding/acc-1/1/s0.a0"
    status, sent_at = con.execute("SELECT status, sent_at FROM deliveries WHERE action_id = $id",
                                  {"id": early}).fetchall()[0]
    assert (status, sent_at) == ("previewed", DAY + timedelta(hours=8))  # the 08:00 slot, no tick
    answers = con.sql(f"SELECT event_type, occurred_at FROM action_events WHERE action_id = "
                      f"'{early}' AND source = 'simulated'").pl()
    assert not answers.is_empty() and (answers["occurred_at"] > sent_at).all()
    # The tick at 09:00 sees the send and what the customer did by then; the 06:00 one nothing.
    assert early not in seen[TICKS[1]]["action_id"].to_list()
    by_nine = seen[TICKS[2]].filter(pl.col("action_id") == early)
    assert "sent" in by_nine["event_type"].to_list()


def test_the_daily_cap_holds_the_rest_of_a_burst_and_capped_emails_get_no_answer(
        quarter: Quarter) -> None:
    con, _ = quarter
    busy = con.sql("SELECT d.action_id, d.status FROM deliveries AS d WHERE d.action_id LIKE "
                   "'onboarding/acc-2/%' ORDER BY d.action_id").fetchall()
    assert [s for _, s in busy] == ["previewed", "previewed", "previewed", "capped", "capped"]
    capped = [a for a, s in busy if s == "capped"]
    answered = con.sql("SELECT DISTINCT action_id FROM action_events WHERE source = 'simulated'"
                       ).pl()["action_id"].to_list()
    assert not set(capped) & set(answered)
    sent = con.sql("SELECT action_id FROM deliveries WHERE status = 'previewed' AND "
                   "action_type = 'email'").pl()["action_id"].to_list()
    delivered = con.sql("SELECT action_id FROM action_events WHERE event_type = 'delivered'"
                        ).pl()["action_id"].to_list()
    assert set(delivered) <= set(sent)
    # The task reached its owner at its tick (a dry run writes it as a file).
    assert con.sql("SELECT status, sent_at FROM deliveries WHERE action_type = 'task'"
                   ).fetchall() == [("previewed", TICKS[4])]
