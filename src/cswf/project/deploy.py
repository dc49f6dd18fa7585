"""Manual deploys: to chosen participants or to every match of a filter; and manual exits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb

from cswf.engine.compile import compile_condition
from cswf.facts.models import FACT_MODELS, build_facts, fact_schema
from cswf.ingest.deploys import request_deploys
from cswf.ingest.removals import request_removals
from cswf.settings import Settings
from cswf.specs.conditions import Condition, leaves
from cswf.specs.loader import LoadedWorkflow, check_leaf


def deploy(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    workflow: LoadedWorkflow,
    requested_by: str,
    requested_at: datetime,
    participants: Sequence[str] = (),
    where: Condition | None = None,
) -> tuple[int, int]:
    """Request a manual deploy; a filter is read as of the last tick at or before the request
    (as the engine last saw the facts). The next tick honours or refuses each one.
    Returns (participants chosen, requests stored)."""
    chosen = list(participants)
    model = FACT_MODELS[workflow.spec.object]
    if where is not None:
        schema = fact_schema(settings.facts_sql_path, model, settings.landing_objects())
        problems = [m for _, leaf in leaves(where) for _, m in check_leaf(leaf, schema)]
        if problems:
            raise ValueError("; ".join(problems))
        last = settings.calendar.latest(requested_at)
        if last is None:
            raise ValueError(f"no tick at or before {requested_at}")
        facts = build_facts(con, [last], settings.facts_sql_path, model,
                            calendar=settings.calendar)
        hits = facts.filter(compile_condition(where, dict(facts.schema)))
        chosen += hits["participant_id"].to_list()
    stored = request_deploys(con, workflow.name, chosen, requested_by, requested_at)
    return len(set(chosen)), stored


def remove(
    con: duckdb.DuckDBPyConnection,
    workflow: LoadedWorkflow,
    participants: Sequence[str],
    reason: str,
    requested_by: str,
    requested_at: datetime,
) -> int:
    """Request manual exits; the next tick exits each participant inside (the transition says
    who, when and why) or logs that it was not inside. Returns the requests stored."""
    return request_removals(con, workflow.name, participants, reason, requested_by,
                            requested_at)
