"""A workflow's life in a real project: versions, edits while running, contact workflows and
user groups, through the CLI against a temporary DuckDB."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from test_cli import project, runner, validate

from cswf.cli import app
from cswf.demo.generate import generate_book

KICKOFF = """
name: kickoff
owner: {group: onboarding_team}
state: enabled
entry: {field: tier, op: in, value: [enterprise, mid_market, smb]}
reentry: {mode: none}
milestones:
  - {name: kickoff_call, trigger_days: 0, due_days: 5}
steps:
  - name: welcome
    actions: [{type: task, title: "Welcome {{ account_name }}"}]
"""

CHAMPIONS = """
name: champion_intro
object: contact
owner: {field: "account.csm_email"}
state: enabled
entry:
  all:
    - {field: is_primary, op: eq, value: true}
    - {field: account.tier, op: eq, value: enterprise}
reentry: {mode: none}
steps:
  - name: intro
    actions: [{type: email, to: email, subject: "Hello {{ contact_name }}", body: "Hi"}]
"""

GROUPS = """
groups:
  onboarding_team:
    assignment: round_robin
    members: [ana@example.com, ben@example.com]
"""


@pytest.fixture()
def book(tmp_path: Path) -> Path:
    root = project(tmp_path, {"kickoff.yaml": KICKOFF, "champion_intro.yaml": CHAMPIONS})
    (root / "user_groups.yaml").write_text(GROUPS)
    generate_book(root / "landing", accounts=40, days=40, start=date(2026, 5, 1))
    return root


def cli(root: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--root", str(root)], terminal_width=400)
    return result.exit_code, result.stdout + (result.stderr or "")


def query(root: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(root / "cswf.duckdb"), read_only=True) as con:
        return con.sql(sql).fetchall()


def test_contact_workflows_read_their_accounts_fields_and_groups_share_the_tasks(
        book: Path) -> None:
    code, out = cli(book, "run", "--start", "2026-05-31", "--end", "2026-06-01T21:00")
    assert code == 0, out
    contacts = query(book, "SELECT participant_id FROM enrollments "
                           "WHERE workflow = 'champion_intro'")
    assert contacts and all(p.startswith("CON-") for (p,) in contacts), contacts
    evidence = query(book, "SELECT DISTINCT evidence FROM transitions WHERE "
                           "workflow = 'champion_intro' AND transition = 'entered'")
    assert evidence == [('{"account.tier":"enterprise","is_primary":true}',)]
    emails = query(book, "SELECT count(*) FROM actions_outbox WHERE workflow = 'champion_intro'")
    assert emails == [(len(contacts),)]
    assignees = query(book, "SELECT assignee, count(*) FROM actions_outbox WHERE "
                            "workflow = 'kickoff' GROUP BY 1 ORDER BY 1")
    total = sum(n for _, n in assignees)
    assert [a for a, _ in assignees] == ["ana@example.com", "ben@example.com"]
    assert max(n for _, n in assignees) - min(n for _, n in assignees) <= 1 and total > 0
    stored = query(book, "SELECT spec_text FROM workflow_versions WHERE workflow = 'kickoff'")
    assert stored == [(KICKOFF,)]
    dashboard = query(book, "SELECT DISTINCT current_milestone, milestone_overdue_days, "
                            "milestone_due - start_date FROM workflow_dashboard "
                            "WHERE workflow = 'kickoff'")
    assert dashboard == [("kickoff_call", 0.0, timedelta(days=5))]


def test_a_structural_edit_of_a_running_workflow_is_refused_until_it_is_disabled(
        book: Path) -> None:
    assert cli(book, "run", "--start", "2026-05-31", "--end", "2026-05-31T21:00")[0] == 0
    added = KICKOFF + """  - name: check_in
    actions: [{type: task, title: "Check in"}]
