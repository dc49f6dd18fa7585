"""Milestones, user groups, launch options and journey stages, each as a story of days."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from engine_harness import START, Run, spec

from cswf.specs.groups import GroupsError, UserGroup, load_groups
from cswf.specs.loader import SpecErrors, parse_spec

ONBOARDING = """
name: onboarding_plan
description: Onboarding plan
owner: {group: onboarding_team}
state: enabled
entry: {field: stage, op: eq, value: onboarding}
reentry: {mode: none}
milestones:
  - {name: kickoff, trigger_days: 0, due_days: 3, subtasks: [Book the call, Send agenda]}
  - {name: first_value, trigger_days: 5, due_days: 10, owner: {user: lead@example.com}}
steps:
  - name: welcome
    actions: [{type: task, title: "Welcome {{ participant_id }}"}]
"""


def accounts(*names: str) -> list[dict]:
    return [{"participant_id": n, "stage": "onboarding"} for n in names]


def day(n: int) -> object:
    return START + timedelta(days=n)


def test_an_enrollment_gets_a_workflow_task_and_one_task_per_milestone_when_it_triggers() -> None:
    run = Run([spec(ONBOARDING)])
    run.days([accounts("ann")] * 6)
    tasks = run.actions().select("action_id", "tick", "step_name", "due_at").rows()
    assert sorted(tasks) == [
        ("onboarding_plan/ann/1/milestone.first_value", day(5), "milestone: first_value",
         day(10)),
        ("onboarding_plan/ann/1/milestone.kickoff", day(0), "milestone: kickoff", day(3)),
        ("onboarding_plan/ann/1/s0.a0", day(0), "welcome", day(3)),
        ("onboarding_plan/ann/1/workflow", day(0), "(workflow task)", day(10)),
    ]
    kickoff = run.actions().filter(pl.col("step_name") == "milestone: kickoff").row(0, named=True)
    assert json.loads(kickoff["payload"])["subtasks"] == ["Book the call", "Send agenda"]
    workflow_task = run.actions().filter(pl.col("step_name") == "(workflow task)").row(
        0, named=True)
    assert json.loads(workflow_task["payload"])["subscribers"] == ["group:onboarding_team"]
    first_value = run.actions().filter(pl.col("step_name") == "milestone: first_value").row(
        0, named=True)
    assert first_value["assignee"] == "lead@example.com"


def test_the_enrollment_knows_its_current_milestone_and_completes_when_all_are_done() -> None:
    run = Run([spec(ONBOARDING)])
    run.tick(day(0), accounts("ann"))
    row = run.row("onboarding_plan", "ann")
    # the flow (one action step) has ended, but milestones are open: still active
    assert (row["status"], row["current_milestone"], row["milestone_due_at"]) == (
        "active", "kickoff", day(3))
    run.event("onboarding_plan/ann/1/milestone.kickoff", "completed", day(2))
    run.tick(day(2), accounts("ann"))
    row = run.row("onboarding_plan", "ann")
    assert (row["status"], row["current_milestone"], row["milestones_done"]) == (
        "active", None, ["kickoff"])  # first_value has not started yet
    run.tick(day(5), accounts("ann"))
    assert run.row("onboarding_plan", "ann")["current_milestone"] == "first_value"
    run.event("onboarding_plan/ann/1/milestone.first_value", "completed", day(12))
    run.tick(day(12), accounts("ann"))
    row = run.row("onboarding_plan", "ann")
    assert (row["status"], row["milestones_done"]) == ("completed", ["kickoff", "first_value"])
    assert [(d, kind) for d, kind, _ in run.transitions("ann")] == [
        ("06-01", "entered"), ("06-01", "advanced"), ("06-01", "milestone_started"),
        ("06-03", "milestone_done"), ("06-06", "milestone_started"),
        ("06-13", "milestone_done"), ("06-13", "completed"),
    ]


def test_a_milestone_due_before_it_triggers_is_an_error() -> None:
    bad = ONBOARDING.replace("trigger_days: 5, due_days: 10", "trigger_days: 5, due_days: 2")
    with pytest.raises(SpecErrors, match="milestone 'first_value' is due \\(day 2\\) before it "
                                         "triggers \\(day 5\\)"):
        spec(bad)


def test_round_robin_hands_a_groups_tasks_out_in_turn_across_ticks() -> None:
    run = Run([spec(ONBOARDING.replace("owner: {user: lead@example.com}", ""))],
              groups={"onboarding_team": UserGroup(members=("ana", "ben", "cy"))})
    run.tick(day(0), accounts("a1", "a2"))
    run.tick(day(1), accounts("a1", "a2", "a3"))
    tasks = run.actions().filter(pl.col("action_type") == "task").sort("tick", "action_id")
    assert tasks.select("action_id", "assignee").rows() == [
        ("onboarding_plan/a1/1/milestone.kickoff", "ana"),
        ("onboarding_plan/a1/1/s0.a0", "ben"),
        ("onboarding_plan/a1/1/workflow", "cy"),
        ("onboarding_plan/a2/1/milestone.kickoff", "ana"),
        ("onboarding_plan/a2/1/s0.a0", "ben"),
        ("onboarding_plan/a2/1/workflow", "cy"),
        ("onboarding_plan/a3/1/milestone.kickoff", "ana"),
        ("onboarding_plan/a3/1/s0.a0", "ben"),
        ("onboarding_plan/a3/1/workflow", "cy"),
    ]
    assert set(tasks["owner_group"]) == {"onboarding_team"}


def test_least_loaded_gives_work_to_whoever_has_the_fewest_open_tasks() -> None:
    one_task = """
