"""Waits, branches and the rules of a flow, each as a story of days."""

from __future__ import annotations

from datetime import timedelta

import pytest
from engine_harness import START, Run, spec

from cswf.specs.loader import SpecErrors

NPS_SPLIT = """
name: nps_follow_up
owner: {field: csm}
state: enabled
entry: {field: nps, op: not_null}
reentry: {mode: none}
steps:
  - name: nps_split
    branch:
      - name: promoter
        when: {field: nps, op: ge, value: 9}
        steps:
          - name: ask_for_review
            actions: [{type: email, to: email, subject: "Thanks!", body: "Review us?"}]
      - name: passive
        when: {field: nps, op: between, value: [7, 8]}
        steps:
          - name: share_tips
            actions: [{type: email, to: email, subject: "Tips", body: "Here are tips"}]
      - name: detractor
        when: {field: nps, op: le, value: 6}
        steps:
          - name: recovery_call
            actions: [{type: task, title: "Call {{ participant_id }}", priority: urgent}]
          - name: give_it_a_week
            delay: {days: 7}
          - name: check_again
            actions: [{type: task, title: "Check recovery"}]
  - name: log_it
    actions: [{type: field_update, field: nps_followed_up, value: "yes"}]
"""


def people(**nps: int | None) -> list[dict]:
    return [{"participant_id": p, "nps": n, "csm": "c@example.com", "email": f"{p}@example.org"}
            for p, n in nps.items()]


def test_fastenr_nps_split_takes_the_first_check_that_holds_then_goes_on() -> None:
    run = Run([spec(NPS_SPLIT)])
    run.days([people(ann=10, bob=7, cat=3)] * 9)
    steps = run.actions().select("participant_id", "step_name", "tick").rows()
    day = lambda n: START + timedelta(days=n)  # noqa: E731
    assert sorted(steps) == [
        ("ann", "ask_for_review", day(0)), ("ann", "log_it", day(0)),
        ("bob", "log_it", day(0)), ("bob", "share_tips", day(0)),
        ("cat", "check_again", day(7)), ("cat", "log_it", day(7)),
        ("cat", "recovery_call", day(0)),
    ]
    reasons = {r for r in run.results[0].transitions["reason"].to_list() if "branch" in r}
    assert reasons == {"branch 'nps_split' took path 'promoter'",
                       "branch 'nps_split' took path 'passive'",
                       "branch 'nps_split' took path 'detractor'"}


def test_when_no_check_holds_the_flow_continues_after_the_branch() -> None:
    text = NPS_SPLIT.replace("entry: {field: nps, op: not_null}",
                             "entry: {field: csm, op: not_null}")
    run = Run([spec(text)])
    run.tick(START, people(dan=None))
    assert run.actions().select("step_name").to_series().to_list() == ["log_it"]
    assert "no check held" in " ".join(run.results[0].transitions["reason"].to_list())


NOT_OPENED = """
name: check_in
owner: {field: csm}
state: enabled
entry: {field: nps, op: not_null}
reentry: {mode: none}
exit: {field: nps, op: eq, value: 0}
steps:
  - name: hello
    actions:
      - {type: email, name: check_in_email, to: email, subject: "How is it going?", body: "Hi"}
  - name: wait_for_open
    wait: {action: hello.check_in_email, result: opened, max_days: 3}
  - name: opened_or_not
    branch:
      - name: opened
        action: hello.check_in_email
        result: opened
        steps:
          - name: thank
            actions: [{type: task, title: "Follow up on the open"}]
      - name: not_opened
        action: hello.0
        result: not_opened
        steps:
          - name: call
            actions: [{type: task, title: "Call: email not opened", priority: high}]
"""


def test_catalyst_email_not_opened_leads_to_a_call_task() -> None:
    run = Run([spec(NOT_OPENED)])
    run.tick(START, people(ann=8, bob=8))
    run.event("check_in/ann/1/s0.a0", "opened", START + timedelta(hours=30))
    run.days([people(ann=8, bob=8)] * 5, start=START + timedelta(days=1))
    tasks = run.actions().filter(run.actions()["action_type"] == "task")
    assert tasks.select("participant_id", "subject", "tick").rows() == [
        ("ann", "Follow up on the open", START + timedelta(days=2)),
        ("bob", "Call: email not opened", START + timedelta(days=3)),
    ]
    reasons = [r for _, kind, r in run.transitions() if kind == "advanced"]
    assert reasons.count("wait_for_open") == 2
    assert run.row("check_in", "ann")["status"] == "completed"


def test_an_exit_condition_acts_in_the_middle_of_a_wait() -> None:
    run = Run([spec(NOT_OPENED)])
    run.tick(START, people(ann=8))
    run.tick(START + timedelta(days=1), people(ann=0))
    row = run.row("check_in", "ann")
    assert (row["status"], row["step_name"]) == ("exited", "wait_for_open")