"""
    (book / "workflow_specs" / "kickoff.yaml").write_text(added)
    message = ("kickoff.yaml: steps: structural change to enabled workflow 'kickoff' refused: "
               "action step 'check_in' added; task action 0 of step 'check_in' added. Disable "
               "the workflow (state: disabled) to change its structure")
    code, lines = validate(book)
    assert code == 1 and any(line.startswith(message) for line in lines), lines
    code, out = cli(book, "tick", "--as-of", "2026-06-01T00:00")
    assert code == 1 and message in " ".join(out.split()), out

    # disabling (same structure) exits everyone; then the structure may change
    (book / "workflow_specs" / "kickoff.yaml").write_text(
        KICKOFF.replace("state: enabled", "state: disabled"))
    assert cli(book, "tick", "--as-of", "2026-06-01T00:00")[0] == 0
    assert query(book, "SELECT DISTINCT status, close_reason FROM enrollments WHERE "
                       "workflow = 'kickoff'") == [("exited", "workflow disabled")]
    (book / "workflow_specs" / "kickoff.yaml").write_text(added)
    assert validate(book)[0] == 0
    assert cli(book, "tick", "--as-of", "2026-06-01T03:00")[0] == 0


def test_a_non_structural_edit_applies_to_those_inside_and_is_logged(book: Path) -> None:
    assert cli(book, "run", "--start", "2026-05-31", "--end", "2026-05-31T21:00")[0] == 0
    (before,) = query(book, "SELECT DISTINCT version FROM enrollments WHERE workflow = 'kickoff'")
    (book / "workflow_specs" / "kickoff.yaml").write_text(
        KICKOFF.replace("due_days: 5", "due_days: 7"))
    assert validate(book)[0] == 0
    assert cli(book, "tick", "--as-of", "2026-06-01T00:00")[0] == 0
    versions = query(book, "SELECT DISTINCT version FROM enrollments WHERE workflow = 'kickoff' "
                           "AND status = 'active'")
    assert len(versions) == 1 and versions != [before]
    logged = query(book, "SELECT DISTINCT reason FROM transitions "
                         "WHERE transition = 'version_changed'")
    assert logged == [(f"the spec was edited: now runs version {versions[0][0]} "
                       f"(was {before[0]})",)]
    assert query(book, "SELECT count(*) FROM workflow_versions WHERE workflow = 'kickoff'") == [
        (2,)]


TAGGER = """
name: tagger
owner: {user: ops@example.com}
state: enabled
entry: {field: tier, op: eq, value: enterprise}
reentry: {mode: none}
steps:
  - name: tag
    actions: [{type: field_update, field: nps, value: "10"}]
"""

PROMOTERS = """
name: promoters
owner: {user: ops@example.com}
state: enabled
manual_entry: true
entry: {field: nps, op: eq, value: 10}
reentry: {mode: none}
steps:
  - name: thanks
    actions: [{type: task, title: "Thank {{ account_name }}"}]