name: calls
owner: {group: support}
state: enabled
entry: {field: stage, op: eq, value: onboarding}
reentry: {mode: none}
steps:
  - name: call
    actions: [{type: task, title: "Call"}]
"""
    run = Run([spec(one_task)],
              groups={"support": UserGroup(members=("ana", "ben"), assignment="least_loaded")})
    run.tick(day(0), accounts("a1", "a2", "a3"))  # ana, ben, ana (ties: first listed)
    run.event("calls/a1/1/s0.a0", "completed", day(1))  # ana: 1 open, ben: 1 open
    run.event("calls/a3/1/s0.a0", "completed", day(1))  # ana: 0 open
    run.tick(day(1), accounts("a1", "a2", "a3", "a4", "a5", "a6"))
    assignees = run.actions().sort("tick", "action_id").select("participant_id", "assignee")
    assert assignees.rows() == [("a1", "ana"), ("a2", "ben"), ("a3", "ana"),
                                ("a4", "ana"), ("a5", "ana"), ("a6", "ben")]


def test_groups_file_errors_name_the_file_and_the_key(tmp_path) -> None:
    path = tmp_path / "user_groups.yaml"
    path.write_text("groups:\n  team:\n    members: [a, a]\n")
    with pytest.raises(GroupsError, match=r"user_groups.yaml: groups.team: members listed twice"):
        load_groups(path)
    path.write_text("groups:\n  team:\n    members: [a]\n    assignment: random\n")
    with pytest.raises(GroupsError, match=r"groups.team.assignment: Input should be"):
        load_groups(path)
    assert load_groups(tmp_path / "missing.yaml") == {}


LAUNCH = """
name: upsell_offer
owner: {user: am@example.com}
state: enabled
launch: from_now_on
entry: {field: seats_used_pct, op: ge, value: 90}
steps:
  - name: offer
    actions: [{type: task, title: "Offer more seats"}]
"""


def seats(**pct: int) -> list[dict]:
    return [{"participant_id": p, "seats_used_pct": v} for p, v in pct.items()]


def test_launch_from_now_on_skips_those_who_already_qualified() -> None:
    run = Run([spec(LAUNCH)])
    run.tick(day(0), seats(old=95, new=50))  # the launch tick: nobody is new yet
    run.tick(day(1), seats(old=95, new=92))  # new starts qualifying: enters
    assert run.entered_days("old") == [] and run.entered_days("new") == ["06-02"]


def test_launch_everyone_admits_all_who_qualify_at_once() -> None:
    run = Run([spec(LAUNCH.replace("launch: from_now_on", "launch: everyone"))])
    run.tick(day(0), seats(old=95, new=50))
    assert run.entered_days("old") == ["06-01"]


STAGED = """
name: onboarding_deadline
owner: {user: csm@example.com}
state: enabled
stage: {name: onboarding, days: 30, goal: Live with three teams}
entry:
  all:
    - {field: days_left_in_stage, op: le, value: 7}
    - {field: stage_goal, op: contains, value: three teams}
