"""Turn the participants that reach an action step into rows of the actions outbox."""

from __future__ import annotations

import json

import polars as pl

from cswf.engine.context import TickContext
from cswf.engine.frames import ACTION_SCHEMA, ROW, conforming, moment
from cswf.engine.render import render, substitution
from cswf.specs.loader import LoadedWorkflow, action_key
from cswf.specs.workflow import (
    ActionStep,
    EmailAction,
    Owner,
    TaskAction,
    WebhookAction,
)

PARTICIPANT = "participant_id"
Text = pl.Expr | pl.Series  # a rendered column: an expression, or Jinja2's values


def _settings(**settings: object) -> pl.Expr:
    """The action's settings that have no column of their own, as JSON (the same for every
    participant, so encoded once)."""
    return pl.lit(json.dumps(settings, sort_keys=True))


def owner_columns(owner: Owner) -> dict[str, pl.Expr]:
    """assignee and owner_group; a group's task is handed to a member later (engine/assign.py),
    until then (or with no groups configured) the assignee reads `group:<name>`."""
    if owner.field is not None:
        assignee = pl.col(owner.field).cast(pl.String)
    elif owner.group is not None:
        assignee = pl.lit(f"group:{owner.group}")
    else:
        assignee = pl.lit(owner.user)
    return {"assignee": assignee, "owner_group": pl.lit(owner.group, dtype=pl.String)}


def build_step_actions(
    ready: pl.DataFrame,
    context: TickContext,
    workflow: LoadedWorkflow,
    step_index: int,
    step: ActionStep,
) -> pl.DataFrame:
    """One row per (participant, action); ids are enrollment id + step + action, so stable."""
    spec, as_of, default_category = workflow.spec, context.as_of, context.default_category
    facts = context.facts.select(pl.all().exclude(PARTICIPANT).gather(ready[ROW]))
    base = pl.DataFrame([ready[c] for c in ("enrollment_id", PARTICIPANT, "version")]) \
        .hstack(facts.get_columns())
    constants = {"workflow": spec.name, "as_of": as_of, "step": step.name}
    frames = []
    for index, action in enumerate(step.actions):
        key = action_key(step_index, index)

        def text(part: str, *, autoescape: bool = False, key: str = key) -> tuple[Text, Text]:
            """(rendered, error): an expression when the template is a plain substitution
            (computed in the one query below), else Jinja2's output."""
            template = workflow.templates[f"{key}.{part}"]
            fast = substitution(base, template, constants, autoescape=autoescape)
            if fast is not None:
                return fast, pl.lit(None, dtype=pl.String)
            out = render(base, template, constants, autoescape=autoescape)
            return out["rendered"], out["error"]

        category = action.category or spec.category or default_category
        columns: dict[str, Text] = {}
        errors: list[Text] = []
        if isinstance(action, TaskAction):
            title, description = text("title"), text("description")
            columns = {
                **owner_columns(action.assignee or spec.owner),
                "due_at": moment(as_of) + pl.duration(days=action.due_days),
                "subject": title[0],
                "body": description[0],
                "payload": _settings(priority=action.priority, subtasks=action.subtasks,
                                     due_days=action.due_days),
            }
            errors = [title[1], description[1]]
        elif isinstance(action, EmailAction):
            html = (action.template or "").endswith((".html", ".html.j2"))
            subject, body = text("subject"), text("body", autoescape=html)
            columns = {
                **owner_columns(spec.owner),
                "recipient": pl.col(action.to_field).cast(pl.String)
                if action.to_field is not None
                else pl.lit(action.to_contacts.recipient() if action.to_contacts else None),
                "subject": subject[0],
                "body": body[0],
                "payload": _settings(
                    to_field=action.to_field, template=action.template, html=html,
                    to_contacts=action.to_contacts.model_dump(exclude_defaults=True)
                    if action.to_contacts else None,
                ),
            }
            errors = [subject[1], body[1]]
        elif isinstance(action, WebhookAction):
            message = text("text")
            columns = {
                **owner_columns(spec.owner),
                "subject": message[0],
                "body": message[0],
                "payload": _settings(endpoint=action.endpoint),
            }
            errors = [message[1]]
        else:
            if isinstance(action.value, str):
                rendered, error = text("value")
                errors = [error]
            else:
                rendered = pl.lit(None if action.value is None else str(action.value),
                                  dtype=pl.String)
            columns = {
                **owner_columns(spec.owner),
                "subject": pl.lit(f"set {action.field}"),
                "body": rendered,
                "payload": pl.struct(field=pl.lit(action.field), value=rendered)
                .struct.json_encode(),
            }
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
        names = [*base.columns, "action_id", "tick", "workflow", "step", "step_name",
                 "action_index", "action_type", "category", "on_error", *columns, "error",
                 "status"]
        frames.append(frame.select(conforming(names, ACTION_SCHEMA)).collect())
    return pl.concat(frames)
