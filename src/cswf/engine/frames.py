"""The shapes of the engine's three outputs: enrollment state, actions, transitions.

The storage layer creates its DuckDB tables from these schemas, so they are the one definition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache

import polars as pl

TS = pl.Datetime("us")

# One row per (workflow, participant): the latest enrollment of that participant in that workflow.
# Earlier enrollments are history (kept by the store), not working state.
ENROLLMENT_SCHEMA: dict[str, pl.DataType] = {
    "workflow": pl.String(),
    "participant_id": pl.String(),
    "enrollment_id": pl.String(),
    "enrollment_number": pl.Int32(),
    "version": pl.String(),
    "status": pl.String(),  # active | completed | exited
    "entered_at": TS,
    "step": pl.Int32(),  # index of the current step; = number of steps once the flow ended
    "step_name": pl.String(),
    "wait_until": TS,  # when the current step may finish (end of a delay)
    "objective_met_at": TS,
    "closed_at": TS,
    "close_reason": pl.String(),
    "requalify_armed": pl.Boolean(),  # stopped qualifying since the last exit (re-entry: multiple)
    "milestones_started": pl.Int32(),  # how many milestones (in trigger order) have their task
    "milestones_done": pl.List(pl.String()),  # names of the milestones whose task is completed
    "current_milestone": pl.String(),  # the first started milestone not yet done
    "milestone_due_at": TS,  # when the current milestone is due
    "updated_at": TS,  # the tick that last changed this row
    "cohort": pl.String(),  # control | treatment in a workflow with a holdout (engine/holdout.py)
}

# Inside a tick, rows also carry the participant's position in the facts (null: not in them).
ROW = "__row"
WORKING_SCHEMA: dict[str, pl.DataType] = {**ENROLLMENT_SCHEMA, ROW: pl.UInt32()}

ACTION_SCHEMA: dict[str, pl.DataType] = {
    "action_id": pl.String(),
    "tick": TS,
    "workflow": pl.String(),
    "version": pl.String(),
    "enrollment_id": pl.String(),
    "participant_id": pl.String(),
    "step": pl.Int32(),
    "step_name": pl.String(),
    "action_index": pl.Int32(),
    "action_type": pl.String(),  # task | email | field_update
    "category": pl.String(),
    "assignee": pl.String(),  # a user; a group's tasks go to a member (engine/assign.py)
    "owner_group": pl.String(),  # the user group that owns the work, if a group does
    "recipient": pl.String(),
    "due_at": TS,
    "subject": pl.String(),  # task title or email subject
    "body": pl.String(),
    "payload": pl.String(),  # JSON: the settings that have no column of their own
    "status": pl.String(),  # pending | render_failed (delivery moves it on)
    "on_error": pl.String(),  # continue | retry | exit: what a failed delivery does
    "error": pl.String(),
}

TRANSITION_SCHEMA: dict[str, pl.DataType] = {
    "tick": TS,
    "workflow": pl.String(),
    "version": pl.String(),
    "participant_id": pl.String(),
    "enrollment_id": pl.String(),
    "transition": pl.String(),  # entered | advanced | objective_met | exited | completed
    "step": pl.Int32(),
    "step_name": pl.String(),
    "reason": pl.String(),
    "evidence": pl.String(),  # JSON of the fact values that decided it
}


_EMPTY: dict[int, tuple[dict[str, pl.DataType], pl.DataFrame]] = {}


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """A frame with no rows (built once per schema: frames are immutable)."""
    cached = _EMPTY.get(id(schema))
    if cached is None or cached[0] is not schema:
        cached = _EMPTY[id(schema)] = (schema, pl.DataFrame(schema=schema))
    return cached[1]


def conform(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Columns in schema order and types; missing columns are null."""
    if _matches(frame, schema):
        return frame
    return frame.select(conforming(frame.columns, schema))


def conforming(columns: Iterable[str], schema: dict[str, pl.DataType]) -> list[pl.Expr]:
    """The select that conforms a frame with `columns` to `schema` (usable in a lazy chain);
    built once per shape, since a tick asks for the same few shapes many times (expressions
    are immutable, so sharing them is safe)."""
    present = frozenset(columns)
    key = (id(schema), present)
    cached = _CONFORMING.get(key)
    if cached is None or cached[0] is not schema:
        cached = _CONFORMING[key] = (schema, [
            (pl.col(name) if name in present else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in schema.items()
        ])
    return cached[1]


_CONFORMING: dict[tuple[int, frozenset[str]], tuple[dict[str, pl.DataType], list[pl.Expr]]] = {}


_SHAPES: dict[int, tuple[dict[str, pl.DataType], list[str], list[pl.DataType]]] = {}


def _matches(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> bool:
    """Same columns, order and types (lists compare much faster than Schema objects)."""
    shape = _SHAPES.get(id(schema))
    if shape is None or shape[0] is not schema:
        shape = _SHAPES[id(schema)] = (schema, list(schema), list(schema.values()))
    return frame.columns == shape[1] and frame.dtypes == shape[2]


@lru_cache(maxsize=64)
def moment(at: datetime) -> pl.Expr:
    """`pl.lit(at)`, built once per timestamp: a datetime literal builds a Series every time,
    and a tick uses its own time in hundreds of expressions."""
    return pl.lit(at)


def pick(frame: pl.DataFrame, mask: pl.Series, columns: Sequence[str]) -> pl.DataFrame:
    """`frame.filter(mask).select(columns)`, column by column: for the small frames of a tick
    this is far cheaper than a query."""
    return pl.DataFrame([frame.get_column(c).filter(mask) for c in columns])
