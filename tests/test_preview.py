"""`cswf preview`: who would enter a workflow at a tick, counted as a live tick would count."""

from __future__ import annotations

from pathlib import Path

from test_cli_errors import SPEC, cswf, make_project

DRAFT = SPEC.replace("state: enabled", "state: draft")
# Enabled, and a participant stays inside a week after its first step.
STAYING = SPEC + """  - name: later
    delay: {days: 7}
"""
# An enabled workflow that makes every account enterprise (a field update) at its first tick.
PROMOTE = """
name: promote
owner: {field: csm_email}
state: enabled
entry: {field: tier, op: eq, value: smb}
steps:
  - name: upgrade
    actions: [{type: field_update, field: tier, value: enterprise}]
"""


def preview_line(root: Path, workflow: str, at: str) -> str:
    code, out, err = cswf("preview", workflow, "--as-of", at, "--root", str(root))
    assert code == 0, out + err
    return " ".join(out.split("\n")[0].split())


def test_a_draft_counts_who_would_enter(tmp_path: Path) -> None:
    root = make_project(tmp_path, {"hello.yaml": DRAFT})
    assert preview_line(root, "hello", "2026-06-01T00:00") == (
        "hello as of 2026-06-01 00:00: 1 of 2 participants meet the entry conditions; "
        "0 already inside, 1 would enter at this tick if enabled.")


def test_an_enabled_workflow_counts_who_is_inside(tmp_path: Path) -> None:
    root = make_project(tmp_path, {"hello.yaml": STAYING})
    code, out, err = cswf("tick", "--as-of", "2026-06-01T00:00", "--root", str(root))
    assert code == 0, out + err
    assert preview_line(root, "hello", "2026-06-01T03:00") == (
        "hello as of 2026-06-01 03:00: 1 of 2 participants meet the entry conditions; "
        "1 already inside, 0 would enter at this tick.")


def test_preview_sees_the_field_updates_workflows_made(tmp_path: Path) -> None:
    """a2 is smb in the snapshot; `promote` set it to enterprise at 00:00, so at 03:00 the
    draft `hello` would take both accounts in, as a tick would."""
    root = make_project(tmp_path, {"hello.yaml": DRAFT, "promote.yaml": PROMOTE})
    code, out, err = cswf("tick", "--as-of", "2026-06-01T00:00", "--root", str(root))
    assert code == 0, out + err
    assert preview_line(root, "hello", "2026-06-01T03:00") == (
        "hello as of 2026-06-01 03:00: 2 of 2 participants meet the entry conditions; "
        "0 already inside, 2 would enter at this tick if enabled.")


def test_a_tick_without_facts_says_so(tmp_path: Path) -> None:
    # The only snapshot is dated 2026-06-01: nothing describes a tick on 05-31. `0 of 0` alone
    # read like an answer.
    root = make_project(tmp_path, {"hello.yaml": DRAFT})
    code, out, _ = cswf("preview", "hello", "--as-of", "2026-05-31T03:00", "--root", str(root))
    assert code == 0
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert lines == [
        "hello as of 2026-05-31 03:00: 0 of 0 participants meet the entry conditions; 0 already "
        "inside, 0 would enter at this tick if enabled.",
        "no account facts at 2026-05-31 03:00: no snapshot dated on or before 2026-05-31 is "
        f"ingested — land snapshot files in {root / 'data/landing'} (its README.md says which) "
        "and run `cswf ingest`, or preview a later tick"]


def test_a_segment_without_facts_says_so(tmp_path: Path) -> None:
    root = make_project(tmp_path, {"hello.yaml": DRAFT})
    (root / "segments").mkdir()
    (root / "segments/big.yaml").write_text(
        "name: big\ncondition: {field: tier, op: eq, value: enterprise}\n")
    code, out, _ = cswf("preview", "--segment", "big", "--as-of", "2026-05-31T03:00",
                        "--root", str(root))
    assert code == 0
    assert " ".join(out.split()).startswith(
        "segment big as of 2026-05-31 03:00: 0 of 0 accounts match. no account facts at "
        "2026-05-31 03:00: no snapshot dated")
