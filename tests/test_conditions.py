"""The condition compiler: each operator, the null rule, relative dates, transitions."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest
from pydantic import TypeAdapter, ValidationError

from cswf.engine.compile import compile_condition
from cswf.engine.evaluate import with_previous
from cswf.specs.conditions import Condition, previous_tick_fields

AS_OF = datetime(2026, 6, 10, 9, 0)

FACTS = pl.DataFrame(
    {
        "participant_id": ["a", "b", "c", "d"],
        "as_of": [AS_OF] * 4,
        "tier": ["enterprise", "smb", None, "Enterprise Plus"],
        "health_score": [55.0, 80.0, None, 60.0],
        "seats": [10, 0, 5, None],
        "renewal_date": [date(2026, 7, 1), date(2026, 12, 1), None, date(2026, 6, 1)],
        "last_login": [datetime(2026, 6, 9), datetime(2026, 5, 1), None, datetime(2026, 6, 10, 8)],
        "usage_7d": [50.0, 100.0, 10.0, None],
        "usage_prev_7d": [100.0, 90.0, 0.0, 40.0],
    }
)
PREVIOUS = pl.DataFrame(
    {
        "participant_id": ["a", "b", "c", "d"],
        "tier": ["smb", "smb", "smb", None],
        "health_score": [65.0, 55.0, 70.0, 60.0],
        "usage_7d": [80.0, 50.0, 10.0, 40.0],
    }
)


def matches(raw: dict) -> list[str]:
    """Participants for which the condition holds."""
    tree = TypeAdapter(Condition).validate_python(raw)
    frame = with_previous(FACTS, PREVIOUS, previous_tick_fields(tree))
    out = frame.select("participant_id", compile_condition(tree, dict(FACTS.schema)).alias("hit"))
    result = out.collect()
    assert result["hit"].null_count() == 0, "a compiled condition is never null"
    return result.filter("hit")["participant_id"].to_list()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"field": "tier", "op": "eq", "value": "enterprise"}, ["a"]),
        ({"field": "health_score", "op": "lt", "value": 60}, ["a"]),
        ({"field": "health_score", "op": "le", "value": 60}, ["a", "d"]),
        ({"field": "health_score", "op": "gt", "value": 60}, ["b"]),
        ({"field": "health_score", "op": "ge", "value": 60}, ["b", "d"]),
        ({"field": "seats", "op": "between", "value": [1, 10]}, ["a", "c"]),
        ({"field": "tier", "op": "in", "value": ["smb", "enterprise"]}, ["a", "b"]),
        ({"field": "tier", "op": "is_null"}, ["c"]),
        ({"field": "tier", "op": "not_null"}, ["a", "b", "d"]),
        ({"field": "tier", "op": "contains", "value": "PRISE"}, ["a", "d"]),
        ({"field": "tier", "op": "starts_with", "value": "enterprise "}, ["d"]),
    ],
)
def test_operators(raw: dict, expected: list[str]) -> None:
    assert matches(raw) == expected


def test_ne_and_not_in_are_false_on_missing_values() -> None:
    # c has no tier: "tier is not smb" is a comparison with a missing value, so it is false.
    assert matches({"field": "tier", "op": "ne", "value": "smb"}) == ["a", "d"]
    assert matches({"field": "tier", "op": "not_in", "value": ["smb"]}) == ["a", "d"]
    assert matches({"field": "seats", "op": "ne", "value": 0}) == ["a", "c"]


def test_not_inverts_the_leaf_so_missing_values_match_a_negation() -> None:
    # The rule is per leaf: "health < 60" is false for c (missing), so "not (health < 60)" holds.
    assert matches({"not": {"field": "health_score", "op": "lt", "value": 60}}) == ["b", "c", "d"]
    assert matches({"all": [
        {"not": {"field": "health_score", "op": "lt", "value": 60}},
        {"field": "health_score", "op": "not_null"},
    ]}) == ["b", "d"]


def test_groups_nest() -> None:
    raw = {"any": [
        {"all": [{"field": "tier", "op": "eq", "value": "smb"},
                 {"field": "health_score", "op": "gt", "value": 70}]},
        {"field": "seats", "op": "is_null"},
    ]}
    assert matches(raw) == ["b", "d"]


def test_relative_dates_on_date_and_datetime_fields() -> None:
    # as_of is 2026-06-10 09:00; for DATE fields "today" is 2026-06-10.
    assert matches({"field": "renewal_date", "op": "within_next_days", "value": 30}) == ["a"]
    assert matches({"field": "renewal_date", "op": "within_last_days", "value": 10}) == ["d"]
    assert matches({"field": "renewal_date", "op": "older_than_days", "value": 5}) == ["d"]
    assert matches({"field": "last_login", "op": "within_last_days", "value": 1}) == ["d"]
    assert matches({"field": "last_login", "op": "within_last_days", "value": 2}) == ["a", "d"]
    assert matches({"field": "last_login", "op": "older_than_days", "value": 30}) == ["b"]


def test_date_operands_are_written_as_text() -> None:
    assert matches({"field": "renewal_date", "op": "lt", "value": "2026-07-01"}) == ["d"]
    assert matches({"field": "renewal_date", "op": "between",
                    "value": ["2026-06-01", "2026-07-01"]}) == ["a", "d"]


def test_transitions_against_the_previous_tick() -> None:
    # a: 65 -> 55 crosses below 60; b: 55 -> 80 crosses above 70; d stays at 60.
    assert matches({"field": "health_score", "op": "dropped_below", "value": 60}) == ["a"]
    assert matches({"field": "health_score", "op": "rose_above", "value": 70}) == ["b"]
    # became: a smb -> enterprise; d (previously missing) is "Enterprise Plus" now, not the value.
    assert matches({"field": "tier", "op": "became", "value": "enterprise"}) == ["a"]
    assert matches({"field": "tier", "op": "became", "value": "Enterprise Plus"}) == ["d"]
    # changed needs both values: c (now missing) and d (previously missing) did not "change".
    assert matches({"field": "tier", "op": "changed"}) == ["a"]


def test_percentage_change_against_previous_tick_or_a_window_field() -> None:
    # Against the previous tick: a 80 -> 50 is -37.5%; b 50 -> 100 is +100%.
    assert matches({"field": "usage_7d", "op": "fell_by_pct", "value": 25}) == ["a"]
    assert matches({"field": "usage_7d", "op": "fell_by_pct", "value": 40}) == []
    assert matches({"field": "usage_7d", "op": "rose_by_pct", "value": 100}) == ["b"]
    # Against the SQL window feature: a 100 -> 50 is -50%; c's baseline is 0 (no change defined).
    raw = {"field": "usage_7d", "op": "fell_by_pct", "value": 25, "compare_to": "usage_prev_7d"}
    assert matches(raw) == ["a"]


def test_without_a_previous_tick_transitions_do_not_fire() -> None:
    tree = TypeAdapter(Condition).validate_python(
        {"field": "health_score", "op": "dropped_below", "value": 60}
    )
    frame = with_previous(FACTS, None, previous_tick_fields(tree))
    hits = frame.select(compile_condition(tree, dict(FACTS.schema))).collect().to_series()
    assert hits.to_list() == [False] * 4


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"field": "x", "op": "in", "value": 3}, "operator 'in' needs a non-empty list as value"),
        ({"field": "x", "op": "between", "value": [1]}, "needs a list of two values"),
        ({"field": "x", "op": "is_null", "value": 1}, "operator 'is_null' takes no value"),
        ({"field": "x", "op": "within_next_days", "value": -1}, "whole number of days >= 0"),
        ({"field": "x", "op": "fell_by_pct", "value": 0}, "needs a percentage > 0"),
        ({"field": "x", "op": "contains", "value": 3}, "operator 'contains' needs a text value"),
        ({"field": "x", "op": "eq", "value": 1, "compare_to": "y"}, "compare_to is only used"),
    ],
)
def test_operand_must_fit_the_operator(raw: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(Condition).validate_python(raw)


def test_previous_facts_line_up_by_participant_whatever_their_order() -> None:
    # Consecutive ticks in the same rows take a shortcut (no join); previous facts in another
    # order, or for other participants, must give what a join by participant gives.
    tree = TypeAdapter(Condition).validate_python(
        {"field": "health_score", "op": "dropped_below", "value": 60})
    fields = previous_tick_fields(tree)

    def hits(previous: pl.DataFrame) -> list[str]:
        frame = with_previous(FACTS, previous, fields)
        return frame.filter(compile_condition(tree, dict(FACTS.schema))).collect()[
            "participant_id"].to_list()

    assert hits(PREVIOUS) == ["a"]
    assert hits(PREVIOUS.reverse()) == ["a"]
    # the same ids in another order, with values that would cross if taken by row
    swapped = PREVIOUS.with_columns(participant_id=pl.Series(["b", "a", "c", "d"]))
    assert hits(swapped) == []
    moved_on = pl.concat([PREVIOUS.filter(pl.col("participant_id") != "a"),
                          PREVIOUS.head(1).with_columns(participant_id=pl.lit("e"))])
    assert hits(moved_on) == []  # a has no previous value now; e is not a participant
