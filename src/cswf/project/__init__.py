"""The orchestration layer: one call per thing a person or a scheduler asks of a project.

The CLI, the Dagster assets and notebooks call these; each loads, calls the stages (ingest →
facts → engine → store → delivery → reports) and stores. No workflow behaviour is decided here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb

from cswf.ingest.landing import EVENTS_FOLDER, LandingReport, ingest_all
from cswf.project.backtest import Backtest, backtest
from cswf.project.deliver import approve_delivery_spike, deliver_outbox
from cswf.project.deploy import deploy, remove
from cswf.project.explain import Explanation, UnknownParticipant, explain
from cswf.project.guards import TickHeld, approve, reject, require_no_hold
from cswf.project.preview import Preview, SegmentPreview, preview, preview_segment
from cswf.project.reports import Reports, publish_bi_copy, refresh_reports, store_action_insights
from cswf.project.specs import check_specs, load_workflows, with_lifecycle, workflow_names
from cswf.project.ticks import (
    BlockedTick,
    OnTick,
    Respond,
    RunSummary,
    StoredFacts,
    materialize_facts,
    require_clean_snapshots,
    run_ticks,
    store_facts,
    ticks_in,
)
from cswf.settings import Settings
from cswf.specs.loader import SpecErrors
from cswf.store.holds import holds


def ingest(con: duckdb.DuckDBPyConnection, settings: Settings, now: datetime | None = None,
           known_workflows: Sequence[str] | None = None) -> LandingReport:
    """Every landing file of the project (see `ingest.landing.ingest_all`)."""
    return ingest_all(con, settings.landing_path, now, known_workflows,
                      settings.landing_objects())


__all__ = [
    "EVENTS_FOLDER",
    "Backtest",
    "BlockedTick",
    "Explanation",
    "LandingReport",
    "OnTick",
    "Preview",
    "Reports",
    "Respond",
    "RunSummary",
    "SegmentPreview",
    "SpecErrors",
    "StoredFacts",
    "TickHeld",
    "UnknownParticipant",
    "approve",
    "approve_delivery_spike",
    "backtest",
    "check_specs",
    "deliver_outbox",
    "deploy",
    "explain",
    "holds",
    "ingest",
    "load_workflows",
    "materialize_facts",
    "preview",
    "preview_segment",
    "publish_bi_copy",
    "refresh_reports",
    "reject",
    "remove",
    "require_clean_snapshots",
    "require_no_hold",
    "run_ticks",
    "store_action_insights",
    "store_facts",
    "ticks_in",
    "with_lifecycle",
    "workflow_names",
]
