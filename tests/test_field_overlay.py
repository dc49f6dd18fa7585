"""Field updates overlay the facts from the next tick until a newer snapshot supersedes them."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import polars as pl
import pytest

from cswf.facts.overlay import (
    PROBLEM_SCHEMA,
    UPDATE_SCHEMA,
    apply_field_updates,
    field_updates_of,
    load_field_updates,
)

JUL1_03 = datetime(2026, 7, 1, 3)  # the tick that emits the updates
JUL1_06 = datetime(2026, 7, 1, 6)  # the next tick, same day
JUL2_00 = datetime(2026, 7, 2, 0)  # the next day


def facts(as_of: datetime, snapshot: date = date(2026, 7, 1)) -> pl.DataFrame:
    """Two accounts, both from the snapshot dated `snapshot`."""
    return pl.DataFrame(
        {
            "as_of": [as_of, as_of],
            "participant_id": ["ACC-1", "ACC-2"],
            "snapshot_date": [snapshot, snapshot],
            "stage": ["adoption", "adoption"],
            "seats_active": [90, 40],
            "health_score": [72.5, 55.0],
            "renewal_date": [date(2027, 3, 1), date(2026, 12, 1)],
        },
        schema_overrides={"seats_active": pl.Int32},
    )


def updates(*rows: tuple[str, str, datetime, str, str | None]) -> pl.DataFrame:
    """(action_id, participant_id, tick, field, value) rows."""
    return pl.DataFrame(list(rows), schema=UPDATE_SCHEMA, orient="row")


def column(frame: pl.DataFrame, name: str) -> list:
    return frame[name].to_list()


STAGE_RENEWAL = ("wf/ACC-1/1/s0.a0", "ACC-1", JUL1_03, "stage", "renewal")


def test_visible_at_the_next_tick_not_the_same_tick() -> None:
    same = apply_field_updates(facts(JUL1_03), updates(STAGE_RENEWAL), JUL1_03)
    next_tick = apply_field_updates(facts(JUL1_06), updates(STAGE_RENEWAL), JUL1_06)

    assert column(same.facts, "stage") == ["adoption", "adoption"]
    assert column(next_tick.facts, "stage") == ["renewal", "adoption"]
    assert next_tick.problems.is_empty()


def test_superseded_by_a_snapshot_of_a_later_day() -> None:
    still_old = apply_field_updates(facts(JUL2_00, date(2026, 7, 1)), updates(STAGE_RENEWAL),
                                    JUL2_00)
    newer = apply_field_updates(facts(JUL2_00, date(2026, 7, 2)), updates(STAGE_RENEWAL), JUL2_00)

    assert column(still_old.facts, "stage") == ["renewal", "adoption"]  # 07-02 not in yet
    assert column(newer.facts, "stage") == ["adoption", "adoption"]  # the CRM's word wins


def test_only_the_superseded_participant_loses_it() -> None:
    both = updates(STAGE_RENEWAL, ("wf/ACC-2/1/s0.a0", "ACC-2", JUL1_03, "stage", "renewal"))
    mixed = facts(JUL2_00).with_columns(
        pl.Series("snapshot_date", [date(2026, 7, 2), date(2026, 7, 1)])
    )
    assert column(apply_field_updates(mixed, both, JUL2_00).facts, "stage") == [
        "adoption", "renewal"
    ]


def test_latest_update_wins() -> None:
    rows = updates(
        ("a/ACC-1/1/s0.a0", "ACC-1", datetime(2026, 6, 30, 21), "stage", "mature"),
        ("b/ACC-1/1/s0.a0", "ACC-1", JUL1_03, "stage", "renewal"),
        ("a/ACC-2/1/s0.a0", "ACC-2", JUL1_03, "stage", "mature"),
        ("b/ACC-2/1/s0.a0", "ACC-2", JUL1_03, "stage", "churned"),  # same tick: greater id
        ("c/ACC-2/1/s0.a0", "ACC-2", JUL1_06, "stage", "onboarding"),  # not visible yet
    )
    assert column(apply_field_updates(facts(JUL1_06), rows, JUL1_06).facts, "stage") == [
        "renewal", "churned"
    ]


def test_values_are_cast_to_the_fact_type() -> None:
    rows = updates(
        ("x/1", "ACC-1", JUL1_03, "seats_active", " 120 "),
        ("x/2", "ACC-2", JUL1_03, "seats_active", "12.0"),  # a whole number as a decimal
        ("x/3", "ACC-1", JUL1_03, "health_score", "80.5"),
        ("x/4", "ACC-2", JUL1_03, "health_score", None),  # NULL clears the field
        ("x/5", "ACC-1", JUL1_03, "renewal_date", "2027-01-31"),
    )

    result = apply_field_updates(facts(JUL1_06), rows, JUL1_06)

    assert result.facts.schema == facts(JUL1_06).schema
    assert column(result.facts, "seats_active") == [120, 12]
    assert column(result.facts, "health_score") == [80.5, None]
    assert column(result.facts, "renewal_date") == [date(2027, 1, 31), date(2026, 12, 1)]
    assert result.problems.is_empty()


def test_booleans_use_the_contract_words() -> None:
    flags = facts(JUL1_06).with_columns(pl.Series("is_key_account", [False, True]))
    rows = updates(("x/1", "ACC-1", JUL1_03, "is_key_account", "Yes"),
                   ("x/2", "ACC-2", JUL1_03, "is_key_account", "false"))
    assert column(apply_field_updates(flags, rows, JUL1_06).facts, "is_key_account") == [
        True, False
    ]


def test_a_value_that_does_not_convert_is_reported_and_the_fact_kept() -> None:
    rows = updates(
        ("wf/ACC-1/1/s1.a0", "ACC-1", JUL1_03, "seats_active", "abc"),
        ("wf/ACC-2/1/s1.a0", "ACC-2", JUL1_03, "seats_active", "41"),
        ("wf/ACC-2/1/s1.a1", "ACC-2", JUL1_03, "renewal_date", "next year"),
    )

    result = apply_field_updates(facts(JUL1_06), rows, JUL1_06)

    assert column(result.facts, "seats_active") == [90, 41]  # ACC-1 keeps its snapshot value
    assert column(result.facts, "renewal_date") == [date(2027, 3, 1), date(2026, 12, 1)]
    assert result.problems.schema == pl.Schema(PROBLEM_SCHEMA)
    assert result.problems.select("participant_id", "field", "value", "dtype").rows() == [
        ("ACC-2", "renewal_date", "next year", "Date"),
        ("ACC-1", "seats_active", "abc", "Int32"),
    ]
    assert column(result.problems, "problem")[1] == (
        "field_update wf/ACC-1/1/s1.a0: value 'abc' does not convert to Int32 for field "
        "'seats_active'; the fact keeps its snapshot value"
    )


def test_fields_that_are_not_facts_are_ignored() -> None:
    rows = updates(
        ("x/1", "ACC-1", JUL1_03, "crm_next_step", "call the CFO"),  # a CRM-only field
        ("x/2", "ACC-1", JUL1_03, "participant_id", "ACC-9"),  # keys are never rewritten
        ("x/3", "ACC-1", JUL1_03, "snapshot_date", "2030-01-01"),
    )
    result = apply_field_updates(facts(JUL1_06), rows, JUL1_06)
    assert result.facts.equals(facts(JUL1_06))
    assert result.problems.is_empty()


def test_render_failed_updates_are_ignored() -> None:
    rows = updates(STAGE_RENEWAL).with_columns(pl.lit("render_failed").alias("status"))
    assert column(apply_field_updates(facts(JUL1_06), rows, JUL1_06).facts, "stage") == [
        "adoption", "adoption"
    ]


def test_facts_without_a_snapshot_date_are_refused() -> None:
    with pytest.raises(ValueError, match="facts have no 'snapshot_date' column"):
        apply_field_updates(facts(JUL1_06).drop("snapshot_date"), updates(), JUL1_06)


OUTBOX = """CREATE TABLE actions_outbox (action_id VARCHAR, tick TIMESTAMP,
    participant_id VARCHAR, action_type VARCHAR, payload VARCHAR, status VARCHAR)"""


def test_load_field_updates_reads_the_outbox() -> None:
    con = duckdb.connect(":memory:")
    assert load_field_updates(con, JUL1_06).schema == pl.Schema(UPDATE_SCHEMA)  # no outbox yet
    con.execute(OUTBOX).fetchall()
    con.execute("""INSERT INTO actions_outbox VALUES
        ('a/1', '2026-06-30 21:00', 'ACC-1', 'field_update', '{"field":"stage","value":"mature"}', 'pending'),
        ('a/2', '2026-07-01 03:00', 'ACC-1', 'field_update', '{"field":"stage","value":"renewal"}', 'pending'),
        ('a/3', '2026-07-01 03:00', 'ACC-2', 'field_update', '{"field":"health_score","value":null}', 'pending'),
        ('a/4', '2026-07-01 03:00', 'ACC-2', 'field_update', '{"field":"stage","value":null}', 'render_failed'),
        ('a/5', '2026-07-01 03:00', 'ACC-2', 'task', '{"due_days":3}', 'pending'),
        ('a/6', '2026-07-01 06:00', 'ACC-2', 'field_update', '{"field":"stage","value":"mature"}', 'pending')
    """).fetchall()  # noqa: E501

    loaded = load_field_updates(con, JUL1_06)

    assert loaded.rows() == [  # before 06:00; a/1 is older than a/2 for the same field
        ("a/2", "ACC-1", JUL1_03, "stage", "renewal"),
        ("a/3", "ACC-2", JUL1_03, "health_score", None),
    ]


def test_a_run_appends_each_ticks_updates_in_memory() -> None:
    """What run_ticks does: outbox updates before the run, then each tick's own actions."""
    actions = pl.DataFrame({
        "action_id": ["wf/ACC-1/1/s0.a0", "wf/ACC-1/1/s0.a1", "wf/ACC-2/1/s0.a0"],
        "participant_id": ["ACC-1", "ACC-1", "ACC-2"],
        "tick": [JUL1_03] * 3,
        "action_type": ["field_update", "task", "field_update"],
        "payload": ['{"field":"stage","value":"renewal"}', '{"due_days":3}',
                    '{"field":"stage","value":"x{{"}'],
        "status": ["pending", "pending", "render_failed"],
    })
    known = updates()

    seen_now = apply_field_updates(facts(JUL1_03), known, JUL1_03).facts
    known = pl.concat([known, field_updates_of(actions)])
    seen_next = apply_field_updates(facts(JUL1_06), known, JUL1_06).facts

    assert column(seen_now, "stage") == ["adoption", "adoption"]
    assert known.rows() == [("wf/ACC-1/1/s0.a0", "ACC-1", JUL1_03, "stage", "renewal")]
    assert column(seen_next, "stage") == ["renewal", "adoption"]
