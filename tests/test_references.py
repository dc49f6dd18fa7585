"""Reference documents: links on workflows and milestones, carried into every task they create,
through the outbox payload into the CRM task export; bad links refused with the path."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from engine_harness import START, Run, spec
from test_delivery_servers import NOW, add_actions, make_config, warehouse

from cswf.delivery import deliver
from cswf.engine.frames import ACTION_SCHEMA
from cswf.specs.loader import SpecErrors

PLAYBOOK = {"title": "Onboarding playbook", "url": "https://wiki.acme.example/onboarding"}
DECK = {"title": "Kickoff deck", "url": "https://drive.acme.example/kickoff.pdf"}
ONBOARDING = """
name: onboarding_plan
owner: {field: csm_email}
state: enabled
entry: {field: stage, op: eq, value: onboarding}
reentry: {mode: none}
references:
  - {title: Onboarding playbook, url: "https://wiki.acme.example/onboarding"}
milestones:
  - name: kickoff
    trigger_days: 0
    due_days: 3
    references: [{title: Kickoff deck, url: "https://drive.acme.example/kickoff.pdf"}]
  - {name: first_value, trigger_days: 5, due_days: 10}
steps:
  - name: welcome
    actions:
      - {type: task, title: "Welcome {{ participant_id }}"}
      - {type: email, to: email, subject: "Welcome", body: "Hi"}
"""


def links_by_step() -> dict[str, list[dict[str, str]] | None]:
    run = Run([spec(ONBOARDING)])
    run.days([[{"participant_id": "ann", "stage": "onboarding", "csm_email": "ana@acme.example",
                "email": "ann@customer.test"}]] * 6)
    rows = run.actions().select("step_name", "action_type", "payload").rows()
    return {f"{step} ({kind})": json.loads(payload).get("references")
            for step, kind, payload in rows}


def test_tasks_carry_the_workflows_links_and_a_milestones_own_first() -> None:
    assert links_by_step() == {
        "welcome (task)": [PLAYBOOK],
        "welcome (email)": None,  # links are for whoever works a task
        "(workflow task) (task)": [PLAYBOOK],
        "milestone: kickoff (task)": [DECK, PLAYBOOK],
        "milestone: first_value (task)": [PLAYBOOK],
    }


def test_the_crm_task_export_has_the_links(tmp_path: Path) -> None:
    run = Run([spec(ONBOARDING)])
    run.tick(START, [{"participant_id": "ann", "stage": "onboarding",
                      "csm_email": "ana@acme.example", "email": "ann@customer.test"}])
    tasks = run.actions().filter(pl.col("action_type") == "task").with_columns(
        pl.lit(NOW - timedelta(hours=1)).alias("tick"))
    con = warehouse()
    add_actions(con, tasks.select(list(ACTION_SCHEMA)).to_dicts())
    deliver(con, {}, make_config(tmp_path), NOW)
    exported = con.sql("SELECT step_name, reference_links FROM crm_tasks "
                       "ORDER BY step_name").fetchall()
    assert exported == [("(workflow task)", [PLAYBOOK]),
                        ("milestone: kickoff", [DECK, PLAYBOOK]),
                        ("welcome", [PLAYBOOK])]
    parquet = pl.read_parquet(tmp_path / "exports" / "crm_tasks.parquet")
    assert sorted(map(len, parquet["reference_links"].to_list())) == [1, 1, 2]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('url: "ftp://files.acme.example/x"', "references.0.url: 'ftp://files.acme.example/x' "
         "is not an http(s) address (like https://wiki.acme.example/playbooks/onboarding)"),
        ('url: "javascript:alert(1)"', "references.0.url: 'javascript:alert(1)' is not an "
         "http(s) address (like https://wiki.acme.example/playbooks/onboarding)"),
        ('url: "https://"', "references.0.url: 'https://' is not an http(s) address (like "
         "https://wiki.acme.example/playbooks/onboarding)"),
        ('title: "  "', "references.0.title: a reference title is one non-empty line"),
    ],
)
def test_bad_links_are_refused_with_the_path(bad: str, message: str) -> None:
    key = bad.split(":", 1)[0]
    original = {"url": 'url: "https://wiki.acme.example/onboarding"',
                "title": "title: Onboarding playbook"}[key]
    with pytest.raises(SpecErrors) as raised:
        spec(ONBOARDING.replace(original, bad, 1))
    assert [str(e) for e in raised.value.errors] == [f"onboarding_plan.yaml: {message}"]


def test_a_milestones_bad_link_names_the_milestone() -> None:
    with pytest.raises(SpecErrors) as raised:
        spec(ONBOARDING.replace('"https://drive.acme.example/kickoff.pdf"', "kickoff.pdf"))
    assert [str(e) for e in raised.value.errors] == [
        "onboarding_plan.yaml: milestones.0.references.0.url: 'kickoff.pdf' is not an http(s) "
        "address (like https://wiki.acme.example/playbooks/onboarding)"]


def test_a_dry_run_previews_tasks_with_their_links(tmp_path: Path) -> None:
    run = Run([spec(ONBOARDING)])
    run.tick(START, [{"participant_id": "ann", "stage": "onboarding",
                      "csm_email": "ana@acme.example", "email": "ann@customer.test"}])
    kickoff = run.actions().filter(pl.col("step_name") == "milestone: kickoff").with_columns(
        pl.lit(NOW - timedelta(hours=1)).alias("tick"))
    con = warehouse()
    add_actions(con, kickoff.select(list(ACTION_SCHEMA)).to_dicts())
    deliver(con, {}, make_config(tmp_path, dry_run=True), NOW)
    (preview,) = (tmp_path / "preview").glob("*.json")
    assert json.loads(preview.read_text())["payload"]["references"] == [DECK, PLAYBOOK]
