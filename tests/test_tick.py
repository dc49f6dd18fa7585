"""Scenarios of the tick engine, each readable as a story of days."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import polars as pl
import pytest
from engine_harness import START, Run, facts, spec

from cswf.engine.frames import ENROLLMENT_SCHEMA, empty
from cswf.engine.tick import FactsError, run_tick

RENEWAL = """
name: renewal
owner: {{field: csm}}
state: enabled
entry: {{field: days_to_renewal, op: between, value: [0, 90]}}
reentry: {reentry}
steps:
  - name: checklist
    actions: [{{type: task, title: "Renewal prep for {{{{ account_name }}}}", due_days: 5}}]
  - name: wait
    delay: {{days: 10}}
  - name: handoff
    actions: [{{type: task, title: "Hand off {{{{ account_name }}}}"}}]
"""


def renewal(reentry: str) -> Run:
    return Run([spec(RENEWAL.format(reentry=reentry))])


def account(d2r: int, **extra: object) -> dict:
    return {"participant_id": "A", "account_name": "Acme", "csm": "c@example.com",
            "days_to_renewal": d2r, **extra}


# Day by day: qualifies for 20 days (enters day 0, completes day 10, still qualifies until day
# 19), renews on day 20 (400 days to go: stops qualifying), qualifies again from day 25.
RENEWAL_STORY = [account(60 - d) for d in range(20)] + [account(400)] * 5 + \
    [account(80)] * 10


def test_multiple_reentry_waits_until_the_participant_stopped_qualifying() -> None:
    run = renewal("{mode: multiple}")
    run.days([[row] for row in RENEWAL_STORY])
    assert run.entered_days("A") == ["06-01", "06-26"]
    assert ("06-11", "completed", "(end of flow)") in run.transitions("A")


def test_multiple_reentry_counts_the_minimum_days_from_the_exit() -> None:
    # Completed on day 10; stopped qualifying on day 20; 20 days after the exit is day 30.
    run = renewal("{mode: multiple, min_days_since_exit: 20}")
    run.days([[row] for row in RENEWAL_STORY])
    assert run.entered_days("A") == ["06-01", "07-01"]


def test_reentry_in_calendar_months_counts_from_the_exit_to_the_same_day_or_the_months_end(
) -> None:
    # Enters Jan 21, completes Jan 31 (after the 10-day delay); a month after Jan 31 is Feb 28.
    run = renewal("{mode: unlimited, min_months_since_exit: 1}")
    run.days([[account(60)]] * 40, start=datetime(2026, 1, 21))
    assert run.entered_days("A") == ["01-21", "02-28"]
    assert ("01-31", "completed", "(end of flow)") in run.transitions("A")


def test_none_never_reenters() -> None:
    run = renewal("{mode: none}")
    run.days([[row] for row in RENEWAL_STORY])
    assert run.entered_days("A") == ["06-01"]


def test_unlimited_reenters_whenever_qualifying_after_the_minimum_days() -> None:
    run = renewal("{mode: unlimited, min_days_since_exit: 3}")
    run.days([[row] for row in RENEWAL_STORY])
    # Completes on day 10 (06-11) and still qualifies: back on day 13 (06-14). Completes again
    # on day 23 (06-24) while renewed; qualifies from day 25, 3 days after the exit is day 26.
    assert run.entered_days("A") == ["06-01", "06-14", "06-27"]
    numbers = run.actions()["action_id"].str.extract(r"renewal/A/(\d+)/").unique().sort()
    assert numbers.to_list() == ["1", "2", "3"]


def test_actions_land_on_schedule_with_deterministic_ids() -> None:
    run = renewal("{mode: none}")
    run.days([[row] for row in RENEWAL_STORY[:12]])
    emitted = run.actions().select("action_id", "tick", "subject", "due_at", "assignee")
    assert emitted.rows() == [
        ("renewal/A/1/s0.a0", START, "Renewal prep for Acme", START + timedelta(days=5),
         "c@example.com"),
        ("renewal/A/1/s2.a0", START + timedelta(days=10), "Hand off Acme",
         START + timedelta(days=13), "c@example.com"),
    ]


EXIT_MID_DELAY = """
name: onboarding
owner: {group: cs_team}
state: enabled
entry: {field: stage, op: eq, value: onboarding}
exit: {field: stage, op: eq, value: churned}
steps:
  - name: welcome
    actions: [{type: email, to: email, subject: "Welcome", body: "Hello {{ name }}"}]
  - name: wait_a_week
    delay: {days: 7}
  - name: check_in
    actions: [{type: task, title: "Check in"}]