"""


def test_a_field_update_is_a_fact_at_later_ticks_and_deploy_files_are_honoured(
        tmp_path: Path) -> None:
    root = project(tmp_path, {"tagger.yaml": TAGGER, "promoters.yaml": PROMOTERS})
    generate_book(root / "landing", accounts=40, days=40, start=date(2026, 5, 1))
    requests = root / "landing" / "deploy_requests"
    requests.mkdir()
    (requests / "push.csv").write_text("workflow,participant_id,requested_by,requested_at\n"
                                       "promoters,ACC-00002,ann@example.com,2026-05-31T01:00\n")
    code, out = cli(root, "run", "--start", "2026-05-31", "--end", "2026-05-31T06:00")
    assert code == 0, out
    tagged = query(root, "SELECT participant_id, tick FROM actions_outbox "
                         "WHERE workflow = 'tagger' ORDER BY 1")
    entered = dict(query(root, "SELECT participant_id, tick FROM transitions WHERE "
                               "workflow = 'promoters' AND transition = 'entered' "
                               "AND reason LIKE 'entry conditions met%'"))
    assert tagged and {p for p, _ in tagged} <= set(entered)
    # seen from the tick after the update, never the same tick
    assert all(entered[p] > tick for p, tick in tagged)
    deployed = query(root, "SELECT participant_id, tick, reason FROM transitions WHERE "
                           "workflow = 'promoters' AND reason LIKE 'manual deploy%'")
    assert [(p, r) for p, _, r in deployed] == [("ACC-00002", "manual deploy by ann@example.com")]


def test_a_field_update_that_does_not_fit_its_fact_is_logged_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # promoters reads nps: a tick loads only the fact fields its workflows read, so only an
    # update of such a field is overlaid (and a value that does not fit it reported).
    root = project(tmp_path, {"tagger.yaml": TAGGER.replace('value: "10"', 'value: "lots"'),
                              "promoters.yaml": PROMOTERS})
    generate_book(root / "landing", accounts=10, days=35, start=date(2026, 5, 1))
    with caplog.at_level("WARNING", logger="cswf.project"):
        code, out = cli(root, "run", "--start", "2026-05-31", "--end", "2026-05-31T09:00")
    assert code == 0, out
    tagged = query(root, "SELECT action_id FROM actions_outbox WHERE workflow = 'tagger' "
                         "AND tick < '2026-05-31 09:00'")
    warnings = [r.getMessage() for r in caplog.records if "does not convert" in r.getMessage()]
    assert tagged and len(warnings) == len(tagged)  # once each, though visible at later ticks
    assert warnings[0].endswith("value 'lots' does not convert to Int32 for field 'nps'; the "
                                "fact keeps its snapshot value")


# The versions of the shipped specs since their first release. A new key of the spec language
# left at its default must not change them: upgrading cswf is not an edit of every workflow.
SHIPPED_VERSIONS = {
    "adoption_seat_utilisation": "5528f045b540", "champion_win_back": "ab5352282b12",
    "expansion_opportunity": "0759eaeaeafe", "health_score_alert": "da614ed2fbaa",
    "nps_follow_up": "16b1f5705f6c",  # edited: enters on the nps_response event; plain-text bodies
    "onboarding_plan": "9dc0a532169d",
    "onboarding_welcome": "a539a33996f5", "renewal_preparation": "93cd85cabc78",
}


def test_upgrading_cswf_keeps_the_versions_of_unchanged_specs() -> None:
    from cswf.project import load_workflows
    from cswf.settings import load_settings

    settings = load_settings(Path(__file__).resolve().parents[1])
    assert {w.name: w.version for w in load_workflows(settings)} == SHIPPED_VERSIONS


ANYONE = """
name: anyone
owner: {user: ops@example.com}
state: enabled
entry: {field: snapshot_age_days, op: ge, value: 0}
reentry: {mode: none}
steps:
  - name: look
    branch:
      - name: fresh
        when: {field: snapshot_age_days, op: eq, value: 0}
        steps:
          - name: wait_a_week
            delay: {days: 7}
          - name: fresh_task
            actions: [{type: task, title: "Fresh"}]
  - name: hello
    actions: [{type: task, title: "Hi"}]
