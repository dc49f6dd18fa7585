"""Event conditions: `{event: ..., happened: since_previous_tick}` / `within_days`, with property
tests, compiled over hand-written `recent_events` (as sql/facts/recent_events.sql builds them)."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest
from pydantic import TypeAdapter, ValidationError

from cswf.engine.compile import compile_condition
from cswf.specs.conditions import Condition, fields_used

AS_OF = datetime(2026, 6, 10, 9, 0)


def event(kind: str, since: bool, days_ago: float, properties: str | None = None) -> dict:
    at = datetime(2026, 6, 10, 8)
    return {
        "event_type": kind,
        "event_id": f"{kind}-{days_ago}",
        "occurred_at": at,
        "counted_at": at,
        "since_previous_tick": since,
        "days_ago": days_ago,
        "properties": properties,
    }


FACTS = pl.DataFrame(
    {
        "participant_id": ["a", "b", "c", "d", "e"],
        "as_of": [AS_OF] * 5,
        "recent_events": [
            [event("nps_response", True, 0.04, '{"score": 4, "comment": "Too SLOW"}')],
            [event("nps_response", False, 3.0, '{"score": "9"}')],  # CSV: the score is text
            None,  # no event in the lookback
            [
                event("ticket_opened", True, 0.1, '{"priority": "urgent", "escalated": true}'),
                event("nps_response", False, 20.0, '{"score": 10}'),
            ],
            [event("nps_response", True, 0.5, None)],  # an answer without properties
        ],
    }
)


def matches(raw: dict) -> list[str]:
    tree = TypeAdapter(Condition).validate_python(raw)
    hit = FACTS.select(compile_condition(tree, dict(FACTS.schema)).alias("hit"))["hit"]
    assert hit.null_count() == 0, "a compiled condition is never null"
    return FACTS.filter(hit)["participant_id"].to_list()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"event": "nps_response", "happened": "since_previous_tick"}, ["a", "e"]),
        ({"event": "nps_response", "within_days": 7}, ["a", "b", "e"]),
        ({"event": "nps_response", "within_days": 30}, ["a", "b", "d", "e"]),
        ({"event": "ticket_opened", "happened": "since_previous_tick"}, ["d"]),
        (
            {
                "event": "nps_response",
                "within_days": 30,
                "where": [{"field": "score", "op": "le", "value": 6}],
            },
            ["a"],
        ),
        (
            {
                "event": "nps_response",
                "within_days": 30,
                "where": [{"field": "score", "op": "ge", "value": 9}],
            },
            ["b", "d"],
        ),  # "9" reads as 9
        (
            {
                "event": "nps_response",
                "within_days": 30,
                "where": [{"field": "score", "op": "between", "value": [9, 9]}],
            },
            ["b"],
        ),
        (
            {
                "event": "nps_response",
                "within_days": 30,
                "where": [{"field": "comment", "op": "contains", "value": "slow"}],
            },
            ["a"],
        ),
        (
            {
                "event": "nps_response",
                "within_days": 30,
                "where": [{"field": "score", "op": "is_null"}],
            },
            ["e"],
        ),
        (
            {
                "event": "ticket_opened",
                "within_days": 1,
                "where": [
                    {"field": "priority", "op": "in", "value": ["urgent", "high"]},
                    {"field": "escalated", "op": "eq", "value": True},
                ],
            },
            ["d"],
        ),
        # every test must hold for the same event: d's ticket is urgent, its answer is a 10
        (
            {
                "event": "nps_response",
                "within_days": 30,
                "where": [{"field": "priority", "op": "eq", "value": "urgent"}],
            },
            [],
        ),
        # a missing property, like a missing fact value, fails even `ne`; `not` then holds
        (
            {
                "not": {
                    "event": "nps_response",
                    "within_days": 30,
                    "where": [{"field": "score", "op": "ne", "value": 4}],
                }
            },
            ["a", "c", "e"],
        ),
        (
            {
                "all": [
                    {"event": "nps_response", "happened": "since_previous_tick"},
                    {"not": {"event": "ticket_opened", "within_days": 7}},
                ]
            },
            ["a", "e"],
        ),
    ],
)
def test_event_conditions(raw: dict, expected: list[str]) -> None:
    assert matches(raw) == expected


def test_an_event_condition_reads_the_recent_events_field() -> None:
    tree = TypeAdapter(Condition).validate_python(
        {
            "all": [
                {"event": "nps_response", "within_days": 7},
                {"field": "health_score", "op": "lt", "value": 60},
            ]
        }
    )
    assert fields_used(tree) == {"recent_events", "health_score"}
    assert tree.describe() == "(nps_response happened within 7 days and health_score lt 60)"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"event": "nps_response"},
            "an event condition needs either `happened: since_previous_tick` or `within_days: N`",
        ),
        (
            {"event": "nps_response", "happened": "since_previous_tick", "within_days": 3},
            "an event condition needs either `happened: since_previous_tick` or `within_days: N`",
        ),
        (
            {"event": "nps_response", "happened": "yesterday"},
            "Input should be 'since_previous_tick'",
        ),
        ({"event": "nps_response", "within_days": 91}, "less than or equal to 90"),
        ({"event": "NPS response", "within_days": 1}, "should match pattern"),
        (
            {
                "event": "nps_response",
                "within_days": 1,
                "where": [{"field": "score", "op": "changed"}],
            },
            "operator 'changed' does not apply to an event property",
        ),
        ({"event": "nps_response", "within_days": 1, "when": "now"}, "Extra inputs"),
    ],
)
def test_bad_event_conditions_say_why(raw: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(Condition).validate_python(raw)