"""


def test_exit_conditions_act_immediately_even_mid_delay() -> None:
    run = Run([spec(EXIT_MID_DELAY)])
    row = {"participant_id": "A", "name": "Ann", "email": "ann@example.org"}
    stages = ["onboarding"] * 3 + ["churned"] * 8
    run.days([[{**row, "stage": s}] for s in stages])
    assert run.transitions("A") == [
        ("06-01", "entered", "welcome"),
        ("06-01", "advanced", "welcome"),
        ("06-04", "exited", "wait_a_week"),
    ]
    assert run.actions()["action_type"].to_list() == ["email"]
    assert run.row("onboarding", "A")["close_reason"] == (
        "exit conditions met: stage eq 'churned'"
    )


def test_entry_is_refused_while_the_exit_conditions_hold() -> None:
    run = Run([spec(EXIT_MID_DELAY.replace("value: churned", "value: onboarding"))])
    run.tick(START, [{"participant_id": "A", "name": "A", "email": "a@example.org",
                      "stage": "onboarding"}])
    assert run.transitions() == []


OBJECTIVE = """
name: adoption
owner: {{field: csm}}
state: enabled
entry: {{field: utilisation, op: lt, value: 40}}
objective:
  condition: {{field: utilisation, op: gt, value: 40}}
  on_met: {on_met}
steps:
  - name: tips
    actions: [{{type: task, title: tips}}]
  - name: wait
    delay: {{days: 5}}
  - name: review
    actions: [{{type: task, title: review}}]
"""


def utilisation(values: list[float]) -> list[list[dict]]:
    return [[{"participant_id": "A", "csm": "c@example.com", "utilisation": v}] for v in values]


def test_objective_met_exits_at_once_when_the_spec_says_exit() -> None:
    run = Run([spec(OBJECTIVE.format(on_met="exit"))])
    run.days(utilisation([20, 30, 50, 50, 50, 50, 50, 50]))
    assert run.transitions("A") == [
        ("06-01", "entered", "tips"),
        ("06-01", "advanced", "tips"),
        ("06-03", "objective_met", "wait"),
        ("06-03", "exited", "wait"),
    ]
    row = run.row("adoption", "A")
    assert (row["status"], row["objective_met_at"]) == ("exited", START + timedelta(days=2))


def test_objective_met_is_recorded_and_the_flow_goes_on_when_the_spec_says_stay() -> None:
    run = Run([spec(OBJECTIVE.format(on_met="stay"))])
    run.days(utilisation([20, 30, 50, 50, 50, 50, 50, 50]))
    kinds = [(d, k) for d, k, _ in run.transitions("A")]
    assert kinds == [("06-01", "entered"), ("06-01", "advanced"), ("06-03", "objective_met"),
                     ("06-06", "advanced"), ("06-06", "advanced"), ("06-06", "completed")]
    row = run.row("adoption", "A")
    assert (row["status"], row["objective_met_at"]) == ("completed", START + timedelta(days=2))


def test_a_participant_already_at_the_objective_does_not_enter_an_exit_on_met_workflow() -> None:
    text = OBJECTIVE.format(on_met="exit").replace("op: lt, value: 40", "op: lt, value: 60")
    run = Run([spec(text)])
    run.tick(START, utilisation([50])[0])
    assert run.transitions() == []


def lifecycle(state: str) -> str:
    return EXIT_MID_DELAY.replace("state: enabled", f"state: {state}")


def onboarding_rows(*ids: str) -> list[dict]:
    return [{"participant_id": i, "name": i, "email": f"{i}@example.org", "stage": "onboarding"}
            for i in ids]


def test_paused_admits_no_one_new_but_lets_participants_finish() -> None:
    run = Run([spec(lifecycle("enabled"))])
    run.tick(START, onboarding_rows("A"))
    run.workflows = [spec(lifecycle("paused"))]
    run.days([onboarding_rows("A", "B")] * 8, start=START + timedelta(days=1))
    assert run.entered_days("B") == []
    assert [k for _, k, _ in run.transitions("A")][-1] == "completed"


def test_disabling_exits_everyone_and_reenabling_starts_them_from_the_top() -> None:
    run = Run([spec(lifecycle("enabled"))])
    run.tick(START, onboarding_rows("A"))
    run.workflows = [spec(lifecycle("disabled"))]
    run.tick(START + timedelta(days=1), onboarding_rows("A", "B"))
    row = run.row("onboarding", "A")
    assert (row["status"], row["close_reason"]) == ("exited", "workflow disabled")
    assert run.entered_days("B") == []
    run.workflows = [spec(lifecycle("enabled"))]
    run.tick(START + timedelta(days=2), onboarding_rows("A", "B"))
    assert run.entered_days("A") == ["06-01", "06-03"]
    assert run.row("onboarding", "A")["step_name"] == "wait_a_week"


def test_a_delay_in_months_ends_on_the_same_day_next_month_or_the_last_day() -> None:
    text = EXIT_MID_DELAY.replace("delay: {days: 7}", "delay: {months: 1}")
    run = Run([spec(text)])
    run.tick(datetime(2026, 1, 31, 6), onboarding_rows("A"))
    assert run.row("onboarding", "A")["wait_until"] == datetime(2026, 2, 28, 6)


def test_a_template_failing_for_one_participant_fails_only_that_action() -> None:
    text = """
