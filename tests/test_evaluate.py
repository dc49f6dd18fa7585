"""Evaluating the conditions against the previous tick's facts: the same verdicts whatever
the rows' order (engine/evaluate.py lines the previous facts up without a join when their
rows hold the same participants)."""

from __future__ import annotations

import polars as pl
from engine_harness import START, spec

from cswf.engine.frames import ENROLLMENT_SCHEMA, empty
from cswf.engine.shards import run_sharded_tick
from cswf.engine.tick import run_tick

DROPPED = """
name: dropped
owner: {field: csm}
state: enabled
entry: {field: score, op: dropped_below, value: 60}
steps:
  - name: call
    actions: [{type: task, title: "Call"}]
"""
LAUNCH = """
name: launch
owner: {field: csm}
state: enabled
launch: from_now_on
entry: {field: score, op: lt, value: 60}
steps:
  - name: call
    actions: [{type: task, title: "Call"}]
"""


def facts(ids: list[str | None], score: float) -> pl.DataFrame:
    return pl.DataFrame({"participant_id": ids, "as_of": [START] * len(ids),
                         "csm": ["c@example.com"] * len(ids), "score": [score] * len(ids)})


def entered(text: str, previous: pl.DataFrame) -> list[str | None]:
    result = run_tick(empty(ENROLLMENT_SCHEMA), facts(["a", None], 50.0), previous, None,
                      [spec(text)], START)
    return sorted(result.state["participant_id"].to_list(), key=str)


def test_a_null_participant_id_has_no_previous_facts_in_any_row_order() -> None:
    # A join by participant matches no null id: lining rows up must not give it last tick's.
    before = facts(["a", None], 70.0).drop("as_of")
    assert entered(DROPPED, before) == entered(DROPPED, before.reverse()) == ["a"]
    qualified = facts(["a", None], 50.0).drop("as_of")  # from_now_on: who qualified before
    assert entered(LAUNCH, qualified) == entered(LAUNCH, qualified.reverse()) == [None]


def test_a_null_participant_s_verdicts_are_the_same_in_shards() -> None:
    now = facts(["c", None, "e"], 50.0)
    before = now.drop("as_of").with_columns(score=pl.lit(70.0))
    one, three = (run_sharded_tick(empty(ENROLLMENT_SCHEMA), now, before, None,
                                   [spec(DROPPED)], START, shards=k) for k in (1, 3))
    assert one.state["participant_id"].to_list() == three.state["participant_id"].to_list() \
        == ["c", "e"]