steps:
  - name: nudge
    actions: [{type: task, title: "Onboarding ends in a week"}]
"""


def staged(**started: int) -> list[dict]:
    return [{"participant_id": p, "stage": "onboarding" if p != "other" else "adoption",
             "stage_entered_on": (START - timedelta(days=d)).date()} for p, d in started.items()]


def test_days_left_in_stage_counts_down_from_the_stage_length() -> None:
    run = Run([spec(STAGED)])
    run.tick(day(0), staged(early=10, late=25, other=25))  # 20, 5 and (other stage) no days left
    assert run.entered_days("late") == ["06-01"]
    assert run.entered_days("early") == [] and run.entered_days("other") == []


def test_stage_fields_need_a_stage() -> None:
    fields = {"stage": pl.String(), "stage_entered_on": pl.Date()}
    without = STAGED.replace("stage: {name: onboarding, days: 30, goal: Live with three teams}\n",
                             "")
    with pytest.raises(SpecErrors, match=r"entry.all.0.field: 'days_left_in_stage' exists only in "
                                         "a workflow with a journey stage"):
        parse_spec(without, Path("onboarding_deadline.yaml"), fields)
    with pytest.raises(SpecErrors, match="stage: a journey stage reads the fact field "
                                         "'stage_entered_on', which the facts do not have"):
        parse_spec(STAGED, Path("onboarding_deadline.yaml"), {"stage": pl.String()})
    assert parse_spec(STAGED, Path("onboarding_deadline.yaml"), fields).fact_fields() == {
        "stage", "stage_entered_on"}


ON_ERROR = """
name: webhook_then_wait
owner: {user: csm@example.com}
state: enabled
entry: {field: seats_used_pct, op: ge, value: 0}
steps:
  - name: notify
    actions:
      - {type: email, to: email, subject: Hi, body: Hello, on_error: exit}
      - {type: email, to: email, subject: Also, body: Hello, on_error: continue}
  - name: later
    delay: {days: 5}
  - name: follow_up
    actions: [{type: task, title: "Follow up"}]
"""


def test_on_error_exit_leaves_at_the_next_tick_and_continue_goes_on() -> None:
    run = Run([spec(ON_ERROR)])
    rows = [{"participant_id": p, "seats_used_pct": 1, "email": f"{p}@x.org"} for p in ("a", "b")]
    run.tick(day(0), rows)
    run.event("webhook_then_wait/a/1/s0.a0", "failed", day(0) + timedelta(hours=1))
    run.event("webhook_then_wait/b/1/s0.a1", "failed", day(0) + timedelta(hours=1))
    run.tick(day(1), rows)
    assert run.row("webhook_then_wait", "a")["status"] == "exited"
    assert "failed to deliver and its on_error is exit" in run.row(
        "webhook_then_wait", "a")["close_reason"]
    assert run.row("webhook_then_wait", "b")["status"] == "active"


DELAYED = """
name: check_in_later
owner: {user: csm@example.com}
state: enabled
entry: {field: seats_used_pct, op: ge, value: 0}
steps:
  - name: hello
    actions: [{type: task, title: "Hello"}]
  - name: three_days
    delay: {days: 3}
  - name: check_in
    actions: [{type: task, title: "Check in"}]