HEALTH_WAIT = """
name: recovery
owner: {field: csm}
state: enabled
entry: {field: health, op: lt, value: 50}
reentry: {mode: none}
steps:
  - name: alert
    actions: [{type: task, title: "Health is low"}]
  - name: until_recovered
    wait:
      until: {field: health, op: ge, value: 70}
      max_days: 14
  - name: close_out
    actions: [{type: task, title: "Close the recovery"}]
"""


def health(value: float) -> list[dict]:
    return [{"participant_id": "acme", "health": value, "csm": "c@example.com"}]


def test_a_wait_on_a_fact_condition_ends_when_it_holds() -> None:
    run = Run([spec(HEALTH_WAIT)])
    run.days([health(40), health(55), health(65), health(72), health(80)])
    closed = run.actions().filter(run.actions()["step_name"] == "close_out")
    assert closed["tick"].to_list() == [START + timedelta(days=3)]


def test_a_wait_ends_at_its_maximum_anyway() -> None:
    run = Run([spec(HEALTH_WAIT)])
    run.days([health(40)] * 16)
    closed = run.actions().filter(run.actions()["step_name"] == "close_out")
    assert closed["tick"].to_list() == [START + timedelta(days=14)]
    assert ("06-15", "advanced", "until_recovered") in run.transitions()


def test_nested_branches_jump_forward_to_the_right_place() -> None:
    text = """
name: nested
owner: {group: cs}
state: enabled
entry: {field: score, op: ge, value: 0}
steps:
  - name: outer
    branch:
      - name: high
        when: {field: score, op: ge, value: 50}
        steps:
          - name: inner
            branch:
              - name: very_high
                when: {field: score, op: ge, value: 90}
                steps: [{name: vip, actions: [{type: task, title: vip}]}]
          - name: after_inner
            actions: [{type: task, title: after inner}]
      - name: low
        when: {field: score, op: lt, value: 50}
        steps: [{name: nurture, actions: [{type: task, title: nurture}]}]
  - name: last
    actions: [{type: task, title: last}]
"""
    run = Run([spec(text)])
    run.tick(START, [{"participant_id": p, "score": s} for p, s in
                     (("a", 95.0), ("b", 60.0), ("c", 10.0))])
    by_person = {}
    for person, subject in run.actions().select("participant_id", "subject").rows():
        by_person.setdefault(person, []).append(subject)
    assert by_person == {"a": ["vip", "after inner", "last"], "b": ["after inner", "last"],
                         "c": ["nurture", "last"]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("wait: {action: hello.check_in_email, result: opened, max_days: 3}",
          "wait: {action: hello.nothing, result: opened, max_days: 3}"),
         "check_in.yaml: steps.1.wait.action: 'hello.nothing' names no action that runs "
         "earlier on this path; earlier actions: hello.0, hello.check_in_email"),
        (("result: not_opened", "result: completed"),
         "check_in.yaml: steps.2.branch.1.result: 'completed' is not a result of an email; "
         "results: sent, delivered, opened, clicked, replied, bounced, dropped, not_delivered, "
         "not_opened, not_clicked, not_replied, approved, rejected, not_actioned"),
        (("  - name: opened_or_not\n", "  - name: pause\n    delay: {days: 1}\n"
                                        "  - name: opened_or_not\n"),
         "check_in.yaml: steps.2: delays cannot be stacked: step 'pause' directly follows "
         "wait 'wait_for_open'"),
        (("- name: call", "- name: thank"),
         "check_in.yaml: steps.2.branch.1.steps.0.name: step name 'thank' is also used at "
         "steps.2.branch.0.steps.0"),
    ],
)
def test_flow_rules_are_checked_with_the_path(change: tuple[str, str], message: str) -> None:
    with pytest.raises(SpecErrors) as raised:
        spec(NOT_OPENED.replace(*change))
    assert [str(e) for e in raised.value.errors] == [message]


def test_a_branch_holds_at_most_30_steps() -> None:
    many = "".join(f"          - name: s{i}\n            actions: [{{type: task, title: t}}]\n"
                   for i in range(31))
    text = NPS_SPLIT.replace(
        "          - name: ask_for_review\n            actions: [{type: email, to: email, "
        'subject: "Thanks!", body: "Review us?"}]\n', many)
    with pytest.raises(SpecErrors) as raised:
        spec(text)
    assert [str(e) for e in raised.value.errors] == [
        "nps_follow_up.yaml: steps.0.branch.0.steps: a branch holds at most 30 steps; this one "
        "has 31"]


