"""Field updates a workflow made, seen by conditions until a newer snapshot supersedes them.

A `field_update` action sets a CRM field; the CRM only shows the change in a later snapshot.
Meanwhile the engine must not act on the stale value (an update `stage: renewal` must stop
"stage = adoption" workflows at the next tick), so the update overlays the facts:

- it is visible at ticks strictly after the tick that emitted it (never the same tick: all
  workflows of a tick see the same facts);
- only while the participant's snapshot is dated on or before the update's day: a snapshot of a
  later day is the CRM's word and supersedes it;
- the latest update of a (participant, field) wins (ties: the greater action_id);
- only fields that are fact columns count (other fields live in the CRM only);
- the value (text) is converted to the column's type; a value that does not convert leaves the
  fact as the snapshot has it and is reported in `problems`, never turned into a silent NULL.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import duckdb
import polars as pl

from cswf.ingest.validate import FALSE_WORDS, TRUE_WORDS

SNAPSHOT_DATE = "snapshot_date"  # the fact telling which snapshot day a row comes from
UPDATE_SCHEMA: dict[str, pl.DataType] = {
    "action_id": pl.String(),
    "participant_id": pl.String(),
    "tick": pl.Datetime("us"),
    "field": pl.String(),
    "value": pl.String(),  # the rendered text; NULL clears the field
}
PROBLEM_SCHEMA: dict[str, pl.DataType] = {
    **UPDATE_SCHEMA,
    "dtype": pl.String(),
    "problem": pl.String(),
}
_NO_UPDATES = pl.DataFrame(schema=UPDATE_SCHEMA)
# Columns that say which row this is; an update never rewrites them.
KEYS = ("as_of", "participant_id")


class Overlay(NamedTuple):
    """The facts with the visible updates applied, and the updates that could not apply."""

    facts: pl.DataFrame
    problems: pl.DataFrame


def apply_field_updates(
    facts: pl.DataFrame,
    updates: pl.DataFrame,
    as_of: datetime,
    *,
    snapshot_column: str = SNAPSHOT_DATE,
) -> Overlay:
    """Overlay the field updates visible at `as_of` on one tick's facts.

    `updates` has the columns of UPDATE_SCHEMA (`action_id` optional); rows of any tick may be
    passed, those at or after `as_of` are ignored. Loops over fields, never over rows.
    """
    if snapshot_column not in facts.columns:
        raise ValueError(f"facts have no '{snapshot_column}' column: it tells whether a field "
                         "update is superseded; load it with the facts")
    protected = {*KEYS, snapshot_column}
    fields = [c for c in facts.columns if c not in protected]
    if updates.is_empty() or not updates["field"].is_in(fields).any():
        return Overlay(facts, _NO_PROBLEMS)  # CRM-only fields: nothing a condition reads
    visible = _latest(updates, as_of, fields)
    if visible.is_empty():  # the usual case: no update of a fact column is visible
        return Overlay(facts, _NO_PROBLEMS)
    rows = facts.select("participant_id", pl.col(snapshot_column).alias("__snapshot"))
    columns, problems = [], []
    for field in sorted(visible["field"].unique()):
        dtype = facts.schema[field]
        found = rows.join(
            visible.filter(pl.col("field") == field).drop("field"),
            on="participant_id", how="left", maintain_order="left",
        ).with_columns(_convert(pl.col("value"), dtype).alias("__new"))
        applies = pl.col("tick").is_not_null() & (
            pl.col("__snapshot").is_null() | (pl.col("__snapshot") <= pl.col("tick").dt.date())
        )
        bad = applies & pl.col("value").is_not_null() & pl.col("__new").is_null()
        found = found.with_columns(applies.alias("__applies"), bad.alias("__bad"))
        columns.append(
            pl.when(found["__applies"] & ~found["__bad"]).then(found["__new"])
            .otherwise(pl.col(field)).alias(field)
        )
        problems.append(found.filter("__bad").select(
            "action_id", "participant_id", "tick",
            pl.lit(field).alias("field"),
            "value",
            pl.lit(str(dtype)).alias("dtype"),
            pl.format("field_update {}: value '{}' does not convert to {} for field '{}'; "
                      "the fact keeps its snapshot value", pl.col("action_id").fill_null("?"),
                      "value", pl.lit(str(dtype)), pl.lit(field)).alias("problem"),
        ))
    problem_frame = pl.concat([_NO_PROBLEMS, *problems], how="vertical")
    return Overlay(facts.with_columns(columns) if columns else facts, problem_frame)


_NO_PROBLEMS = pl.DataFrame(schema=PROBLEM_SCHEMA)


def _latest(updates: pl.DataFrame, as_of: datetime, fields: list[str]) -> pl.DataFrame:
    """Per (participant, fact field), the latest update emitted before `as_of` (one query)."""
    chain = updates.lazy()
    if "action_id" not in updates.columns:
        chain = chain.with_columns(pl.lit(None, dtype=pl.String).alias("action_id"))
    if "status" in updates.columns:  # a template that failed to render set nothing
        chain = chain.filter(pl.col("status").ne_missing("render_failed"))
    return (
        chain.select(UPDATE_SCHEMA.keys())
        .cast(UPDATE_SCHEMA)  # type: ignore[arg-type]
        .filter(pl.col("tick") < as_of, pl.col("field").is_in(fields))
        .sort("tick", "action_id", nulls_last=False)
        .unique(["participant_id", "field"], keep="last", maintain_order=True)
        .collect()
    )


def _convert(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Text to the column's type, NULL where it does not convert (the caller reports those).

    Spellings follow the landing contract: ISO dates, the contract's boolean words, a decimal
    point; a whole number written as a decimal ("12.0") is accepted in an integer column.
    """
    text = value.str.strip_chars()
    if dtype == pl.String:
        return value
    if dtype == pl.Boolean:
        word = text.str.to_lowercase()
        return (pl.when(word.is_in(TRUE_WORDS)).then(True)
                .when(word.is_in(FALSE_WORDS)).then(False))
    if dtype.is_integer():
        number = text.cast(pl.Float64, strict=False)
        whole = pl.when(number == number.floor()).then(number)
        return pl.coalesce(text.cast(dtype, strict=False), whole.cast(dtype, strict=False))
    if dtype == pl.Date:
        return text.str.to_date("%Y-%m-%d", strict=False)
    if isinstance(dtype, pl.Datetime):
        return text.str.to_datetime(strict=False, time_unit=dtype.time_unit).cast(dtype)
    return text.cast(dtype, strict=False)


