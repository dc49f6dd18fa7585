"""Email options in the spec: approval before sending (and its results in waits and
branches), and the sender (`from`, `reply_to`): what the outbox carries, what is refused."""

from __future__ import annotations

import json
from datetime import timedelta

import polars as pl
import pytest
from engine_harness import START, Run, spec

from cswf.specs.loader import SpecErrors, check_fields

APPROVAL = """
name: renewal_note
owner: {field: csm_email}
state: enabled
entry: {field: nps, op: not_null}
reentry: {mode: none}
steps:
  - name: ask
    actions:
      - {type: email, name: note, to: email, subject: "Renewal", body: "Hi", OPTIONS}
  - name: wait_for_it
    wait: {action: ask.note, result: approved, max_days: 5}
  - name: answer
    branch:
      - name: approved
        action: ask.note
        result: approved
        steps: [{name: thank, actions: [{type: task, title: "Follow up the note"}]}]
      - name: rejected
        action: ask.note
        result: rejected
        steps: [{name: rethink, actions: [{type: task, title: "Rewrite the note"}]}]
      - name: silent
        action: ask.note
        result: not_actioned
        steps: [{name: remind, actions: [{type: task, title: "Approve your emails"}]}]
"""
OPTIONS = ("require_approval: true, approval_days: 2, from: csm, "
           "reply_to: {email: help@acme.example}")


def people(*names: str) -> list[dict]:
    return [{"participant_id": p, "nps": 8, "email": f"{p}@customer.test",
             "csm_email": "ana@acme.example" if p != "cat" else None, "csm_name": "Ana Ortiz"}
            for p in names]


def test_approved_rejected_and_not_actioned_are_results_branches_can_take() -> None:
    run = Run([spec(APPROVAL.replace("OPTIONS", OPTIONS))])
    run.tick(START, people("ann", "bob", "cat"))
    run.event("renewal_note/ann/1/s0.a0", "approved", START + timedelta(hours=20))
    run.event("renewal_note/bob/1/s0.a0", "rejected", START + timedelta(hours=30))
    # Delivery records not_actioned when cat's two days pass without an answer.
    run.event("renewal_note/cat/1/s0.a0", "not_actioned", START + timedelta(days=2))
    run.days([people("ann", "bob", "cat")] * 6, start=START + timedelta(days=1))
    tasks = run.actions().filter(pl.col("action_type") == "task")
    assert tasks.select("participant_id", "subject", "tick").rows() == [
        ("ann", "Follow up the note", START + timedelta(days=1)),
        ("bob", "Rewrite the note", START + timedelta(days=5)),
        ("cat", "Approve your emails", START + timedelta(days=5)),
    ]


def test_the_outbox_carries_the_approval_window_and_the_senders() -> None:
    run = Run([spec(APPROVAL.replace("OPTIONS", OPTIONS))])
    run.tick(START, people("ann", "cat"))
    emails = run.actions().filter(pl.col("action_type") == "email")
    payloads = {p: json.loads(x) for p, x in emails.select("participant_id", "payload").rows()}
    assert payloads["ann"]["approval_days"] == 2
    assert payloads["ann"]["from"] == {"email": "ana@acme.example", "name": "Ana Ortiz"}
    assert payloads["ann"]["reply_to"] == {"email": "help@acme.example", "name": None}
    assert payloads["cat"]["from"] == {"email": None, "name": "Ana Ortiz"}  # delivery falls back


def test_from_owner_is_the_workflows_owner_and_a_plain_email_has_no_options() -> None:
    text = APPROVAL.replace("OPTIONS", "from: owner").replace(
        "owner: {field: csm_email}", "owner: {user: lead@acme.example}")
    run = Run([spec(text)])
    run.tick(START, people("ann"))
    payload = json.loads(run.actions()["payload"][0])
    assert payload["from"] == {"email": "lead@acme.example", "name": None}
    assert "approval_days" not in payload and "reply_to" not in payload
    login = Run([spec(text.replace("lead@acme.example", "jlead"))])  # a login, no address
    login.tick(START, people("ann"))
    assert json.loads(login.actions()["payload"][0])["from"] == {"email": "jlead", "name": None}
    plain = Run([spec(APPROVAL.replace(", OPTIONS", ""))])
    plain.tick(START, people("ann"))
    assert set(json.loads(plain.actions()["payload"][0])) == {
        "html", "template", "to_contacts", "to_field"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("approval_days: 3", "steps.0.actions.0: approval_days needs require_approval: true"),
        ("require_approval: true, approval_days: 0",
         "steps.0.actions.0.approval_days: Input should be greater than or equal to 1 (got 0)"),
        ("from: ceo", "steps.0.actions.0.from: 'ceo' is not a sender; write csm, owner, "
                      "{email: ..., name: ...} or {field: ..., name_field: ...}"),
        ("from: {email: nope}",
         "steps.0.actions.0.from: 'nope' is not an email address (like cs@acme.example)"),
        ("from: {email: a@acme.example, field: csm_email}",
         "steps.0.actions.0.from: a sender needs exactly one of: email, field (or write csm, "
         "owner)"),
        ("reply_to: {field: csm_email, name: Ana}",
         "steps.0.actions.0.reply_to: name goes with email; with field, use name_field"),
        ('from: {email: a@acme.example, name: "Ana\\nBcc: x@evil.test"}',
         "steps.0.actions.0.from: a sender name may not hold line breaks, quotes or angle "
         "brackets"),
    ],
)
def test_bad_email_options_are_refused_with_the_path(options: str, message: str) -> None:
    with pytest.raises(SpecErrors) as raised:
        spec(APPROVAL.replace("OPTIONS", options))
    assert [str(e) for e in raised.value.errors] == [f"renewal_note.yaml: {message}"]


def test_sender_fields_must_exist_in_the_facts() -> None:
    fields = {"nps": pl.Int64(), "email": pl.String(), "csm_email": pl.String()}
    loaded = spec(APPROVAL.replace(
        "OPTIONS", "from: csm, reply_to: {field: csm_mail, name_field: csm_email}"))
    assert check_fields(loaded.spec, loaded.flow, fields) == [
        ("steps.0.actions.0.from", "csm reads the fact fields csm_email, csm_name (the accounts "
                                   "snapshot), which these facts do not have; name them: "
                                   "{field: ..., name_field: ...}"),
        ("steps.0.actions.0.reply_to.field",
         "unknown field 'csm_mail' (did you mean 'csm_email'?); fields that exist: csm_email, "
         "email, nps"),
    ]