"""


@pytest.fixture()
def anyone(tmp_path: Path) -> Path:
    root = project(tmp_path, {"anyone.yaml": ANYONE})
    generate_book(root / "landing", accounts=10, days=35, start=date(2026, 5, 1))
    assert cli(root, "run", "--start", "2026-05-31", "--end", "2026-05-31T03:00")[0] == 0
    return root


def edit(root: Path, old: str, new: str) -> None:
    (root / "workflow_specs" / "anyone.yaml").write_text(ANYONE.replace(old, new))


@pytest.mark.parametrize(("old", "new", "message"), [
    ("state: enabled", "state: enabled\nobject: opportunity",
     "anyone.yaml: object: object of enabled workflow 'anyone' is fixed: it was 'account', the "
     "spec now says 'opportunity'. Copy the spec to a new workflow name for object "
     "'opportunity' (and disable this one), or set object back to 'account'"),
    ("state: enabled", "state: enabled\nlaunch: from_now_on",
     "anyone.yaml: launch: launch of enabled workflow 'anyone' is fixed: it was 'everyone', the "
     "spec now says 'from_now_on'. Copy the spec to a new workflow name for launch "
     "'from_now_on' (and disable this one), or set launch back to 'everyone'"),
    ("state: enabled", "state: draft",
     "anyone.yaml: state: workflow 'anyone' has run, so it cannot return to draft. Use state: "
     "disabled to stop it (everyone inside exits), or copy the spec to a new workflow name to "
     "start a draft"),
])
def test_object_launch_and_draft_are_fixed_once_enabled(
        anyone: Path, old: str, new: str, message: str) -> None:
    edit(anyone, old, new)
    code, lines = validate(anyone)
    assert code == 1 and lines[0] == message, lines
    code, out = cli(anyone, "tick", "--as-of", "2026-05-31T06:00")
    assert code == 1 and message in " ".join(out.split()), out


def test_a_disabled_workflow_may_change_its_launch_but_never_become_a_draft(
        anyone: Path) -> None:
    edit(anyone, "state: enabled", "state: disabled")
    assert cli(anyone, "tick", "--as-of", "2026-05-31T06:00")[0] == 0
    edit(anyone, "state: enabled", "state: enabled\nlaunch: from_now_on")
    assert validate(anyone)[0] == 0
    edit(anyone, "state: enabled", "state: draft")
    assert validate(anyone)[0] == 1


def test_renaming_a_branch_path_is_not_structural_and_moves_no_one(anyone: Path) -> None:
    waiting = query(anyone, "SELECT participant_id, step, step_name FROM enrollments "
                            "WHERE status = 'active' ORDER BY 1")
    assert waiting and {s for _, _, s in waiting} == {"wait_a_week"}
    edit(anyone, "name: fresh\n", "name: just_seen\n")
    assert validate(anyone)[0] == 0
    assert cli(anyone, "tick", "--as-of", "2026-05-31T06:00")[0] == 0
    assert query(anyone, "SELECT participant_id, step, step_name FROM enrollments "
                         "WHERE status = 'active' ORDER BY 1") == waiting
    assert query(anyone, "SELECT DISTINCT transition FROM transitions WHERE tick = "
                         "'2026-05-31 06:00'") == [("version_changed",)]


def test_a_spec_deleted_while_participants_are_inside_is_reported_until_disabled(
        anyone: Path) -> None:
    (inside,) = query(anyone, "SELECT count(*) FROM enrollments WHERE status = 'active'")
    spec = anyone / "workflow_specs" / "anyone.yaml"
    spec.unlink()
    (anyone / "workflow_specs" / "other.yaml").write_text(
        ANYONE.replace("name: anyone", "name: other"))
    message = (f"anyone.yaml: (top): the spec of enabled workflow 'anyone' is gone while "
               f"{inside[0]} participant(s) are inside; ticks stop until it is back. Restore "
               f"anyone.yaml and set state: disabled (everyone inside exits); after a tick has "
               f"run it disabled, the file may be deleted and the name is free again")
    code, lines = validate(anyone)
    assert code == 1 and lines[0] == message, lines
    code, out = cli(anyone, "tick", "--as-of", "2026-05-31T06:00")
    assert code == 1 and message in " ".join(out.split()), out

    edit(anyone, "state: enabled", "state: disabled")
    assert cli(anyone, "tick", "--as-of", "2026-05-31T06:00")[0] == 0
    spec.unlink()
    assert validate(anyone)[0] == 0
    # the name is free: a new workflow of another type may take it
    edit(anyone, "state: enabled", "state: enabled\nobject: opportunity")
    assert validate(anyone)[0] == 0
