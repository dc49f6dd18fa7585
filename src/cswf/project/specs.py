"""Which specs may run: every spec checked against its facts, categories and groups, and (when
the warehouse can be read) against the lifecycle rule for running workflows."""

from __future__ import annotations

from pathlib import Path

import duckdb

from cswf.facts.models import FACT_MODELS, fact_schema
from cswf.settings import Settings
from cswf.specs.groups import load_groups
from cswf.specs.lifecycle import (
    RUNNING,
    back_to_draft,
    fixed_setting,
    refusal,
    spec_gone,
    structural_changes,
)
from cswf.specs.loader import LoadedWorkflow, SpecError, SpecSet, load_specs
from cswf.store.lock import WarehouseLocked
from cswf.store.warehouse import StoredWorkflow, connect, inside_by_workflow, stored_workflows


def check_specs(settings: Settings, con: duckdb.DuckDBPyConnection | None = None, *,
                warehouse: bool = True) -> SpecSet:
    """Every spec against the fact fields of its participant type, the categories, the user
    groups and, when the warehouse can be read (and `warehouse`: a shard step, whose prepare
    step checked it, does not open it), the lifecycle rule for running workflows."""
    objects = {name: fact_schema(settings.facts_sql_path, model, settings.landing_objects())
               for name, model in FACT_MODELS.items()}
    groups = load_groups(settings.groups_path)
    checked = load_specs(settings.specs_path, categories=settings.categories, objects=objects,
                         groups=list(groups) if settings.groups_path.exists() else None,
                         segments_dir=settings.segments_path)
    if con is None and warehouse and settings.database_path.exists():
        try:
            with connect(settings.database_path, read_only=True) as reader:
                return with_lifecycle(checked, reader)
        except (duckdb.Error, WarehouseLocked):  # busy (a run holds it): the tick checks again
            return checked
    return with_lifecycle(checked, con) if con is not None else checked


def with_lifecycle(checked: SpecSet, con: duckdb.DuckDBPyConnection) -> SpecSet:
    """Refuse edits the lifecycle forbids (specs/lifecycle.py), and report the running workflows
    whose spec is gone while participants are inside."""
    exists = con.execute("SELECT count(*) FROM information_schema.tables "
                         "WHERE table_name = 'workflow_versions'").fetchall()[0][0]
    if not exists:
        return checked
    stored = stored_workflows(con)
    errors = list(checked.errors)
    for workflow in checked.workflows:
        before = stored.get(workflow.name)
        if before is not None and before.version != workflow.version:
            errors.extend(SpecError(workflow.file.name, key, message)
                          for key, message in _refusals(workflow, before))
    present = {w.name for w in checked.workflows} | {Path(e.file).stem for e in checked.errors}
    for name, inside in sorted(inside_by_workflow(con).items()):
        if name not in present and name in stored and stored[name].state in RUNNING:
            errors.append(SpecError(f"{name}.yaml", "", spec_gone(name, inside,
                                                                   stored[name].state)))
    refused = {e.file for e in errors}
    return SpecSet([w for w in checked.workflows if w.file.name not in refused], errors,
                   checked.segments)


def _refusals(workflow: LoadedWorkflow, before: StoredWorkflow) -> list[tuple[str, str]]:
    """(key, message) for each lifecycle rule an edit breaks."""
    spec, state = workflow.spec, before.state
    if spec.state.value == "draft":
        return [("state", back_to_draft(workflow.name))] if before.ever_running else []
    if state not in RUNNING:
        return []
    found = [(key, fixed_setting(workflow.name, state, key, old, new))
             for key, old, new in (("object", before.object, spec.object),
                                   ("launch", before.launch, spec.launch)) if old != new]
    if spec.state.value != "disabled":
        changes = structural_changes(before.structure, workflow.structure())
        if changes:
            found.append(("steps", refusal(workflow.name, state, changes)))
    return found


def workflow_names(settings: Settings) -> list[str]:
    """The workflows a deploy request may name: every spec that parses (no fact or warehouse
    checks needed for that)."""
    return [w.name for w in load_specs(settings.specs_path,
                                       segments_dir=settings.segments_path).workflows]


def load_workflows(settings: Settings, *, warehouse: bool = True) -> list[LoadedWorkflow]:
    return check_specs(settings, warehouse=warehouse).require_valid()
