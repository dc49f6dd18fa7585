"""`cswf explain`: inside at which step since when, what it received and why; if not inside,
which condition keeps it out, leaf by leaf with the participant's values."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from pydantic import TypeAdapter
from test_cli_errors import SPEC, cswf, make_project, one_error

from cswf.engine.explain import judge
from cswf.specs.conditions import Condition

STAYING = SPEC + """  - name: later
    delay: {days: 7}
"""
# One project, four workflows of the same entry condition (tier enterprise: a1, not a2).
SPECS = {
    "hello.yaml": STAYING,  # a1 stays inside a week
    "once.yaml": SPEC.replace("name: hello", "name: once"),  # a1 completes at once
    "draft.yaml": SPEC.replace("name: hello", "name: draft").replace("state: enabled",
                                                                    "state: draft"),
    "rested.yaml": SPEC.replace("name: hello", "name: rested").replace(
        "steps:", "reentry: {mode: unlimited, min_days_since_exit: 3}\nsteps:"),
    "again.yaml": SPEC.replace("name: hello", "name: again").replace(
        "steps:", "reentry: {mode: unlimited}\nsteps:"),  # a1 completes and re-enters each tick
    "monthly.yaml": SPEC.replace("name: hello", "name: monthly").replace(
        "steps:", "reentry: {mode: unlimited, min_months_since_exit: 3}\nsteps:"),
}
AT = datetime(2026, 6, 1)


def condition(raw: dict) -> Condition:
    return TypeAdapter(Condition).validate_python(raw)


def test_judge_gives_every_node_its_verdict_and_every_leaf_its_value() -> None:
    tree = condition({"all": [
        {"field": "tier", "op": "eq", "value": "enterprise"},
        {"any": [{"field": "health_score", "op": "dropped_below", "value": 60},
                 {"not": {"field": "stage", "op": "eq", "value": "churned"}}]},
    ]})
    facts = pl.DataFrame({"participant_id": ["a1", "a2"], "as_of": [AT, AT],
                          "tier": ["enterprise", "smb"], "health_score": [55.0, None],
                          "stage": ["churned", "mature"]})
    before = pl.DataFrame({"participant_id": ["a1", "a2"], "as_of": [AT, AT],
                           "tier": ["enterprise", "smb"], "health_score": [70.0, 80.0],
                           "stage": ["mature", "mature"]})
    judged = judge(tree, facts, before, dict(facts.schema))
    a1 = judged.filter(pl.col("participant_id") == "a1")
    assert a1.select("depth", "condition", "value", "previous", "holds").rows() == [
        (0, "all of", None, None, True),
        (1, "tier eq 'enterprise'", "enterprise", None, True),
        (1, "any of", None, None, True),
        (2, "health_score dropped_below 60", "55.0", "70.0", True),
        (2, "not", None, None, False),
        (3, "stage eq 'churned'", "churned", None, True),
    ]
    # a2 has no health score: the leaf is false (the null rule), the tree's `not` holds.
    a2 = judged.filter(pl.col("participant_id") == "a2")
    assert a2.select("condition", "value", "holds").rows() == [
        ("all of", None, False),
        ("tier eq 'enterprise'", "smb", False),
        ("any of", None, True),
        ("health_score dropped_below 60", None, False),
        ("not", None, True),
        ("stage eq 'churned'", "mature", False),
    ]
    assert a2.select("field", "op", "operand").row(1) == ("tier", "eq", "enterprise")


def test_an_event_leaf_is_judged_with_how_many_of_its_events_pass() -> None:
    """nps_follow_up's entry: an answer since the previous tick, scored 6 or less."""
    tree = condition({"all": [
        {"field": "tier", "op": "eq", "value": "enterprise"},
        {"event": "nps_response", "happened": "since_previous_tick",
         "where": [{"field": "score", "op": "le", "value": 6}]},
    ]})

    def answer(score: int, since: bool) -> dict:
        return {"event_type": "nps_response", "event_id": f"e{score}", "occurred_at": AT,
                "counted_at": AT, "since_previous_tick": since, "days_ago": 0.1,
                "properties": f'{{"score": {score}}}'}

    facts = pl.DataFrame({
        "participant_id": ["a1", "a2", "a3"], "as_of": [AT] * 3,
        "tier": ["enterprise"] * 3,
        "recent_events": [[answer(4, True), answer(9, True), answer(2, False)],
                          [answer(9, True)], None],
    })
    judged = judge(tree, facts, None, dict(facts.schema))
    leaf = "nps_response happened since the previous tick where score le 6"
    assert judged.filter(pl.col("node") == 2).select(
        "participant_id", "condition", "field", "value", "holds").rows() == [
        ("a1", leaf, "recent_events", "1 of 2 nps_response event(s)", True),
        ("a2", leaf, "recent_events", "0 of 1 nps_response event(s)", False),
        ("a3", leaf, "recent_events", "0 of 0 nps_response event(s)", False),
    ]
    # the tree's verdict is the tick's: the same compiled expression
    assert judged.filter(pl.col("node") == 0)["holds"].to_list() == [True, False, False]
    bare = condition({"event": "nps_response", "within_days": 7})
    assert judge(bare, facts, None, dict(facts.schema))["value"].to_list() == [
        "3 nps_response event(s)", "1 nps_response event(s)", "0 nps_response event(s)"]


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ticks at 2026-06-01 00:00 and 03:00."""
    root = make_project(tmp_path_factory.mktemp("explain"), SPECS)
    code, out, err = cswf("run", "--start", "2026-06-01T00:00", "--end", "2026-06-01T03:00",
                          "--root", str(root))
    assert code == 0, out + err
    return root


def explain(root: Path, *args: str) -> list[str]:
    code, out, err = cswf("explain", *args, "--root", str(root))
    assert code == 0, out + err
    return [" ".join(line.split()) for line in out.splitlines()]


def test_inside_says_the_step_since_when_what_it_received_and_why(book: Path) -> None:
    lines = explain(book, "hello", "a1", "--at", "2026-06-01T03:00")
    assert lines[0] == (
        "a1 in hello (enabled) at 2026-06-01 03:00: inside (enrollment hello/a1/1, entered "
        "2026-06-01 00:00), at step later since 2026-06-01 00:00, waiting until 2026-06-08 00:00.")
    text = "\n".join(lines)
    assert "what it received" in text and "not delivered yet" in text
    assert "│ 2026-06-01 00:00:00 │ hi │ task │ Hi account_name 0 │ pending │" in text
    assert "entry conditions met: tier eq 'enterprise'" in text
    assert '{"tier":"enterprise"}' in text


def test_json_says_the_same_for_machines(book: Path) -> None:
    code, out, err = cswf("explain", "hello", "a1", "--json", "--root", str(book))
    assert code == 0, out + err
    found = json.loads(out)
    assert (found["at"], found["inside"], found["since"]) == (
        "2026-06-01T03:00:00", True, "2026-06-01T00:00:00")
    assert found["enrollment"]["step_name"] == "later"
    assert [(a["step_name"], a["action_type"], a["delivery"]) for a in found["actions"]] == [
        ("hi", "task", "not delivered yet")]
    assert [t["transition"] for t in found["transitions"]] == ["entered", "advanced"]
    code, out, err = cswf("explain", "hello", "a2", "--json", "--root", str(book))
    found = json.loads(out)
    assert found["reasons"] == ["entry conditions not met: tier eq 'enterprise'"]
    assert [(n["condition"], n["value"], n["holds"]) for n in found["entry"]] == [
        ("tier eq 'enterprise'", "smb", False)]


def test_the_default_tick_is_the_last_computed_one(book: Path) -> None:
    assert explain(book, "hello", "a2")[0] == (
        "a2 in hello (enabled) at 2026-06-01 03:00: not inside.")


def test_outside_shows_the_condition_that_keeps_it_out(book: Path) -> None:
    lines = explain(book, "hello", "a2", "--at", "2026-06-01T00:00")
    assert lines[:2] == ["a2 in hello (enabled) at 2026-06-01 00:00: not inside.",
                         "- entry conditions not met: tier eq 'enterprise'"]
    assert "│ tier eq 'enterprise' │ smb │ │ False │" in lines


def test_a_draft_says_it_is_a_draft_even_when_the_conditions_hold(book: Path) -> None:
    lines = explain(book, "draft", "a1", "--at", "2026-06-01T03:00")
    assert lines[:2] == [
        "a1 in draft (draft) at 2026-06-01 03:00: not inside.",
        "- the workflow is draft: nobody enters until its spec says state: enabled"]
    assert "│ tier eq 'enterprise' │ enterprise │ │ True │" in lines


def test_a_completed_participant_waits_to_stop_qualifying(book: Path) -> None:
    """Re-entry `multiple` (the default): back in only after it stopped qualifying."""
    lines = explain(book, "once", "a1", "--at", "2026-06-01T03:00")
    assert lines[:2] == [
        "a1 in once (enabled) at 2026-06-01 03:00: not inside.",
        "- completed at 2026-06-01 00:00 (reached the end of the flow); re-entry: multiple "
        "needs it to stop qualifying before it may enter again"]


def test_a_reentry_rest_is_named_with_its_end(book: Path) -> None:
    lines = explain(book, "rested", "a1", "--at", "2026-06-01T03:00")
    assert lines[1] == ("- completed at 2026-06-01 00:00 (reached the end of the flow); re-entry "
                        "rest of 3 days until 2026-06-04 00:00")


def test_a_reentry_rest_in_months_is_the_ticks_calendar_rest(book: Path) -> None:
    """The tick enters nobody before the months are over; explain says so, with its end."""
    lines = explain(book, "monthly", "a1", "--at", "2026-06-01T03:00")
    assert lines[:2] == [
        "a1 in monthly (enabled) at 2026-06-01 03:00: not inside.",
        "- completed at 2026-06-01 00:00 (reached the end of the flow); re-entry rest of "
        "3 months until 2026-09-01 00:00"]


def test_what_it_received_names_the_enrollment_when_there_are_several(book: Path) -> None:
    """Re-entry unlimited: a1 completes at 00:00 and enters again at 03:00."""
    lines = explain(book, "again", "a1", "--at", "2026-06-01T03:00")
    text = "\n".join(lines)
    assert "┃ tick ┃ enrollment ┃ step_name ┃ action_type ┃ subject ┃ status ┃ delivery ┃" in lines
    assert "│ 2026-06-01 00:00:00 │ again/a1/1 │ hi │ task │ Hi account_name 0 │ pending │" in text
    assert "│ 2026-06-01 03:00:00 │ again/a1/2 │ hi │ task │ Hi account_name 0 │ pending │" in text
    assert "│ 2026-06-01 03:00:00 │ again/a1/2 │ entered │ hi │" in text  # and the transitions
    one = explain(book, "hello", "a1", "--at", "2026-06-01T03:00")  # one enrollment: no column
    assert not any("enrollment │" in line for line in one)


def test_unknown_names_are_one_line(book: Path) -> None:
    _, line = one_error(["explain", "helo", "a1", "--root", str(book)])
    assert line.endswith("no workflow 'helo' — did you mean 'hello'?")
    _, line = one_error(["explain", "hello", "a11", "--root", str(book)])
    assert line == ("error: a11: no participant 'a11' in hello's facts at 2026-06-01 03:00 nor "
                    "in its history — did you mean 'a1'?")
    _, line = one_error(["explain", "hello", "a1", "--at", "yesterday", "--root", str(book)])
    assert "--at" in line


def test_before_any_tick_it_asks_for_one(tmp_path: Path) -> None:
    root = make_project(tmp_path, SPECS)
    _, line = one_error(["explain", "hello", "a1", "--root", str(root)])
    assert line.startswith("error: ") and "cswf.duckdb: no working database yet" in line
