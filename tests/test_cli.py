"""The `cswf` command line: validate errors on broken specs, and a small end-to-end run."""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from cswf.cli import app
from cswf.demo.generate import generate_book

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()

VALID = """
name: {name}
owner: {{field: csm_email}}
state: enabled
entry: {{field: tier, op: eq, value: enterprise}}
steps:
  - name: hello
    actions: [{{type: task, title: "Hi {{{{ account_name }}}}"}}]
"""


def project(tmp_path: Path, specs: dict[str, str] | None = None) -> Path:
    """A project folder using the repo's SQL models and the given specs (default: the repo's)."""
    specs_dir = tmp_path / "workflow_specs"
    if specs is None:
        shutil.copytree(REPO / "workflow_specs", specs_dir)
    else:
        specs_dir.mkdir()
        for name, text in specs.items():
            (specs_dir / name).write_text(text)
    (tmp_path / "cswf.yaml").write_text(
        f"database: {tmp_path / 'cswf.duckdb'}\nlanding_dir: {tmp_path / 'landing'}\n"
        "tick_start: '2026-05-31 00:00'\n"
    )
    return tmp_path


def validate(root: Path) -> tuple[int, list[str]]:
    result = runner.invoke(app, ["validate", "--root", str(root)], terminal_width=400)
    return result.exit_code, result.stdout.strip().splitlines()


def test_the_repos_specs_are_valid(tmp_path: Path) -> None:
    code, lines = validate(project(tmp_path))
    assert code == 0
    assert len(lines) == len(list((REPO / "workflow_specs").glob("*.yaml")))


def test_an_unknown_field_lists_the_fields_that_exist(tmp_path: Path) -> None:
    text = VALID.format(name="typo").replace("field: tier", "field: teir")
    code, lines = validate(project(tmp_path, {"typo.yaml": text}))
    assert code == 1
    assert lines[0].startswith(
        "typo.yaml: entry.field: unknown field 'teir' (did you mean 'tier'?); fields that "
        "exist: account_id, "
        "account_name, active_users_7d_avg, arr, as_of,"
    )
    assert "seat_utilisation_pct" in lines[0] and "tier" in lines[0]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("op: eq", "op: equals"),
         "bad.yaml: entry.op: Input should be 'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'in', "
         "'not_in', 'between', 'is_null', 'not_null', 'contains', 'starts_with', "
         "'within_next_days', 'within_last_days', 'older_than_days', 'became', 'changed', "
         "'dropped_below', 'rose_above', 'fell_by_pct' or 'rose_by_pct'; did you mean 'eq'?"),
        (("value: enterprise", "value: 3"),
         "bad.yaml: entry.value: 'tier' is text; write the value in quotes: '3'"),
        (("op: eq, value: enterprise", "op: lt, value: 3"),
         "bad.yaml: entry.op: 'lt' needs a number or a date; 'tier' is a text"),
        (("name: bad", "name: other"),
         "bad.yaml: name: 'other' must match the file name 'bad'"),
        (("state: enabled", "state: live"),
         "bad.yaml: state: Input should be 'draft', 'enabled', 'paused' or 'disabled'"),
        (("owner: {field: csm_email}", "owner: {field: csm_email}\ncategory: Sales"),
         "bad.yaml: category: unknown category 'Sales'; categories: Onboarding, Nurture, "
         "Renewal, Upsell, Escalations, Support"),
        (("Hi {{ account_name }}", "Hi {{ acount_name }}"),
         "bad.yaml: steps.0.actions.0.title: template uses unknown name(s) ['acount_name']; "
         "it may use the fact fields and workflow, as_of, step"),
        (("Hi {{ account_name }}", "Hi {{ account_name"),
         "bad.yaml: steps.0.actions.0.title: template error line 1: unexpected end of "
         "template, expected 'end of print statement'."),
        (("type: task", "type: sms"),
         "bad.yaml: steps.0.actions.0: Input tag 'sms' found using 'type' does not match any "
         "of the expected tags: 'task', 'email', 'field_update', 'webhook', 'notification'"),
        (("steps:", "priority: high\nsteps:"),
         "bad.yaml: priority: Input should be a valid integer, unable to parse string as an "
         "integer"),
        # One rule for a number in quotes, wherever a number goes: drop the quotes.
        (("field: tier, op: eq, value: enterprise", 'field: arr, op: ge, value: "60"'),
         "bad.yaml: entry.value: 'arr' is a number; write the number without quotes: 60, not "
         "'60'"),
        (("field: tier, op: eq, value: enterprise", 'field: arr, op: between, value: [1, "9"]'),
         "bad.yaml: entry.value: 'arr' is a number; write the number without quotes: 9, not "
         "'9'"),
        (("op: eq, value: enterprise", 'op: within_next_days, value: "90"'),
         "bad.yaml: entry: operator 'within_next_days' needs a number; write the number "
         "without quotes: 90, not '90'"),
        (("steps:", 'priority: "5"\nsteps:'),
         "bad.yaml: priority: write the number without quotes: 5, not '5'"),
        (("steps:", "priority: true\nsteps:"), "bad.yaml: priority: expected a number, got True"),
        (("title:", "due_days: ' 7', title:"),
         "bad.yaml: steps.0.actions.0.due_days: write the number without quotes: 7, not ' 7'"),
        (("steps:\n", 'steps:\n  - {name: pause, delay: {days: "1"}}\n'),
         "bad.yaml: steps.0.delay.days: write the number without quotes: 1, not '1'"),
        (("steps:", "colour: blue\nsteps:"),
         "bad.yaml: colour: unknown key (not part of the spec language)"),
        (("state: enabled\n", "state: enabled\nreentry: {mode: sometimes}\n"),
         "bad.yaml: reentry.mode: Input should be 'none', 'multiple' or 'unlimited'"),
    ],
)
def test_broken_specs_give_exact_errors(tmp_path: Path, change: tuple[str, str],
                                        expected: str) -> None:
    text = VALID.format(name="bad").replace(*change)
    code, lines = validate(project(tmp_path, {"bad.yaml": text}))
    assert code == 1
    assert lines == [expected]