def test_a_wait_satisfied_at_a_tick_moves_on_from_that_tick() -> None:
    # Regression (found by the replay property test): the wait ends at the tick that sees the
    # condition hold, and the branch after it runs in the same tick.
    text = HEALTH_WAIT.replace("  - name: close_out\n    actions",
                               "  - name: check\n    branch:\n      - name: fine\n"
                               "        when: {field: health, op: ge, value: 70}\n"
                               "        steps: []\n  - name: close_out\n    actions")
    run = Run([spec(text)])
    run.days([health(40), health(75)])
    assert run.row("recovery", "acme")["status"] == "completed"


def competing(name: str, priority: int, eligibility: str = "") -> str:
    return f"""
name: {name}
owner: {{group: cs}}
priority: {priority}
state: enabled
entry: {{field: score, op: lt, value: 50}}
{eligibility}
steps:
  - name: touch
    actions: [{{type: task, title: "{name}"}}]
  - name: wait_a_while
    delay: {{days: 10}}
"""


def entered(run: Run) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for result in run.results:
        for workflow, person in result.transitions.filter(
            result.transitions["transition"] == "entered"
        ).select("workflow", "participant_id").rows():
            out.setdefault(person, []).append(workflow)
    return out


def test_by_default_a_participant_enters_every_workflow_it_qualifies_for() -> None:
    run = Run([spec(competing("rescue", 1)), spec(competing("nurture", 2))])
    run.tick(START, [{"participant_id": "a", "score": 10}])
    assert entered(run) == {"a": ["nurture", "rescue"]}


def test_eligibility_none_keeps_participants_out_of_later_workflows_by_priority() -> None:
    rule = "eligibility: {others: none}"
    run = Run([spec(competing("rescue", 1, rule)), spec(competing("nurture", 2))])
    run.tick(START, [{"participant_id": "a", "score": 10}])
    assert entered(run) == {"a": ["rescue"]}
    # Priority decides: the same rule on the lower-priority workflow does not stop the other.
    run = Run([spec(competing("rescue", 1)), spec(competing("nurture", 2, rule))])
    run.tick(START, [{"participant_id": "a", "score": 10}])
    assert entered(run) == {"a": ["nurture", "rescue"]}


def test_eligibility_all_but_a_list_applies_while_inside() -> None:
    rule = "eligibility: {others: all_but, except: [nurture]}"
    run = Run([spec(competing("rescue", 1, rule)), spec(competing("nurture", 2)),
               spec(competing("upsell", 3))])
    run.tick(START, [{"participant_id": "a", "score": 10}])
    assert entered(run) == {"a": ["rescue", "upsell"]}
    # Already inside rescue at the next tick: still kept out of nurture.
    run.tick(START + timedelta(days=1), [{"participant_id": "a", "score": 10}])
    assert entered(run) == {"a": ["rescue", "upsell"]}


def test_all_but_needs_a_list() -> None:
    with pytest.raises(SpecErrors, match="list the workflows in except exactly when others is"):
        spec(competing("rescue", 1, "eligibility: {others: all_but}"))


def deploy(run: Run, at, rows, *requests: tuple[str, str, str]):
    import polars as pl
    from engine_harness import facts

    from cswf.engine.tick import run_tick

    asked = pl.DataFrame(list(requests), schema=["workflow", "participant_id", "requested_by"],
                         orient="row")
    result = run_tick(run.state, facts(at, rows), run.prev, None, run.workflows, at,
                      deploys=asked)
    run.state, run.prev = result.state, facts(at, rows)
    run.results.append(result)
    return result.transitions.select("participant_id", "transition", "reason").rows()


def test_manual_deploy_needs_entry_conditions_unless_manual_entry_is_allowed() -> None:
    text = competing("rescue", 1)
    run = Run([spec(text)])
    outcome = deploy(run, START, [{"participant_id": "a", "score": 80}],
                     ("rescue", "a", "ann@example.com"))
    assert outcome == [("a", "deploy_refused", "manual deploy by ann@example.com refused: entry "
                                                "conditions not met and the workflow does not "
                                                "allow manual entry")]
    run = Run([spec(text.replace("state: enabled", "state: enabled\nmanual_entry: true"))])
    outcome = deploy(run, START, [{"participant_id": "a", "score": 80}],
                     ("rescue", "a", "ann@example.com"))
    assert outcome[0] == ("a", "entered", "manual deploy by ann@example.com")
    assert run.row("rescue", "a")["status"] == "active"


def test_a_deploy_for_someone_inside_is_refused_never_a_second_enrollment() -> None:
    run = Run([spec(competing("rescue", 1))])
    run.tick(START, [{"participant_id": "a", "score": 10}])
    outcome = deploy(run, START + timedelta(days=1), [{"participant_id": "a", "score": 10}],
                     ("rescue", "a", "bob"), ("rescue", "ghost", "bob"))
    assert outcome == [
        ("a", "deploy_refused", "manual deploy by bob refused: already inside this workflow"),
        ("ghost", "deploy_refused",
         "manual deploy by bob refused: the participant is not in the facts"),
    ]
    assert run.row("rescue", "a")["enrollment_number"] == 1


