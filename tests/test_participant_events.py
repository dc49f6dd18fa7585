"""Participant events: event files in, the tick window (previous tick, this tick], late events,
and the demo's nps_follow_up entering on every answer."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from test_cli import project, runner
from test_lifecycle import query

from cswf.calendar import TickCalendar
from cswf.cli import app
from cswf.demo.generate import generate_book
from cswf.facts.models import build_facts
from cswf.ingest.landing import ingest_all
from cswf.ingest.participant_events import ingest_participant_events
from cswf.ingest.snapshots import ensure_tables

REPO = Path(__file__).resolve().parents[1]
CALENDAR = TickCalendar("0 */3 * * *", datetime(2026, 6, 1))
T3, T6, T9 = (datetime(2026, 6, 1, h) for h in (3, 6, 9))

GOOD = """event_type,participant_id,occurred_at,score,comment
nps_response,CON-1,2026-06-01T04:00:00Z,4,too slow
NPS_Response , CON-2 ,2026-06-01 05:30,9,
"""
BAD = """event_type,event_id,participant_id,occurred_at,score
nps_response,r1,CON-3,yesterday,7
,r2,CON-4,2026-06-01T05:00:00,7
ticket opened,r3,CON-5,2026-06-01T05:00:00,
nps_response,r4,,2026-06-01T05:00:00,3
nps_response,r5,CON-6,2026-06-01T05:00:00,8
"""


def land(root: Path, name: str, text: str) -> Path:
    path = root / "events" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def stored(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.sql(
        "SELECT participant_id, event_type, occurred_at, counted_at, properties "
        "FROM raw_events ORDER BY occurred_at, participant_id"
    ).fetchall()


def test_good_rows_load_with_their_properties_and_relanding_adds_nothing(tmp_path: Path) -> None:
    con = duckdb.connect()
    land(tmp_path, "nps_2026-06-01.csv", GOOD)
    report = ingest_all(con, tmp_path)
    assert report.participant_events.inserted == 2 and report.participant_events.rejected == []
    assert "participant events: 1 file(s) read, 2 new event(s), 0 row(s) rejected" in report.lines()
    at4, at530 = datetime(2026, 6, 1, 4), datetime(2026, 6, 1, 5, 30)
    assert stored(con) == [
        ("CON-1", "nps_response", at4, at4, '{"score":"4","comment":"too slow"}'),
        ("CON-2", "nps_response", at530, at530, '{"score":"9","comment":null}'),
    ]
    # the same file again, and a copy under another name: nothing new
    shutil.copy(tmp_path / "events" / "nps_2026-06-01.csv", tmp_path / "events" / "copy.csv")
    again = ingest_participant_events(con, tmp_path)
    assert (again.files, again.inserted) == (2, 0)
    assert len(stored(con)) == 2


def test_bad_rows_are_one_line_each_and_the_good_rows_still_load(tmp_path: Path) -> None:
    con = duckdb.connect()
    land(tmp_path, "mixed.csv", BAD)
    land(tmp_path, "no_time.csv", "event_type,participant_id\nnps_response,CON-1\n")
    report = ingest_all(con, tmp_path)
    fix = "; the row was not loaded: fix it and land the file again"
    assert report.participant_events.rejected == [
        "events/mixed.csv: row 1: column 'occurred_at': could not convert 'yesterday' to "
        "TIMESTAMP (ISO 8601, e.g. 2026-07-01T14:30:00Z)" + fix,
        "events/mixed.csv: row 2: column 'event_type': empty (name what happened, e.g. "
        "nps_response)" + fix,
        "events/mixed.csv: row 3: column 'event_type': 'ticket opened' is not a name (letters, "
        "digits and _, starting with a letter)" + fix,
        "events/mixed.csv: row 4: column 'participant_id': empty (the account_id, contact_id or "
        "opportunity_id the event happened to)" + fix,
        "events/no_time.csv: missing required column 'occurred_at' (an event file needs "
        "event_type, participant_id and occurred_at)",
    ]
    assert [row[0] for row in stored(con)] == ["CON-6"]
    assert f"rejected event row: {report.participant_events.rejected[0]}" in report.lines()
    assert ("participant events: 2 file(s) read, 1 new event(s), 4 row(s) rejected, "
            "1 file(s) rejected") in report.lines()


def test_a_file_that_is_no_table_is_one_line(tmp_path: Path) -> None:
    con = duckdb.connect()
    (tmp_path / "events").mkdir(parents=True, exist_ok=True)
    (tmp_path / "events" / "garbage.csv").write_bytes(bytes(range(256)) * 4)
    (problem,) = ingest_all(con, tmp_path).participant_events.rejected
    assert problem.startswith("events/garbage.csv: ")


def test_a_late_event_counts_at_the_next_tick(tmp_path: Path) -> None:
    """An event landing after a tick later than it ran is counted just after that tick: never
    lost, never counted twice, and a re-run of the tick that ran sees what it saw."""
    con = duckdb.connect()
    con.execute("CREATE TABLE tick_log (as_of TIMESTAMP)")
    con.execute("INSERT INTO tick_log VALUES (?)", [T6])
    land(tmp_path, "late.csv", GOOD)
    report = ingest_participant_events(con, tmp_path)
    assert (report.inserted, report.late) == (2, 2)
    assert "(2 late: counted at the next tick)" in report.line()
    late = T6 + timedelta(microseconds=1)
    assert [(row[0], row[3]) for row in stored(con)] == [("CON-1", late), ("CON-2", late)]
    land(tmp_path, "on_time.csv", "event_type,participant_id,occurred_at\nvisit,CON-9,"
                                  "2026-06-01T07:00\n")
    assert ingest_participant_events(con, tmp_path).late == 0
    assert stored(con)[-1][3] == datetime(2026, 6, 1, 7)


def windows(con: duckdb.DuckDBPyConnection, ticks: list[datetime]) -> dict:
    """{(tick, participant): [(event_id, since_previous_tick), ...]} of recent_events."""
    facts = build_facts(con, ticks, None, "recent_events", calendar=CALENDAR)
    return {(row["as_of"], row["participant_id"]): [(e["event_id"], e["since_previous_tick"])
                                                    for e in row["recent_events"]]
            for row in facts.iter_rows(named=True)}


def test_the_window_is_previous_tick_exclusive_to_this_tick_inclusive(tmp_path: Path) -> None:
    con = duckdb.connect()
    ensure_tables(con)
    land(tmp_path, "w.csv", "event_type,event_id,participant_id,occurred_at\n"
                            "visit,at_t3,P,2026-06-01T03:00\n"          # exactly the previous tick
                            "visit,at_t6,P,2026-06-01T06:00\n"          # exactly this tick
                            "visit,after_t6,P,2026-06-01T06:00:00.000001\n")
    ingest_participant_events(con, tmp_path)
    together = windows(con, [T3, T6, T9])
    assert together[(T3, "P")] == [("at_t3", True)]
    assert together[(T6, "P")] == [("at_t3", False), ("at_t6", True)]
    assert together[(T9, "P")] == [("at_t3", False), ("at_t6", False), ("after_t6", True)]
    # A tick run (or re-run) alone knows its previous tick from the calendar, not from the
    # ticks built with it: every tick's window is the same in any chunk, live or replayed.
    for tick in (T3, T6, T9):
        assert windows(con, [tick]) == {k: v for k, v in together.items() if k[0] == tick}


def test_before_the_calendars_first_tick_every_event_of_the_lookback_counts(
        tmp_path: Path) -> None:
    con = duckdb.connect()
    ensure_tables(con)
    land(tmp_path, "w.csv", "event_type,event_id,participant_id,occurred_at\n"
                            "visit,old,P,2026-03-05T00:00\nvisit,older,P,2026-03-01T00:00\n")
    ingest_participant_events(con, tmp_path)
    first = CALENDAR.first
    assert windows(con, [first]) == {(first, "P"): [("old", True)]}  # 90 days back, no more


def demo(tmp_path: Path, entry: str | None = None) -> Path:
    """The shipped nps_follow_up (or its entry replaced) over a small demo book, a week of ticks."""
    spec = (REPO / "workflow_specs" / "nps_follow_up.yaml").read_text()
    if entry is not None:
        spec = spec.replace("{event: nps_response, happened: since_previous_tick}", entry)
    root = project(tmp_path, {"nps_follow_up.yaml": spec})
    shutil.copy(REPO / "user_groups.yaml", root / "user_groups.yaml")
    generate_book(root / "landing", accounts=60, days=38, start=date(2026, 5, 1))
    result = runner.invoke(app, ["run", "--start", "2026-05-31", "--end", "2026-06-07T21:00",
                                 "--root", str(root)], terminal_width=400)
    assert result.exit_code == 0, result.stderr
    return root


# Each answer of the run (after its first tick) from a contact whose account is not churned, and
# the tick it should enter at: the first tick at or after the answer.
ANSWERS = """
SELECT e.participant_id, time_bucket(INTERVAL 3 HOUR, e.occurred_at - INTERVAL 1 MICROSECOND)
           + INTERVAL 3 HOUR AS due