"""


@pytest.mark.parametrize(
    ("zone", "start", "lands"),
    [
        # 09:00 EST on the Friday before DST starts (Sun 2026-03-08) -> Monday 09:00 EDT.
        ("America/New_York", datetime(2026, 3, 6, 14), datetime(2026, 3, 9, 13)),
        # London, last Sunday of March (2026-03-29): Friday 09:00 GMT -> Monday 09:00 BST.
        ("Europe/London", datetime(2026, 3, 27, 9), datetime(2026, 3, 30, 8)),
        # London, last Sunday of October (2026-10-25): Friday 09:00 BST -> Monday 09:00 GMT.
        ("Europe/London", datetime(2026, 10, 23, 8), datetime(2026, 10, 26, 9)),
        # Lord Howe, a 30-minute shift: DST ends on the first Sunday of April (2026-04-05),
        # +11:00 -> +10:30: Friday 09:00 (22:00 UTC) -> Monday 09:00 (22:30 UTC).
        ("Australia/Lord_Howe", datetime(2026, 4, 2, 22), datetime(2026, 4, 5, 22, 30)),
        # and starts on the first Sunday of October (2026-10-04), +10:30 -> +11:00.
        ("Australia/Lord_Howe", datetime(2026, 10, 1, 22, 30), datetime(2026, 10, 4, 22)),
    ],
)
def test_day_delays_land_at_the_same_local_time_across_a_dst_change(
    zone: str, start: datetime, lands: datetime
) -> None:
    """A 3-day delay started at 09:00 local on a Friday ends at 09:00 local on the Monday,
    whichever way the clocks moved that weekend and by how much; UTC and no zone keep 72 h."""
    run = Run([spec(DELAYED)])
    rows = [{"participant_id": p, "seats_used_pct": 1, "time_zone": z} for p, z in
            (("local", zone), ("utc", "UTC"), ("nowhere", None))]
    run.tick(start, rows)
    assert run.row("check_in_later", "local")["wait_until"] == lands
    assert run.row("check_in_later", "utc")["wait_until"] == start + timedelta(days=3)
    assert run.row("check_in_later", "nowhere")["wait_until"] == start + timedelta(days=3)

    def checked_in() -> list[str]:
        return sorted(run.actions().filter(pl.col("step_name") == "check_in")["participant_id"])

    run.tick(lands - timedelta(minutes=30), rows)
    assert "local" not in checked_in()
    run.tick(lands, rows)
    assert "local" in checked_in()


def test_groups_with_different_assignment_rules_share_one_tick() -> None:
    run = Run([spec(ONBOARDING.replace("owner: {user: lead@example.com}",
                                       "owner: {group: leads}"))],
              groups={"onboarding_team": UserGroup(members=("ana", "ben")),
                      "leads": UserGroup(members=("lee",), assignment="least_loaded")})
    run.tick(day(0), accounts("a1", "a2"))
    run.tick(day(5), accounts("a1", "a2", "a3"))  # first_value (leads) and a3 (the team)
    by_task = dict(run.actions().select("action_id", "assignee").rows())
    assert by_task == {
        "onboarding_plan/a1/1/milestone.kickoff": "ana", "onboarding_plan/a1/1/s0.a0": "ben",
        "onboarding_plan/a1/1/workflow": "ana", "onboarding_plan/a2/1/milestone.kickoff": "ben",
        "onboarding_plan/a2/1/s0.a0": "ana", "onboarding_plan/a2/1/workflow": "ben",
        "onboarding_plan/a1/1/milestone.first_value": "lee",
        "onboarding_plan/a2/1/milestone.first_value": "lee",
        "onboarding_plan/a3/1/milestone.kickoff": "ana", "onboarding_plan/a3/1/s0.a0": "ben",
        "onboarding_plan/a3/1/workflow": "ana",
    }


def test_an_entry_edit_leaves_those_inside_alone_and_a_running_delay_keeps_its_length() -> None:
    run = Run([spec(DELAYED)])
    rows = [{"participant_id": "a", "seats_used_pct": 1}]
    run.tick(day(0), rows)
    before = run.row("check_in_later", "a")["version"]
    edited = DELAYED.replace("value: 0}", "value: 50}").replace("days: 3", "days: 1")
    run.workflows = [spec(edited)]  # a non-structural edit: entry and a delay length
    run.tick(day(1), rows)
    row = run.row("check_in_later", "a")
    # still inside although it no longer meets the entry conditions; the delay it is in
    # keeps the length it started with (3 days), now under the new version
    assert (row["status"], row["step_name"], row["wait_until"]) == ("active", "three_days",
                                                                     day(3))
    assert row["version"] != before
    assert run.transitions("a")[-1] == ("06-02", "version_changed", "three_days")
