"""Turn the participants that reach an action step into rows of the actions outbox.

The engine sets what every action row has (ids, tick, workflow, step, category, status, error);
each action type fills its own columns (`ActionSpec.outbox`, specs/actions/).
"""

from __future__ import annotations

from functools import lru_cache

import polars as pl

from cswf.engine.context import TickContext
from cswf.engine.frames import ACTION_SCHEMA, ROW, conforming, moment
from cswf.engine.render import render, substitution
from cswf.specs.action import OUTBOX_COLUMNS, OutboxContext, Text, owner_columns
from cswf.specs.loader import (
    TEMPLATE_CONTEXT,
    LoadedWorkflow,
    action_key,
    template_variables,
)
from cswf.specs.references import as_payload
from cswf.specs.workflow import ActionStep

__all__ = ["build_step_actions", "owner_columns"]  # owner_columns: also milestones' tasks

PARTICIPANT = "participant_id"
IDS = ("enrollment_id", PARTICIPANT, "version")  # every action row's own, never a fact's


def build_step_actions(
    ready: pl.DataFrame,
    context: TickContext,
    workflow: LoadedWorkflow,
    step_index: int,
    step: ActionStep,
) -> pl.DataFrame:
    """One row per (participant, action); ids are enrollment id + step + action, so stable."""
    spec, as_of, default_category = workflow.spec, context.as_of, context.default_category
    facts = context.facts.select(pl.col(_read(workflow, step_index, tuple(context.facts.columns)))
                                 .gather(ready[ROW]))
    base = pl.DataFrame([ready[c] for c in IDS]).hstack(facts.get_columns())
    constants = {"workflow": spec.name, "as_of": as_of, "step": step.name}
    frames = []
    for index, action in enumerate(step.actions):
        key = action_key(step_index, index)

        def text(part: str, *, autoescape: bool = False, key: str = key,
                 base: pl.DataFrame = base) -> tuple[Text, Text]:
            """(rendered, error): an expression when the template is a plain substitution
            (computed in the one query below), else Jinja2's output."""
            template = workflow.templates[f"{key}.{part}"]
            fast = substitution(base, template, constants, autoescape=autoescape)
            if fast is not None:
                return fast, pl.lit(None, dtype=pl.String)
            out = render(base, template, constants, autoescape=autoescape,
                         budget=context.render_budget)
            return out["rendered"], out["error"]

        category = action.category or spec.category or default_category
        outbox = action.outbox(OutboxContext(text, spec.owner, moment(as_of),
                                             as_payload(spec.references)))
        columns, errors = outbox.columns, outbox.errors
        base = _with_undeclared(base, [*columns.values(), *errors], context, ready)
        strange = set(columns) - OUTBOX_COLUMNS
        if strange:
            raise ValueError(f"action type {action.type!r} fills {sorted(strange)}; an action "
                             f"fills only {sorted(OUTBOX_COLUMNS)} (the rest goes in payload)")
        error = pl.coalesce(errors) if errors else pl.lit(None, dtype=pl.String)
        frame = base.lazy().with_columns(
            (pl.col("enrollment_id") + f"/{key}").alias("action_id"),
            moment(as_of).alias("tick"),
            pl.lit(spec.name).alias("workflow"),
            pl.lit(step_index).alias("step"),
            pl.lit(step.name).alias("step_name"),
            pl.lit(index).alias("action_index"),
            pl.lit(action.type).alias("action_type"),
            pl.lit(category).alias("category"),
            pl.lit(action.on_error).alias("on_error"),
            **columns,
        ).with_columns(
            error.alias("error"),
        ).with_columns(
            pl.when(pl.col("error").is_null()).then(pl.lit("pending"))
            .otherwise(pl.lit("render_failed")).alias("status"),
        )
        names = [*IDS, "action_id", "tick", "workflow", "step", "step_name",
                 "action_index", "action_type", "category", "on_error", *columns, "error",
                 "status"]
        frames.append(frame.select(conforming(names, ACTION_SCHEMA)))
    return pl.concat(frames).collect()  # the step's actions in one query


@lru_cache(maxsize=1024)
def _read(workflow: LoadedWorkflow, step_index: int, columns: tuple[str, ...]) -> list[str]:
    """The fact columns the actions of one step may read (their templates, owners and
    recipients, an action type's own `fact_fields`, the workflow's owner): only those are
    gathered for the rows that reach it, not every field the workflow's conditions read."""
    wanted = set(TEMPLATE_CONTEXT)
    if workflow.spec.owner.field is not None:
        wanted.add(workflow.spec.owner.field)
    for node, position, action in workflow.flow.actions():
        if node.index != step_index:
            continue
        prefix = f"{action_key(step_index, position)}."
        for key, text in workflow.templates.items():
            if key.startswith(prefix):
                wanted |= template_variables(text)
        wanted |= {owner.field for _, owner in action.owners() if owner.field is not None}
        wanted |= action.fact_fields()
    return [c for c in columns if c in wanted and c not in IDS]


def _with_undeclared(base: pl.DataFrame, texts: list[Text], context: TickContext,
                     ready: pl.DataFrame) -> pl.DataFrame:
    """`base` with the fact columns an action's expressions read that its type did not name
    in `fact_fields()` (docs/extending.md asks it to): gathered too, rather than failing."""
    read = set().union(*(t.meta.root_names() for t in texts if isinstance(t, pl.Expr)))
    missing = [c for c in context.facts.columns
               if c in read and c not in base.columns and c not in IDS]
    if not missing:
        return base
    return base.hstack(context.facts.select(pl.col(missing).gather(ready[ROW])).get_columns())