FROM raw_events AS e
JOIN account_facts AS f
    ON f.as_of = time_bucket(INTERVAL 3 HOUR, e.occurred_at - INTERVAL 1 MICROSECOND)
           + INTERVAL 3 HOUR
   AND f.account_id = json_extract_string(e.properties, '$.account_id')
WHERE e.event_type = 'nps_response' AND e.occurred_at > TIMESTAMP '2026-05-31 00:00'
  AND e.occurred_at <= TIMESTAMP '2026-06-07 21:00' AND f.stage <> 'churned'
ORDER BY 1
"""
ENTERED = """
SELECT participant_id, tick FROM transitions
WHERE workflow = 'nps_follow_up' AND transition = 'entered' ORDER BY 1
"""


def test_every_answered_survey_enrolls_in_nps_follow_up(tmp_path: Path) -> None:
    root = demo(tmp_path)
    answers = query(root, ANSWERS)
    assert len(answers) >= 5
    assert query(root, ENTERED) == answers
    paths = query(root, "SELECT reason, count(*) FROM transitions WHERE reason LIKE "
                        "'branch%took path%' GROUP BY 1")
    assert sum(n for _, n in paths) == len(answers)  # each took the path of its score
    calls = query(root, "SELECT o.body, json_extract_string(e.properties, '$.score') "
                        "FROM actions_outbox AS o JOIN raw_events AS e USING (participant_id) "
                        "WHERE o.step_name = 'recovery_call'")
    assert calls and all(body.startswith(f"NPS {score}. Listen") for body, score in calls)


def test_on_the_old_snapshot_spec_first_answers_never_enroll(tmp_path: Path) -> None:
    root = demo(tmp_path, entry="{field: nps, op: changed}")
    answers, entered = query(root, ANSWERS), query(root, ENTERED)
    assert len(entered) < len(answers)
    first = query(root, "SELECT count(*) FROM raw_contacts WHERE nps IS NULL AND contact_id IN "
                        "(SELECT participant_id FROM raw_events)")[0][0]
    assert first > 0  # contacts without an answer before: `changed` has no previous value


def test_the_demo_book_lands_each_contacts_answer_as_an_event(tmp_path: Path) -> None:
    summary = generate_book(tmp_path / "landing", accounts=40, days=20, fmt="csv")
    contacts = pl.concat([pl.read_csv(p) for p in (tmp_path / "landing" / "contacts").iterdir()])
    events = pl.concat([pl.read_csv(p) for p in summary.event_files_written])
    assert events.height == summary.nps_answers > 0
    assert events["event_id"].n_unique() == events.height
    assert events.columns == ["event_type", "event_id", "participant_id", "occurred_at", "score",
                              "account_id"]
    # the contact's snapshot of the answer day carries the same score
    day = events.with_columns(pl.col("occurred_at").str.to_datetime().dt.date().cast(pl.String)
                              .alias("snapshot_date"))
    joined = day.join(contacts, left_on=["participant_id", "snapshot_date"],
                      right_on=["contact_id", "snapshot_date"])
    assert joined.height == events.height and (joined["score"] == joined["nps"]).all()


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR")


def test_the_landing_sensor_watches_event_files(tmp_path: Path) -> None:
    from cswf.defs.automation import file_state

    before = file_state(tmp_path)
    land(tmp_path, "nps_2026-06-01.csv", GOOD)
    assert set(file_state(tmp_path)) - set(before) == {"events/nps_2026-06-01.csv"}