def test_flow_rules_and_action_limits(tmp_path: Path) -> None:
    stacked = VALID.format(name="stacked") + (
        "  - name: wait\n    delay: {days: 1}\n  - name: wait_more\n    delay: {months: 1}\n"
    )
    eleven = VALID.format(name="eleven").replace(
        'actions: [{type: task, title: "Hi {{ account_name }}"}]',
        "actions: [" + ", ".join(["{type: task, title: x}"] * 11) + "]",
    )
    code, lines = validate(project(tmp_path, {"stacked.yaml": stacked, "eleven.yaml": eleven}))
    assert code == 1
    assert lines == [
        "eleven.yaml: steps.0.actions: List should have at most 10 items after validation, "
        "not 11",
        "stacked.yaml: steps.2: delays cannot be stacked: step 'wait_more' directly follows "
        "delay 'wait'",
    ]


def test_one_broken_spec_does_not_hide_another(tmp_path: Path) -> None:
    specs = {"a.yaml": "name: a\n  bad: [yaml", "b.yaml": "- just a list"}
    code, lines = validate(project(tmp_path, specs))
    assert code == 1
    assert lines[0] == ("a.yaml: line 2: not valid YAML: mapping values are not allowed here "
                        "(column 6)")
    assert lines[1] == "b.yaml: (top): a spec is a YAML mapping (name:, owner:, steps:, ...)"


@pytest.fixture(scope="module")
def small_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = project(tmp_path_factory.mktemp("cli"))
    generate_book(root / "landing", accounts=80, days=45, start=date(2026, 5, 1))
    return root


