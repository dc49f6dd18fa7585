"""Catalyst's live match count: who meets a workflow's entry conditions now, before enabling."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import duckdb
import polars as pl

from cswf.engine.compile import compile_condition
from cswf.engine.evaluate import evaluate, verdict_column, with_previous
from cswf.engine.tick import run_tick
from cswf.facts.models import FACT_MODELS, build_facts
from cswf.facts.overlay import apply_field_updates, load_field_updates
from cswf.settings import Settings
from cswf.specs.conditions import fields_used, previous_tick_fields
from cswf.specs.loader import LoadedWorkflow
from cswf.specs.segments import LoadedSegment
from cswf.specs.workflow import WorkflowState
from cswf.store.tables import ensure_engine_tables
from cswf.store.warehouse import load_state


@dataclass(frozen=True)
class Preview:
    participants: int
    matching: int
    already_inside: int
    would_enter: int
    sample: pl.DataFrame


def preview(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    workflow: LoadedWorkflow,
    as_of: datetime,
    sample: int = 10,
) -> Preview:
    """Runs the real tick on the stored state with the workflow taken as enabled, and stores
    nothing, so "would enter" honours re-entry rules exactly as a live tick would."""
    ensure_engine_tables(con)
    now, prev_facts = tick_facts(con, settings, workflow.spec.object, as_of)
    enabled = taken_as_enabled(workflow)
    verdicts = evaluate(now, prev_facts, [enabled])
    matching = verdicts.filter(pl.col(verdict_column("entry", workflow.name)))
    state = load_state(con, as_of).filter(pl.col("workflow") == workflow.name)
    inside = matching.join(state.filter(pl.col("status") == "active"), on="participant_id",
                           how="semi").height
    result = run_tick(state, now, prev_facts, None, [enabled], as_of,
                      default_category=settings.default_category)
    entered = result.transitions.filter(pl.col("transition") == "entered").height
    shown = ["participant_id", *(c for c in ("account_name", "csm_name") if c in now.columns)]
    used = sorted(fields_used(workflow.spec.entry)) if workflow.spec.entry else []
    rows = now.join(matching.select("participant_id"), on="participant_id", how="semi")
    return Preview(
        participants=now.height,
        matching=matching.height,
        already_inside=inside,
        would_enter=entered,
        # Journey-stage fields (days_left_in_stage, ...) are derived, not facts: not shown.
        sample=rows.select(*shown, *(c for c in used if c not in shown and c in rows.columns))
        .head(sample),
    )


def taken_as_enabled(workflow: LoadedWorkflow) -> LoadedWorkflow:
    """The workflow as if enabled, with the enum, not the string "enabled": the engine compares
    with WorkflowState.enabled."""
    return replace(workflow, spec=workflow.spec.model_copy(
        update={"state": WorkflowState.enabled}))


def tick_facts(con: duckdb.DuckDBPyConnection, settings: Settings, participant: str,
               as_of: datetime) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """The facts a tick at `as_of` sees and those of the tick before, with the field updates
    the workflows made applied as at a tick (project/ticks.py)."""
    before = settings.calendar.previous(as_of)
    wanted = [t for t in (before, as_of) if t is not None]
    facts = build_facts(con, wanted, settings.facts_sql_path, FACT_MODELS[participant],
                        calendar=settings.calendar)
    now = apply_field_updates(facts.filter(pl.col("as_of") == as_of),
                              load_field_updates(con, as_of), as_of).facts
    prev_facts = None
    if before is not None:
        prev_facts = apply_field_updates(facts.filter(pl.col("as_of") == before),
                                         load_field_updates(con, before), before).facts
    return now, prev_facts


@dataclass(frozen=True)
class SegmentPreview:
    participants: int
    matching: int
    sample: pl.DataFrame


def preview_segment(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    segment: LoadedSegment,
    as_of: datetime,
    sample: int = 10,
) -> SegmentPreview:
    """Who is in a segment at as_of: its condition over the facts a tick would read."""
    ensure_engine_tables(con)
    now, prev_facts = tick_facts(con, settings, segment.object, as_of)
    schema = dict(now.schema)
    frame = with_previous(now, prev_facts, previous_tick_fields(segment.condition))
    rows = frame.filter(compile_condition(segment.condition, schema)).collect()
    shown = ["participant_id", *(c for c in ("account_name", "csm_name") if c in now.columns)]
    used = sorted(fields_used(segment.condition))
    return SegmentPreview(
        participants=now.height,
        matching=rows.height,
        sample=rows.select(*shown, *(c for c in used if c not in shown)).head(sample),
    )
