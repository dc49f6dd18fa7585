"""Which specs may run: every spec checked against its facts, categories and groups, and (when
the warehouse can be read) against the lifecycle rule for running workflows."""

from __future__ import annotations

import duckdb

from cswf.facts.models import FACT_MODELS, fact_schema
from cswf.settings import Settings
from cswf.specs.groups import load_groups
from cswf.specs.lifecycle import RUNNING, refusal, structural_changes
from cswf.specs.loader import LoadedWorkflow, SpecError, SpecSet, load_specs
from cswf.store.lock import WarehouseLocked
from cswf.store.warehouse import connect, running_versions


def check_specs(settings: Settings, con: duckdb.DuckDBPyConnection | None = None) -> SpecSet:
    """Every spec against the fact fields of its participant type, the categories, the user
    groups and, when the warehouse can be read, the lifecycle rule for running workflows."""
    objects = {name: fact_schema(settings.facts_sql_path, model, settings.landing_objects())
               for name, model in FACT_MODELS.items()}
    groups = load_groups(settings.groups_path)
    checked = load_specs(settings.specs_path, categories=settings.categories, objects=objects,
                         groups=list(groups) if settings.groups_path.exists() else None,
                         segments_dir=settings.segments_path)
    if con is None and settings.database_path.exists():
        try:
            with connect(settings.database_path, read_only=True) as reader:
                return with_lifecycle(checked, reader)
        except (duckdb.Error, WarehouseLocked):  # busy (a run holds it): the tick checks again
            return checked
    return with_lifecycle(checked, con) if con is not None else checked


def with_lifecycle(checked: SpecSet, con: duckdb.DuckDBPyConnection) -> SpecSet:
    """Refuse structural edits to workflows whose last run version was enabled or paused."""
    exists = con.execute("SELECT count(*) FROM information_schema.tables "
                         "WHERE table_name = 'workflow_versions'").fetchall()[0][0]
    if not exists:
        return checked
    running = running_versions(con)
    errors = list(checked.errors)
    for workflow in checked.workflows:
        stored = running.get(workflow.name)
        if stored is None or stored[0] == workflow.version:
            continue
        _, state, before = stored
        if state in RUNNING and workflow.spec.state.value != "disabled":  # draft keeps them
            changes = structural_changes(before, workflow.structure())
            if changes:
                errors.append(SpecError(workflow.file.name, "steps",
                                        refusal(workflow.name, state, changes)))
    refused = {e.file for e in errors}
    return SpecSet([w for w in checked.workflows if w.file.name not in refused], errors,
                   checked.segments)


def workflow_names(settings: Settings) -> list[str]:
    """The workflows a deploy request may name: every spec that parses (no fact or warehouse
    checks needed for that)."""
    return [w.name for w in load_specs(settings.specs_path,
                                       segments_dir=settings.segments_path).workflows]


def load_workflows(settings: Settings) -> list[LoadedWorkflow]:
    return check_specs(settings).require_valid()
