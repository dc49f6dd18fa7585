"""The lookups a tick makes per workflow read only what concerns that workflow and node."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest
from engine_harness import spec

from cswf.engine import context as context_module
from cswf.engine.context import TickContext
from cswf.engine.flow import _action_result
from cswf.engine.frames import ROW
from cswf.specs.workflow import ActionResult

AS_OF = datetime(2026, 6, 1)


def context(*action_ids: str) -> TickContext:
    events = pl.DataFrame({"action_id": list(action_ids), "event_type": "opened",
                           "occurred_at": AS_OF},
                          schema_overrides={"occurred_at": pl.Datetime("us")})
    return TickContext(pl.DataFrame({"participant_id": ["A"]}), pl.DataFrame(), AS_OF,
                       "Nurture", events, pl.DataFrame())


IDS = ("onboarding/A/1/s0.a1", "onboarding/B/2/s0.a1", "onboarding/A/1/s2.a0",
       "renewal/A/1/s0.a1", "onboarding/x/y/1/s0.a1",  # a participant id with "/"
       "onboarding/ACME\nEU/1/s0.a1", "onboarding1/C/1/s0.a1", "renewal/s0.a1", "stray")
QUESTIONS = [("opened", "onboarding", "s0.a1"), ("opened", "renewal", "s0.a1"),
             ("opened", "renewal", "s2.a0"), ("clicked", "onboarding", "s0.a1"),
             ("opened", "onboarding", "y/1/s0.a1"), ("opened", "onboarding1", "s0.a1"),
             ("opened", "stray", "stray")]


@pytest.mark.parametrize("scans", [0, 100], ids=["split", "scanned"])
def test_seen_enrollments_are_split_by_workflow_and_action(
        scans: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same answers whether a question is answered by a scan of the ids (the first few of
    a tick) or by the split made for the later ones."""
    monkeypatch.setattr(context_module, "SCANS_BEFORE_SPLIT", scans)
    seen = context(*IDS)
    answers = {q: sorted(seen.seen_enrollments(*q)) for q in QUESTIONS}
    assert answers == {
        ("opened", "onboarding", "s0.a1"): ["onboarding/A/1", "onboarding/ACME\nEU/1",
                                            "onboarding/B/2", "onboarding/x/y/1"],
        ("opened", "renewal", "s0.a1"): ["renewal", "renewal/A/1"],
        ("opened", "renewal", "s2.a0"): [],
        ("opened", "onboarding1", "s0.a1"): ["onboarding1/C/1"],
        ("clicked", "onboarding", "s0.a1"): [],
        # a key is one segment: "y/1/s0.a1" is no action key, although an id ends with it
        ("opened", "onboarding", "y/1/s0.a1"): [],
        ("opened", "stray", "stray"): [],  # an id without "/" is no action's
    }


def test_an_action_result_is_looked_up_only_for_the_rows_concerned() -> None:
    workflow = spec("""
name: onboarding
owner: {field: csm}
state: enabled
entry: {field: plan, op: eq, value: trial}
steps:
  - name: hello
    actions: [{type: email, name: hi, to: email, subject: "Hi", body: "Hello"}]
  - name: wait_for_open
    wait: {action: hello.hi, result: opened, max_days: 3}
""")
    rows = pl.DataFrame({"workflow": "onboarding", ROW: [0, 0, 0],
                         "enrollment_id": ["onboarding/A/1", "onboarding/B/1", "onboarding/C/1"]})
    seen = context("onboarding/A/1/s0.a0", "onboarding/C/1/s0.a0")
    within = pl.Series([True, True, False])
    opened = ActionResult(action="hello.hi", result="opened")
    assert _action_result(rows, within, workflow, opened, seen).to_list() == [True, False, False]
    unopened = ActionResult(action="hello.hi", result="not_opened")
    assert _action_result(rows, within, workflow, unopened, seen).to_list() == [False, True, False]
