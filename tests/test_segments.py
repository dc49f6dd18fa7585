"""Segments: named conditions in segments/*.yaml, used as `{segment: name}` in entry, exit,
branch and wait conditions, checked like a spec, and part of the versions of the workflows
that use them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from test_cli_errors import cswf, make_project
from test_preview import preview_line

from cswf.engine.evaluate import evaluate, verdict_column
from cswf.facts.models import fact_schema
from cswf.specs.conditions import AllOf, Leaf, Not
from cswf.specs.loader import SpecSet, load_specs
from cswf.specs.workflow import BranchStep, WaitStep

AT_RISK = """
name: at_risk
description: Scored accounts below 60
condition:
  all:
    - {field: health_score, op: lt, value: 60}
    - {field: health_score, op: not_null}
"""
BIG_AT_RISK = """
name: big_at_risk
condition:
  all:
    - {segment: at_risk}
    - {field: tier, op: eq, value: enterprise}
"""
RESCUE = """
name: rescue
owner: {field: csm_email}
state: enabled
entry: {segment: big_at_risk}
exit: {not: {segment: at_risk}}
steps:
  - name: sort
    branch:
      - name: risky
        when: {segment: at_risk}
        steps:
          - name: call
            actions: [{type: task, title: "Call {{ account_name }}"}]
      - name: other
        when: {field: tier, op: ne, value: enterprise}
        steps: []
  - name: until_better
    wait:
      until: {not: {segment: at_risk}}
      max_days: 30
"""
PLAIN = """
name: plain
owner: {field: csm_email}
entry: {field: tier, op: eq, value: smb}
steps:
  - name: hi
    actions: [{type: task, title: hi}]