def test_run_then_tick_again_changes_nothing(small_book: Path) -> None:
    run = runner.invoke(app, ["run", "--start", "2026-05-31", "--end", "2026-06-02T21:00",
                              "--root", str(small_book)], terminal_width=200)
    assert run.exit_code == 0, run.stdout
    assert "24 ticks" in run.stdout and "24 written" in run.stdout
    con = duckdb.connect(str(small_book / "cswf.duckdb"), read_only=True)
    before = con.sql("SELECT count(*), sum(actions) FROM tick_log").fetchall()
    con.close()
    again = runner.invoke(app, ["tick", "--as-of", "2026-06-01T03:00", "--root",
                                str(small_book)], terminal_width=200)
    assert again.exit_code == 0, again.stdout
    assert "1 ticks" in again.stdout and "1 unchanged" in again.stdout
    # the summary is headed as the demo's closing table heads it
    assert "avg days" in again.stdout and "objective rate" in again.stdout
    with duckdb.connect(str(small_book / "cswf.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*), sum(actions) FROM tick_log").fetchall() == before
        summary = con.sql("SELECT workflow, deployed FROM workflow_summary ORDER BY ALL")
        summary = summary.fetchall()
    assert {w for w, _ in summary} == {p.stem for p in (REPO / "workflow_specs").glob("*.yaml")}


def test_tick_refuses_a_time_that_is_not_a_tick(small_book: Path) -> None:
    result = runner.invoke(app, ["tick", "--as-of", "2026-06-01T04:00", "--root",
                                 str(small_book)], terminal_width=200)
    assert result.exit_code == 1
    assert "2026-06-01 04:00:00 is not a tick of the schedule '0 */3 * * *'" in result.stderr


def test_preview_counts_matches_and_shows_a_sample(small_book: Path) -> None:
    result = runner.invoke(app, ["preview", "renewal_preparation", "--as-of", "2026-06-10",
                                 "--sample", "3", "--root", str(small_book)], terminal_width=200)
    assert result.exit_code == 0, result.stdout
    assert "renewal_preparation as of 2026-06-10 00:00:" in result.stdout
    assert "participants meet the entry conditions" in result.stdout


def test_the_committed_json_schema_is_current(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    assert runner.invoke(app, ["schema", "--out", str(out)]).exit_code == 0
    assert out.read_text() == (REPO / "docs" / "workflow-spec.schema.json").read_text(), (
        "run `make schema` and commit docs/workflow-spec.schema.json"
    )


def test_manual_deploy_is_honoured_or_refused_at_the_next_tick(small_book: Path) -> None:
    database = str(small_book / "cswf.duckdb")
    ran = runner.invoke(app, ["run", "--start", "2026-05-31", "--end", "2026-06-02T21:00",
                              "--root", str(small_book)], terminal_width=200)
    assert ran.exit_code == 0, ran.stdout
    with duckdb.connect(database, read_only=True) as con:
        inside = con.sql("SELECT participant_id FROM enrollments WHERE status = 'active' AND "
                         "workflow = 'renewal_preparation' ORDER BY 1 LIMIT 1").fetchall()[0][0]
        far = con.sql("SELECT participant_id FROM account_facts WHERE as_of = "
                      "'2026-06-02 21:00' AND days_to_renewal > 200 ORDER BY 1 LIMIT 1"
                      ).fetchall()[0][0]
    asked = runner.invoke(app, ["deploy", "renewal_preparation", "--participants",
                                f"{inside},{far}", "--by", "ann@example.com",
                                "--at", "2026-06-02T22:30", "--root", str(small_book)],
                          terminal_width=200)
    assert asked.exit_code == 0, asked.stdout
    assert "2 deploy request(s) for 2 participant(s)" in asked.stdout
    ticked = runner.invoke(app, ["tick", "--as-of", "2026-06-03T00:00", "--root",
                                 str(small_book)], terminal_width=200)
    assert ticked.exit_code == 0, ticked.stdout
    with duckdb.connect(database, read_only=True) as con:
        refused = con.sql("SELECT participant_id, reason FROM transitions WHERE transition = "
                          "'deploy_refused' ORDER BY 1").fetchall()
    assert sorted(refused) == sorted([
        (inside, "manual deploy by ann@example.com refused: already inside this workflow"),
        # More than 120 days from renewal: renewal_preparation's exit conditions hold.
        (far, "manual deploy by ann@example.com refused: it meets the exit conditions"),
    ])


def test_deploy_to_every_match_of_a_filter(small_book: Path) -> None:
    asked = runner.invoke(app, ["deploy", "health_score_alert", "--where",
                                "{field: tier, op: eq, value: enterprise}",
                                "--at", "2026-06-03T01:00", "--root", str(small_book)],
                          terminal_width=200)
    assert asked.exit_code == 0, asked.stdout
    with duckdb.connect(str(small_book / "cswf.duckdb"), read_only=True) as con:
        expected = con.sql("SELECT count(*) FROM account_facts WHERE as_of = '2026-06-03 00:00' "
                           "AND tier = 'enterprise'").fetchall()[0][0]
    assert f"for {expected} participant(s) of health_score_alert" in asked.stdout
    bad = runner.invoke(app, ["deploy", "health_score_alert", "--where",
                              "{field: teir, op: eq, value: enterprise}", "--root",
                              str(small_book)], terminal_width=200)
    assert bad.exit_code == 1 and "unknown field 'teir'" in bad.stderr


STEADY = """
name: steady
owner: {user: ops@example.com}
state: enabled
entry: {field: snapshot_age_days, op: ge, value: 0}
reentry: {mode: none}
steps:
  - name: hello
    actions: [{type: task, title: "Hello"}]
  - name: later
    delay: {hours: 6}
  - name: follow_up
    actions: [{type: task, title: "Follow up"}]
"""


def test_remove_exits_participants_at_the_next_tick_with_the_reason(tmp_path: Path) -> None:
    root = project(tmp_path, {"steady.yaml": STEADY})
    generate_book(root / "landing", accounts=5, days=35, start=date(2026, 5, 1))
    cli = lambda *args: runner.invoke(app, [*args, "--root", str(root)],  # noqa: E731
                                      terminal_width=400)
    assert cli("tick", "--as-of", "2026-05-31T00:00").exit_code == 0
    asked = cli("remove", "steady", "--participants", "ACC-00001,ACC-00001,NOBODY",
                "--reason", "churned", "--by", "ann@example.com", "--as-of", "2026-05-31T01:30")
    assert asked.exit_code == 0, asked.stdout
    assert asked.stdout.startswith("2 removal request(s) for 2 participant(s) of steady, made "
                                   "2026-05-31 01:30 by ann@example.com; the next tick exits "
                                   "them (see transitions: exited / remove_refused).")
    past = cli("remove", "steady", "--participants", "ACC-00002", "--reason", "x",
               "--as-of", "2026-05-30T23:00")
    assert past.exit_code == 1 and past.stderr.startswith(
        "error: --as-of: 2026-05-30 23:00 is not after the last computed tick (2026-05-31 "
        "00:00)"), past.stderr
    no_reason = cli("remove", "steady", "--participants", "ACC-00002")
    assert no_reason.exit_code == 1 and "no reason" in no_reason.stderr
    for tick in ("2026-05-31T03:00", "2026-05-31T06:00", "2026-05-31T03:00"):  # then a replay
        ticked = cli("tick", "--as-of", tick)
        assert ticked.exit_code == 0, ticked.stdout
    assert "1 unchanged" in ticked.stdout
    with duckdb.connect(str(root / "cswf.duckdb"), read_only=True) as con:
        logged = con.sql("SELECT participant_id, transition, reason, tick FROM transitions "
                         "WHERE transition IN ('exited', 'remove_refused') ORDER BY 1").fetchall()
        closed = con.sql("SELECT status, close_reason FROM enrollments "
                         "WHERE participant_id = 'ACC-00001'").fetchall()
        follow_ups = con.sql("SELECT DISTINCT participant_id FROM actions_outbox "
                             "WHERE step_name = 'follow_up'").fetchall()
    why = "removed by ann@example.com at 2026-05-31 01:30: churned"
    assert [row[:3] for row in logged] == [
        ("ACC-00001", "exited", why),
        ("NOBODY", "remove_refused", "removal by ann@example.com at 2026-05-31 01:30: churned "
                                     "refused: not inside this workflow"),
    ]
    assert {row[3] for row in logged} == {datetime(2026, 5, 31, 3)}
    assert closed == [("exited", why)]
    assert ("ACC-00001",) not in follow_ups and len(follow_ups) == 4


def test_run_help_says_when_action_events_of_the_range_are_picked_up() -> None:
    said = " ".join(CliRunner().invoke(app, ["run", "--help"], terminal_width=100).output.split())
    assert ("The landing folder is ingested once, when the run starts. An action event "
            "(action_events/) for an action this run emits cannot load then: it stays in the "
            "folder, and the next ingest (cswf ingest, cswf tick, the next cswf run) loads it; "
            "the first tick run after that sees it") in said