def load_field_updates(con: duckdb.DuckDBPyConnection, before: datetime) -> pl.DataFrame:
    """The field updates in `actions_outbox` emitted before `before` (render_failed excluded).

    Only the latest per (participant, field) is returned: no tick at or after `before` can see
    an older one. Empty (with the schema) while there is no outbox yet.
    """
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'actions_outbox' "
        "AND schema_name = current_schema() AND database_name = current_database()"
    ).fetchall()[0][0]
    if not exists:
        return pl.DataFrame(schema=UPDATE_SCHEMA)
    return con.sql(field_updates_sql("$before") + " ORDER BY tick, action_id",
                   params={"before": before}).pl().cast(UPDATE_SCHEMA)


def field_updates_sql(before: str) -> str:
    """The query of `load_field_updates` (unordered), with `before` an SQL expression: the
    prepare step of a sharded tick cuts its rows by shard in DuckDB (store/cut.py)."""
    return f"""
        SELECT action_id, participant_id, tick,
               json_extract_string(payload, '$.field') AS field,
               json_extract_string(payload, '$.value') AS value
        FROM actions_outbox
        WHERE action_type = 'field_update' AND status IS DISTINCT FROM 'render_failed'
          AND tick < {before}
        QUALIFY row_number() OVER (PARTITION BY participant_id, field
                                   ORDER BY tick DESC, action_id DESC) = 1"""


def field_updates_of(actions: pl.DataFrame) -> pl.DataFrame:
    """The field updates among a tick's actions (`TickResult.actions`), as UPDATE_SCHEMA rows:
    what a run appends after each tick so the next tick sees them."""
    payload = pl.col("payload").str.json_decode(pl.Struct({"field": pl.String,
                                                           "value": pl.String}))
    if actions.is_empty() or not (actions["action_type"] == "field_update").any():
        return _NO_UPDATES
    return (
        actions.filter(pl.col("action_type") == "field_update",
                       pl.col("status").ne_missing("render_failed"))
        .select("action_id", "participant_id", "tick", payload.alias("__payload"))
        .unnest("__payload")
        .select(UPDATE_SCHEMA.keys())
        .cast(UPDATE_SCHEMA)
    )