"""


def project(tmp_path: Path, segments: dict[str, str], specs: dict[str, str]) -> SpecSet:
    for folder, files in (("segments", segments), ("workflow_specs", specs)):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (tmp_path / folder / name).write_text(text)
    objects = {"account": fact_schema(None, "account_facts"),
               "contact": fact_schema(None, "contact_facts")}
    return load_specs(tmp_path / "workflow_specs", objects=objects)


def errors(found: SpecSet) -> list[str]:
    return [str(e) for e in found.errors]


@pytest.fixture
def rescue(tmp_path: Path) -> SpecSet:
    return project(tmp_path, {"at_risk.yaml": AT_RISK, "big_at_risk.yaml": BIG_AT_RISK},
                   {"rescue.yaml": RESCUE})


def test_segments_in_entry_exit_branch_and_wait(rescue: SpecSet) -> None:
    assert errors(rescue) == []
    (workflow,) = rescue.workflows
    at_risk = AllOf(all=[Leaf(field="health_score", op="lt", value=60),
                         Leaf(field="health_score", op="not_null")])
    assert workflow.spec.entry == AllOf(all=[at_risk, Leaf(field="tier", op="eq",
                                                           value="enterprise")])
    assert workflow.spec.exit == Not(not_=at_risk)
    branch, wait = (node.step for node in workflow.flow if isinstance(node.step, BranchStep |
                                                                       WaitStep))
    assert branch.branch[0].when == at_risk
    assert wait.wait.until == Not(not_=at_risk)
    assert workflow.fact_fields() >= {"health_score", "tier"}
    assert rescue.segments["big_at_risk"].condition == workflow.spec.entry


def test_the_engine_reads_a_segment_as_its_condition(rescue: SpecSet) -> None:
    facts = pl.DataFrame({
        "participant_id": ["a1", "a2", "a3", "a4"],
        "as_of": [datetime(2026, 6, 1)] * 4,
        "health_score": [40.0, 40.0, 80.0, None],
        "tier": ["enterprise", "smb", "enterprise", "enterprise"],
    })
    verdicts = evaluate(facts, None, rescue.workflows)
    assert verdicts.select("participant_id", verdict_column("entry", "rescue"),
                           verdict_column("exit", "rescue")).rows() == [
        ("a1", True, False), ("a2", False, False), ("a3", False, True), ("a4", False, True)]


def test_segment_errors(tmp_path: Path) -> None:
    found = project(tmp_path, {
        "at_risk.yaml": AT_RISK,
        "loop_a.yaml": "name: loop_a\ncondition: {segment: loop_b}\n",
        "loop_b.yaml": "name: loop_b\ncondition: {segment: loop_a}\n",
        "typo.yaml": "name: typo\ncondition: {field: helth_score, op: lt, value: 60}\n",
        "people.yaml": "name: people\nobject: contact\ncondition: {segment: at_risk}\n",
    }, {
        "rescue.yaml": RESCUE.replace("{segment: big_at_risk}", "{segment: at_riks}"),
        "contacts.yaml": PLAIN.replace("name: plain", "name: contacts\nobject: contact")
        .replace("{field: tier, op: eq, value: smb}", "{segment: at_risk}"),
        "broken.yaml": PLAIN.replace("name: plain", "name: broken")
        .replace("{field: tier, op: eq, value: smb}", "{segment: typo}"),
    })
    assert [e for e in errors(found) if "helth_score" not in e] == [
        "segments/loop_b.yaml: condition.segment: segments use each other in a circle: "
        "loop_a → loop_b → loop_a; a segment cannot contain itself",
        "segments/loop_a.yaml: condition.segment: segment 'loop_b' has errors: see "
        "segments/loop_b.yaml",
        "segments/people.yaml: condition.segment: segment 'at_risk' describes accounts; this "
        "segment is about contacts (a segment is used only with its own object)",
        "broken.yaml: entry.segment: segment 'typo' has errors: see segments/typo.yaml",
        "contacts.yaml: entry.segment: segment 'at_risk' describes accounts; this workflow is "
        "about contacts (a segment is used only with its own object)",
        "rescue.yaml: entry.segment: unknown segment 'at_riks' (did you mean 'at_risk'?); "
        "segments: at_risk",
    ]
    (typo,) = [e for e in errors(found) if "helth_score" in e]
    assert typo.startswith("segments/typo.yaml: condition.field: unknown field 'helth_score' "
                           "(did you mean 'health_score'?)")
    assert found.workflows == []


def test_a_segment_key_typo_is_named(tmp_path: Path) -> None:
    found = project(tmp_path, {"at_risk.yaml": AT_RISK.replace("condition:", "conditon:")}, {})
    assert errors(found) == [
        "segments/at_risk.yaml: condition: Field required",
        "segments/at_risk.yaml: conditon: unknown key (not part of the spec language); did you "
        "mean 'condition'?"]


def test_a_segment_edit_changes_the_versions_of_its_users_only(tmp_path: Path) -> None:
    specs = {"rescue.yaml": RESCUE, "plain.yaml": PLAIN}
    segments = {"at_risk.yaml": AT_RISK, "big_at_risk.yaml": BIG_AT_RISK}
    before = {w.name: w for w in project(tmp_path, segments, specs).workflows}
    segments["at_risk.yaml"] = AT_RISK.replace("value: 60", "value: 50")
    after = {w.name: w for w in project(tmp_path, segments, specs).workflows}
    assert after["rescue"].version != before["rescue"].version
    assert after["rescue"].structure() == before["rescue"].structure()  # not structural
    assert after["plain"].version == before["plain"].version
    # a spec without segments keeps the version it had before segments existed
    alone = tmp_path / "alone"
    assert project(alone, {}, {"plain.yaml": PLAIN}).workflows[0].version == \
        before["plain"].version


def test_preview_of_a_segment(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    (root / "segments").mkdir()
    (root / "segments/big.yaml").write_text(
        "name: big\ndescription: Enterprise accounts\n"
        "condition: {field: tier, op: eq, value: enterprise}\n")
    for args in (["big"], ["--segment", "big"]):
        code, out, err = cswf("preview", *args, "--as-of", "2026-06-01T00:00", "--root",
                              str(root))
        assert code == 0, out + err
        assert " ".join(out.split("\n")[0].split()) == (
            "segment big as of 2026-06-01 00:00: 1 of 2 accounts match (Enterprise accounts).")
        assert "a1" in out and "a2" not in out
    assert preview_line(root, "hello", "2026-06-01T00:00").startswith("hello as of")
    code, out, err = cswf("preview", "--segment", "bigg", "--as-of", "2026-06-01T00:00",
                          "--root", str(root))
    assert code != 0
    assert "unknown segment 'bigg' (did you mean 'big'?); segments: big" in err


def test_deploy_where_names_a_segment(tmp_path: Path) -> None:
    root = make_project(tmp_path, {"hello.yaml": PLAIN.replace("name: plain", "name: hello")
                                   .replace("entry: {field: tier, op: eq, value: smb}\n", "")
                                   + "manual_entry: true\n"})
    (root / "segments").mkdir()
    (root / "segments/big.yaml").write_text(
        "name: big\ncondition: {field: tier, op: eq, value: enterprise}\n")
    assert cswf("ingest", "--root", str(root))[0] == 0
    code, out, err = cswf("deploy", "hello", "--where", "{segment: big}", "--at",
                          "2026-06-01T01:00", "--root", str(root))
    assert code == 0, out + err
    assert "for 1 participant(s) of hello" in out
    code, out, err = cswf("deploy", "hello", "--where", "{segment: bgi}", "--at",
                          "2026-06-01T01:00", "--root", str(root))
    assert code == 1
    assert "unknown segment 'bgi' (did you mean 'big'?); segments: big" in err


def test_an_objective_may_be_a_segment_of_one_field(tmp_path: Path) -> None:
    healthy = "name: healthy\ncondition: {field: health_score, op: ge, value: 70}\n"
    spec = PLAIN.replace("steps:", "objective: {condition: {segment: healthy}}\nsteps:")
    found = project(tmp_path, {"healthy.yaml": healthy, "at_risk.yaml": AT_RISK},
                    {"plain.yaml": spec})
    assert errors(found) == []
    (workflow,) = found.workflows
    assert workflow.spec.objective is not None
    assert workflow.spec.objective.condition == Leaf(field="health_score", op="ge", value=70)
    (tmp_path / "workflow_specs" / "plain.yaml").write_text(spec.replace(
        "{segment: healthy}", "{all: [{segment: healthy}, {field: tier, op: eq, value: smb}]}"))
    found = load_specs(tmp_path / "workflow_specs",
                       objects={"account": fact_schema(None, "account_facts")})
    assert errors(found) == ["plain.yaml: objective: an objective reads exactly one field; "
                             "this one reads ['health_score', 'tier']"]