def test_a_paused_workflow_refuses_manual_deploys() -> None:
    run = Run([spec(competing("rescue", 1).replace("state: enabled", "state: paused"))])
    outcome = deploy(run, START, [{"participant_id": "a", "score": 10}], ("rescue", "a", "bob"))
    assert outcome == [("a", "deploy_refused", "manual deploy by bob refused: the workflow is "
                                               "paused: it admits no one new")]


def test_with_auto_deploy_off_only_manual_deploys_enter() -> None:
    text = competing("rescue", 1).replace("state: enabled", "state: enabled\nauto_deploy: false")
    run = Run([spec(text)])
    rows = [{"participant_id": "a", "score": 10}, {"participant_id": "b", "score": 10},
            {"participant_id": "c", "score": 90}]
    run.tick(START, rows)  # a and b meet the entry conditions: nobody enters by them
    assert entered(run) == {}
    outcome = deploy(run, START + timedelta(days=1), rows, ("rescue", "a", "ann"),
                     ("rescue", "c", "ann"))
    assert [row for row in outcome if row[1] != "advanced"] == [
        ("a", "entered", "manual deploy by ann"),
        ("c", "deploy_refused", "manual deploy by ann refused: entry conditions not met and "
                                "the workflow does not allow manual entry"),
    ]
    run.tick(START + timedelta(days=2), rows)
    assert entered(run) == {"a": ["rescue"]}


def test_with_auto_deploy_off_entry_is_optional_and_every_deploy_may_enter() -> None:
    text = competing("rescue", 1).replace("entry: {field: score, op: lt, value: 50}",
                                          "auto_deploy: false")
    run = Run([spec(text)])
    outcome = deploy(run, START, [{"participant_id": "c", "score": 90}], ("rescue", "c", "ann"))
    assert outcome[0] == ("c", "entered", "manual deploy by ann")
    with pytest.raises(SpecErrors, match="an enabled workflow needs entry conditions \\(or "
                                         "auto_deploy: false, for manual deploys only\\)"):
        spec(competing("rescue", 1).replace("entry: {field: score, op: lt, value: 50}", ""))


def test_webhook_and_notification_actions_render_their_text_and_name_the_endpoint() -> None:
    import json

    slack = """
name: churn_signal
owner: {user: csm@example.com}
state: enabled
entry: {field: nps, op: le, value: 6}
steps:
  - name: tell_the_team
    actions:
      - {type: notification, text: "Detractor {{ participant_id }} (NPS {{ nps }})",
         endpoint: cs_channel}
      - {type: webhook, text: "open a ticket for {{ participant_id }}", on_error: continue}
  - name: wait_for_it
    wait: {action: tell_the_team.0, result: sent, max_days: 1}
"""
    run = Run([spec(slack)])
    run.tick(START, people(cat=3))
    rows = run.actions().sort("action_index").select("action_type", "subject", "payload",
                                                     "on_error").rows()
    assert [(t, s, json.loads(p), e) for t, s, p, e in rows] == [
        ("notification", "Detractor cat (NPS 3)", {"endpoint": "cs_channel"}, "retry"),
        ("webhook", "open a ticket for cat", {"endpoint": None}, "continue"),
    ]


NUDGE = """
name: nudge
owner: {field: csm}
state: enabled
entry: {field: nps, op: not_null}
reentry: {mode: none}
steps:
  - name: hello
    actions: [{type: task, title: "Hello"}]
  - name: six_hours
    delay: {hours: 6}
  - name: again
    actions: [{type: task, title: "Again"}]
"""


@pytest.mark.parametrize(("every", "second_at"), [
    (timedelta(hours=3), timedelta(hours=6)),  # hourly-ish ticks: exactly six hours later
    (timedelta(days=1), timedelta(days=1)),  # daily ticks: at the first tick after six hours
])
def test_a_delay_in_hours_ends_at_the_first_tick_at_or_after_it(
        every: timedelta, second_at: timedelta) -> None:
    run = Run([spec(NUDGE)])
    run.days([people(ann=5)] * 9, step=every)
    sent = run.actions().select("step_name", "tick").rows()
    assert sent == [("hello", START), ("again", START + second_at)]
    reasons = [r for result in run.results for r in result.transitions["reason"].to_list()]
    assert "delay 'six_hours' (6 hours) elapsed" in reasons


def test_a_delay_names_one_unit() -> None:
    with pytest.raises(SpecErrors, match="a delay needs exactly one of: hours, days, months"):
        spec(NUDGE.replace("{hours: 6}", "{hours: 6, days: 1}"))