name: broken
owner: {user: ops@example.com}
state: enabled
entry: {field: seats, op: ge, value: 0}
steps:
  - name: notes
    actions:
      - {type: task, title: "Per seat: {{ 100 / seats }}"}
      - {type: task, title: "Always fine"}
"""
    run = Run([spec(text)])
    result = run.tick(START, [{"participant_id": "A", "seats": 0},
                              {"participant_id": "B", "seats": 4}])
    outcome = result.actions.select("action_id", "status", "subject", "error").rows()
    assert outcome == [
        ("broken/A/1/s0.a0", "render_failed", None, "ZeroDivisionError: division by zero"),
        ("broken/A/1/s0.a1", "pending", "Always fine", None),
        ("broken/B/1/s0.a0", "pending", "Per seat: 25.0", None),
        ("broken/B/1/s0.a1", "pending", "Always fine", None),
    ]


def test_entered_transition_carries_the_reason_and_the_evidence() -> None:
    run = renewal("{mode: none}")
    result = run.tick(START, [account(45)])
    entered = result.transitions.filter(pl.col("transition") == "entered").row(0, named=True)
    assert entered["reason"] == "entry conditions met: days_to_renewal between [0, 90]"
    assert json.loads(entered["evidence"]) == {"days_to_renewal": 45}
    assert entered["version"] == run.workflows[0].version


def test_rerunning_a_tick_from_the_same_inputs_gives_identical_outputs() -> None:
    workflow = spec(RENEWAL.format(reentry="{mode: none}"))
    first = run_tick(empty(ENROLLMENT_SCHEMA), facts(START, [account(45)]), None, None,
                     [workflow], START)
    again = run_tick(empty(ENROLLMENT_SCHEMA), facts(START, [account(45)]), None, None,
                     [workflow], START)
    for a, b in ((first.state, again.state), (first.actions, again.actions),
                 (first.transitions, again.transitions)):
        assert a.equals(b)


def test_facts_must_be_one_row_per_participant_as_of_the_tick() -> None:
    workflow = spec(RENEWAL.format(reentry="{mode: none}"))
    with pytest.raises(FactsError, match="more than one row"):
        run_tick(empty(ENROLLMENT_SCHEMA), facts(START, [account(1), account(2)]), None, None,
                 [workflow], START)
    with pytest.raises(FactsError, match="not all as of"):
        run_tick(empty(ENROLLMENT_SCHEMA), facts(START, [account(1)]), None, None,
                 [workflow], START + timedelta(hours=3))


ORDERED = """
name: {name}
owner: {{field: csm}}
state: enabled
entry: {{field: days_to_renewal, op: between, value: [0, 90]}}
steps:
  - name: checklist
    actions: [{{type: task, title: "Prep for {{{{ account_name }}}}"}},
              {{type: task, title: "Call {{{{ account_name }}}}"}}]
