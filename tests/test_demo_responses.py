"""The demo's simulated responder: deterministic, realistic rates, and a file the ingest takes."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import duckdb
import polars as pl
import pytest
from test_delivery_servers import add_actions, email_row, task_row, warehouse

from cswf.delivery import ingest_action_events
from cswf.demo.responses import simulate_responses, simulated_events
from cswf.project import EVENTS_FOLDER

START = datetime(2026, 6, 1, 0, 0)
UNTIL = datetime(2026, 7, 15, 0, 0)  # long after the last tick: every response has happened
EMAILS, TASKS = 6000, 3000


def outbox(emails: int = EMAILS, tasks: int = TASKS) -> duckdb.DuckDBPyConnection:
    """A synthetic outbox: emails and tasks of many accounts over 30 days of 3-hour ticks."""
    con = warehouse()
    rows = []
    for i in range(emails):
        tick = START + timedelta(hours=3 * (i % 240))
        rows.append(email_row(0, f"p{i}@customer.example", participant=f"acc-{i}", tick=tick,
                              step=i % 3))
    for i in range(tasks):
        tick = START + timedelta(hours=3 * (i % 240))
        rows.append({**task_row(0, participant=f"team-{i}", tick=tick),
                     "due_at": tick + timedelta(days=1 + i % 7)})
    rows.append({**email_row(0, "x@customer.example", participant="broken", tick=START),
                 "status": "render_failed"})  # never sent: no responses
    add_actions(con, rows)
    return con


@pytest.fixture(scope="module")
def synthetic() -> duckdb.DuckDBPyConnection:
    return outbox()


def test_same_outbox_and_until_give_the_same_bytes(synthetic: duckdb.DuckDBPyConnection,
                                                   tmp_path: Path) -> None:
    first = simulate_responses(synthetic, UNTIL, tmp_path / "a")
    second = simulate_responses(synthetic, UNTIL, tmp_path / "b")
    assert first == tmp_path / "a" / EVENTS_FOLDER / "simulated_responses.csv"
    assert first is not None and second is not None
    assert first.read_bytes() == second.read_bytes()
    # A fresh warehouse with the same actions inserted in another order: the same file too.
    con = warehouse()
    shuffled = synthetic.sql("SELECT * FROM actions_outbox").pl().sample(
        fraction=1.0, shuffle=True, seed=7)
    add_actions(con, shuffled.to_dicts())
    third = simulate_responses(con, UNTIL, tmp_path / "c")
    assert third is not None and third.read_bytes() == first.read_bytes()
    assert first.read_text().splitlines()[0] == "action_id,event_type,occurred_at,detail"


def test_rates_are_close_to_the_targets(synthetic: duckdb.DuckDBPyConnection) -> None:
    events = simulated_events(synthetic, UNTIL)
    assert events.select(pl.struct("action_id", "event_type").is_unique().all()).item()
    counts = dict(events.group_by("event_type").len().iter_rows())
    delivered = counts["delivered"]
    assert delivered / EMAILS == pytest.approx(0.97, abs=0.01)
    assert counts["bounced"] / EMAILS == pytest.approx(0.02, abs=0.006)
    assert counts["opened"] / delivered == pytest.approx(0.45, abs=0.025)
    assert counts["clicked"] / delivered == pytest.approx(0.10, abs=0.015)
    assert counts["replied"] / delivered == pytest.approx(0.04, abs=0.01)
    assert counts["completed"] / TASKS == pytest.approx(0.70, abs=0.03)
    assert set(counts) == {"delivered", "bounced", "opened", "clicked", "replied", "completed"}
    # Opens, clicks and replies only of delivered emails, each after the one before.
    by_kind = {kind: frame.select("action_id", pl.col("occurred_at").alias(kind))
               for (kind,), frame in events.partition_by("event_type", as_dict=True).items()}
    chain = by_kind["opened"].join(by_kind["delivered"], on="action_id", how="left")
    assert chain["delivered"].null_count() == 0
    hours = (chain["opened"] - chain["delivered"]).dt.total_hours()
    assert hours.min() >= 1 and hours.max() < 48
    for kind in ("clicked", "replied"):
        after = by_kind[kind].join(by_kind["opened"], on="action_id", how="left")
        assert (after[kind] > after["opened"]).all()
    bounced = set(by_kind["bounced"]["action_id"])
    assert not bounced & set(by_kind["delivered"]["action_id"])


def test_events_are_after_their_tick_and_not_after_until(synthetic: duckdb.DuckDBPyConnection
                                                         ) -> None:
    until = START + timedelta(days=10, hours=5)
    events = simulated_events(synthetic, until).join(
        synthetic.sql("SELECT action_id, tick, due_at, action_type FROM actions_outbox").pl(),
        on="action_id", how="left",
    )
    assert (events["occurred_at"] > events["tick"]).all()
    assert (events["occurred_at"] <= until).all()
    tasks = events.filter(pl.col("action_type") == "task")
    assert (tasks["occurred_at"] < tasks["due_at"]).all()  # completed within the due days
    assert "onboarding/broken/1/s0.a0" not in set(events["action_id"])
    # A later `until` only adds events: the earlier ones are the same.
    later = simulated_events(synthetic, UNTIL)
    assert later.filter(pl.col("occurred_at") <= until).equals(events.select(later.columns))


def test_the_file_is_accepted_by_the_events_ingest(tmp_path: Path) -> None:
    con = outbox(emails=400, tasks=200)
    until = START + timedelta(days=40)
    path = simulate_responses(con, until, tmp_path / "landing")
    assert path is not None
    rows = pl.read_csv(path).height
    report = ingest_action_events(con, tmp_path / "landing" / EVENTS_FOLDER, until)
    assert report.rejected == [] and (report.files, report.rows) == (1, rows)
    assert report.inserted == rows
    stored = con.sql("SELECT event_type, count(*) AS n FROM action_events GROUP BY ALL").pl()
    assert stored["n"].sum() == rows
    # Bounces feed suppression like any other event file.
    bounced = stored.filter(pl.col("event_type") == "bounced")["n"].sum()
    assert con.execute("SELECT count(*) FROM suppressions").fetchall() == [(bounced,)]
    # Written again (same bytes) and read again: nothing new.
    assert simulate_responses(con, until, tmp_path / "landing") == path
    assert ingest_action_events(con, path.parent, until).inserted == 0


def test_nothing_to_write_before_any_response(tmp_path: Path) -> None:
    con = outbox(emails=3, tasks=0)
    assert simulate_responses(con, START, tmp_path) is None  # a tick's own time: too early
    assert not (tmp_path / EVENTS_FOLDER).exists()


def test_tick_windows_add_up_to_the_whole_span(synthetic: duckdb.DuckDBPyConnection) -> None:
    """run_ticks asks per tick for (tick, next tick]: the windows must lose nothing."""
    whole = simulated_events(synthetic, UNTIL)
    edges = [START + timedelta(hours=3 * i) for i in range(0, 44 * 8 + 1)]
    parts = pl.concat([simulated_events(synthetic, b, a) for a, b in pairwise(edges)])
    assert edges[-1] == UNTIL
    key = ["action_id", "event_type", "occurred_at"]
    assert parts.sort(key).equals(whole.filter(pl.col("occurred_at") > START).sort(key))