"""


def test_a_tick_orders_its_rows_by_workflow_name_and_participant_whatever_the_priority() -> None:
    # Each workflow's rows are sorted on their own and the workflows put in name order: the
    # result must equal one sort of everything, with names that share a beginning ('a', 'a1',
    # 'a_b') and priorities that run them in another order.
    names = {"a_b": 0, "a": 1, "a1": 2}
    workflows = [spec(ORDERED.format(name=n).replace("state: enabled",
                                                       f"state: enabled\npriority: {p}"))
                 for n, p in names.items()]
    rows = [account(30, participant_id=p) for p in ("C", "A", "B")]
    first = run_tick(empty(ENROLLMENT_SCHEMA), facts(START, rows), None, None, workflows, START)
    assert first.state.select("workflow", "participant_id").rows() == [
        (w, p) for w in ("a", "a1", "a_b") for p in ("A", "B", "C")]
    assert first.actions["action_id"].to_list() == sorted(first.actions["action_id"])
    assert first.actions.height == 18
    order = {"entered": 1, "advanced": 4, "completed": 7}
    keys = [(w, p, order[t], s) for w, p, t, s in first.transitions.select(
        "workflow", "participant_id", "transition", "step").rows()]
    assert keys == sorted(keys) and len(keys) == 27


def test_an_action_step_gathers_only_the_fact_columns_its_actions_read() -> None:
    from cswf.engine.emit import _read

    workflow = spec(ORDERED.format(name="a") + """
  - name: write
    actions: [{type: email, to: contact_email, subject: "For {{ industry }}", body: "Hi"}]
""")
    columns = ("participant_id", "as_of", "account_name", "csm", "days_to_renewal", "arr",
               "industry", "contact_email")
    # templates (account_name), the workflow's owner (csm), as_of; not the condition's field
    assert _read(workflow, 0, columns) == ["as_of", "account_name", "csm"]
    # the email's recipient and its subject's field
    assert _read(workflow, 1, columns) == ["as_of", "csm", "industry", "contact_email"]


def test_one_result_combined_with_nothing_kept_is_that_result_not_sorted_again() -> None:
    from cswf.engine.tick import combine

    workflows = [spec(ORDERED.format(name=n)) for n in ("b", "a")]
    rows = [account(30, participant_id=p) for p in ("B", "A")]
    one = run_tick(empty(ENROLLMENT_SCHEMA), facts(START, rows), None, None, workflows, START)
    assert combine([one], START, empty(ENROLLMENT_SCHEMA)) is one
    both = combine([one, one.__class__(START, 0, 0, empty(ENROLLMENT_SCHEMA),
                                       one.actions.clear(), one.transitions.clear())], START)
    assert both.state.equals(one.state) and both.actions.equals(one.actions)
    assert both.transitions.equals(one.transitions)


def test_a_fact_named_like_an_outbox_column_stays_out_of_the_action_rows() -> None:
    """An action's row holds what the action fills, never a fact of the same name; a fact
    named like an id of the row (`version`) neither clashes with it nor replaces it."""

    def actions(entry: str, title: str, row: dict) -> tuple[str, list[tuple]]:
        workflow = spec(f"""
name: w
owner: {{user: csm@vendor.test}}
state: enabled
entry: {entry}
steps:
  - name: s
    actions: [{{type: task, title: "{title}"}}, {{type: webhook, text: "hi"}}]
""")
        result = Run([workflow]).tick(START, [{"participant_id": "A", **row}])
        return workflow.version, result.actions.select(
            "action_type", "recipient", "version", "subject").rows()

    version, rows = actions("{field: arr, op: gt, value: 0}", "Call {{ recipient }}",
                            {"recipient": "someone@x", "arr": 1})
    assert rows == [("task", None, version, "Call someone@x"), ("webhook", None, version, "hi")]
    version, rows = actions("{field: version, op: not_null}", "Call", {"version": "v9"})
    assert [r[2] for r in rows] == [version, version] != ["v9", "v9"]
