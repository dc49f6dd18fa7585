"""The CLI a person reads: times, --version, summaries, and every error as one exact line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date, datetime
from importlib.metadata import version
from pathlib import Path

import duckdb
import pytest
from landing_rows import contract_columns, snapshot_csv
from panics import panic_class
from typer.testing import CliRunner

from cswf import cli
from cswf.cli import app, event_log
from cswf.clitools.errors import explain
from cswf.clitools.times import parse_time
from cswf.ingest.contract import ACCOUNTS
from cswf.project import BlockedTick
from cswf.settings import Settings, load_settings

runner = CliRunner()
DAY = date(2026, 6, 1)
SPEC = """
name: hello
owner: {field: csm_email}
state: enabled
entry: {field: tier, op: eq, value: enterprise}
steps:
  - name: hi
    actions: [{type: task, title: "Hi {{ account_name }}"}]
"""
WHERE = "write a condition such as '{field: tier, op: eq, value: enterprise}'"
TIME_TODO = ("write it as 2026-07-01, 2026-07-01T03:00, 2026-07-01 03:00:00 or "
             "2026-07-01T03:00:00Z (UTC unless an offset is given)")


def make_project(root: Path, specs: dict[str, str] | None = None) -> Path:
    """A project with one spec and one day of two accounts (one enterprise)."""
    (root / "workflow_specs").mkdir(parents=True)
    for name, text in (specs or {"hello.yaml": SPEC}).items():
        (root / "workflow_specs" / name).write_text(text)
    (root / "cswf.yaml").write_text("tick_start: '2026-05-31 00:00'\n")
    accounts = root / "data/landing/accounts"
    accounts.mkdir(parents=True)
    rows = [{"account_id": "a1", "tier": "enterprise"}, {"account_id": "a2", "tier": "smb"}]
    (accounts / f"accounts_{DAY}.csv").write_text(
        snapshot_csv(contract_columns(ACCOUNTS), DAY, rows))
    return root


def cswf(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), terminal_width=400, prog_name="cswf")
    return result.exit_code, result.stdout, result.stderr


def one_error(args: list[str]) -> tuple[int, str]:
    """The exit code and the one error line of a failing command."""
    code, out, err = cswf(*args)
    assert code != 0, out
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return code, err.rstrip("\n")


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose ticks ran up to 2026-06-01 03:00."""
    root = make_project(tmp_path_factory.mktemp("errors"))
    code, out, err = cswf("run", "--start", "2026-06-01T00:00:00Z", "--end",
                          "2026-06-01 05:00+02:00", "--root", str(root))
    assert code == 0, out + err
    assert "2 ticks" in out
    return root


def test_version() -> None:
    code, out, _ = cswf("--version")
    assert code == 0
    assert out == f"cswf {version('cswf')}\n"


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-07-01", datetime(2026, 7, 1)),
    ("2026-07-01T03:00", datetime(2026, 7, 1, 3)),
    ("2026-07-01 03:00:00", datetime(2026, 7, 1, 3)),
    ("2026-07-01T03:00:00Z", datetime(2026, 7, 1, 3)),
    ("2026-07-01T03:00+00:00", datetime(2026, 7, 1, 3)),
    ("2026-07-01T05:00:00+02:00", datetime(2026, 7, 1, 3)),
    ("2026-06-30T23:30-03:30", datetime(2026, 7, 1, 3)),
    ("2026-07-01-03:00", datetime(2026, 7, 1, 3)),  # a tick's partition key
])
def test_times_take_seconds_and_offsets(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


def test_every_time_option_converts_an_offset_to_utc(ran: Path) -> None:
    root = ["--root", str(ran)]
    code, out, _ = cswf("preview", "hello", "--as-of", "2026-06-01T05:00+02:00", *root)
    assert code == 0 and "hello as of 2026-06-01 03:00: 1 of 2 participants" in out
    code, out, _ = cswf("deliver", "--now", "2026-06-01T10:00:00Z", *root)
    assert code == 0 and out.startswith("delivery as of 2026-06-01 10:00: ")
    code, out, _ = cswf("deploy", "hello", "--participants", "a2", "--at",
                        "2026-06-01 05:30:00+02:00", *root)
    assert code == 0 and "made 2026-06-01 03:30 by cli" in out
    _, line = one_error(["tick", "--as-of", "2026-06-01T06:00+02:00", *root])
    assert line == ("error: --as-of: 2026-06-01 04:00:00 is not a tick of the schedule "
                    "'0 */3 * * *' — give a tick, e.g. 2026-06-01 06:00")


def test_a_bad_time_is_one_line(ran: Path) -> None:
    code, line = one_error(["run", "--start", "2026-13-01", "--end", "2026-06-01",
                            "--root", str(ran)])
    assert code == 2
    assert line == f"error: --start: '2026-13-01' is not a time (month must be in 1..12) — " \
                   f"{TIME_TODO}"
    _, line = one_error(["deploy", "hello", "--participants", "a1", "--at", "noon"])
    assert line == f"error: --at: 'noon' is not a time — {TIME_TODO}"


def test_a_deploy_before_the_last_tick_is_refused(ran: Path) -> None:
    database = ran / "data/cswf.duckdb"
    with duckdb.connect(str(database), read_only=True) as con:
        before = con.sql("SELECT count(*) FROM deploy_requests").fetchall()
    code, line = one_error(["deploy", "hello", "--participants", "a2", "--at",
                            "2026-06-01T02:00", "--root", str(ran)])
    assert code == 1
    assert line == ("error: --at: 2026-06-01 02:00 is not after the last computed tick "
                    "(2026-06-01 03:00), so no tick would ever honour or refuse it — give a "
                    "time after 2026-06-01 03:00")
    _, line = one_error(["deploy", "hello", "--participants", "a2", "--at",
                         "2026-06-01T03:00", "--root", str(ran)])
    assert "2026-06-01 03:00 is not after the last computed tick" in line
    with duckdb.connect(str(database), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM deploy_requests").fetchall() == before


def test_reports_print_tables(ran: Path) -> None:
    code, out, _ = cswf("reports", "--root", str(ran))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].strip() == "reports rebuilt" and "{" not in out
    cells = [[cell.strip() for cell in line.split("│")[1:3]] for line in lines
             if line.count("│") == 3]
    assert ["workflow_dashboard", "1"] in cells
    assert [line.strip() for line in lines].count("workflow_summary") == 1  # the table title


def test_ingest_prints_a_summary(ran: Path) -> None:
    code, out, _ = cswf("ingest", "--root", str(ran))
    assert code == 0
    assert out.splitlines() == [f"landing folder {ran / 'data/landing'}",
                                "  snapshots: 0 file(s) loaded, 1 unchanged, 0 rejected"]


def test_unknown_workflow_says_which_exist(ran: Path) -> None:
    specs = ran / "workflow_specs"
    _, line = one_error(["preview", "helo", "--as-of", "2026-06-01", "--root", str(ran)])
    assert line == f"error: {specs}: no workflow 'helo' — did you mean 'hello'?"
    _, line = one_error(["deploy", "renewal", "--participants", "a1", "--root", str(ran)])
    assert line == f"error: {specs}: no workflow 'renewal' — workflows: hello"


@pytest.mark.parametrize(("where", "expected"), [
    ("{field: tier, op: eq", "not valid YAML: expected ',' or '}', but got '<stream end>'"),
    ("tier", "a condition is a YAML mapping — write one such as '{field: tier, op: eq, "
             "value: enterprise}'"),
    ("{field: tier, op: equals, value: smb}", "op: Input should be 'eq', 'ne', 'lt', 'le', "
     "'gt', 'ge', 'in', 'not_in', 'between', 'is_null', 'not_null', 'contains', "
     "'starts_with', 'within_next_days', 'within_last_days', 'older_than_days', 'became', "
     "'changed', 'dropped_below', 'rose_above', 'fell_by_pct' or 'rose_by_pct'"),
])
def test_a_bad_where_is_one_line(ran: Path, where: str, expected: str) -> None:
    _, line = one_error(["deploy", "hello", "--where", where, "--root", str(ran)])
    suffix = "" if " — " in expected else f" — {WHERE}"
    assert line == f"error: --where: {expected}{suffix}"


@pytest.mark.parametrize("args", [
    ["ingest"], ["tick", "--as-of", "2026-06-01"],
    ["run", "--start", "2026-06-01", "--end", "2026-06-01T03:00"],
    ["preview", "hello", "--as-of", "2026-06-01"], ["deploy", "hello", "--participants", "a1"],
    ["deliver"], ["reports"],
])
def test_a_locked_database_says_who_holds_it(tmp_path: Path, args: list[str]) -> None:
    root = make_project(tmp_path)
    database = root / "data/cswf.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time\n"
         f"con = duckdb.connect({str(database)!r})\nprint('ready', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        code, line = one_error([*args, "--root", str(root)])
    finally:
        holder.kill()
        holder.wait()
    assert code == 1
    python = Path(sys.executable).name  # python3 or python, as the venv's installer wrote it
    assert line.startswith(f"error: {database}: the database is in use by PID {holder.pid} "
                           f"({python} -c import duckdb")
    assert line.endswith("— wait until it finishes (a Dagster run, `dagster dev` or another cswf "
                         "command) or stop it, then try again, or let cswf wait: `cswf --wait "
                         "SECONDS <command>`; BI tools read the BI copy instead (docs/bi.md)")


def test_a_broken_spec_stops_a_command_with_one_line(tmp_path: Path) -> None:
    root = make_project(tmp_path, {"hello.yaml": SPEC.replace("op: eq", "op: equals"),
                                   "other.yaml": "- a list"})
    _, line = one_error(["preview", "hello", "--as-of", "2026-06-01", "--root", str(root)])
    assert line.startswith("error: hello.yaml: entry.op: Input should be 'eq', ")
    assert line.endswith("'rose_by_pct'; did you mean 'eq'? (and 1 more) — run `cswf validate` "
                         "to see every "
                         "problem, fix the spec, try again")


CONFIG_ERRORS = [
    ("database: x.duckdb\n  bad: [yaml\n",
     "{cfg}: line 2: not valid YAML: mapping values are not allowed here (column 6) — fix the "
     "file"),
    # An unclosed bracket or quote is named where it opens, not where PyYAML gave up.
    ("database: x.duckdb\nshards: 1\ncategories: [a, b\ndefault_category: a\nshards: 2\n",
     "{cfg}: line 3: not valid YAML: while parsing a flow sequence (column 13): expected ',' or "
     "']', but got ':' on line 4 (column 17) — fix the file"),
    ("database: x.duckdb\ntick_cron: \"0 * * * *\ncategories: [a]\n\n",
     "{cfg}: line 2: not valid YAML: while scanning a quoted scalar (column 12): found "
     "unexpected end of stream on line 5 (column 1) — fix the file"),
    ("- a\n- b\n",
     "{cfg}: expected settings as `key: value` lines — see the cswf.yaml that `cswf init` "
     "writes"),
    ("landing_folder: data/landing\n",
     "{cfg}: landing_folder: unknown setting — did you mean 'landing_dir'?"),
    ("colour: blue\n",
     "{cfg}: colour: unknown setting — known: allowed_values, bi_dir, categories, database, "
     "default_category, delivery, executor, fields, groups_file, guards, landing_dir, "
     "max_concurrent_shards, memory_limit, segments_dir, shards, snapshots, specs_dir, "
     "sql_dir, staging_dir, staging_url, templates, tick_cron, tick_start"),
    ("memory_limit: lots\n",
     "{cfg}: memory_limit: 'lots' is not a size — write a number and a unit, such as 4GB or "
     "512MB"),
    ("memory_limit: 4096\n",
     "{cfg}: memory_limit: '4096' is not a size — write a number and a unit, such as 4GB or "
     "512MB"),
    ("memory_limit: 8MB\n",
     "{cfg}: memory_limit: '8MB' is too little for DuckDB, which needs 128MB at least — write "
     "a number and a unit, such as 4GB or 512MB"),
    ("fields: {accounts: {arr: float}}\n",
     "{cfg}: fields.accounts.arr: 'arr' is already a contract column of accounts "
     "(docs/data-contract.md); remove it from fields — fix the value"),
    ("allowed_values: {accounts: {tiers: [a]}}\n",
     "{cfg}: allowed_values.accounts.tiers: accounts has no text column 'tiers'; text columns: "
     "account_id, account_name, csm_email, csm_name, industry, primary_contact_email, "
     "primary_contact_name, region, stage, tier, time_zone — fix the value"),
    ("tick_cron: every hour\n",
     "{cfg}: tick_cron: 'every hour' is not a cron expression — write five cron fields (UTC), "
     "e.g. \"0 */3 * * *\""),
    ("tick_start: soon\n",
     "{cfg}: tick_start: Input should be a valid datetime or date, input is too short — write "
     "a UTC time such as \"2026-07-01 00:00\""),
    ("categories: 3\n", "{cfg}: categories: Input should be a valid list — fix the value"),
    ("root: /elsewhere\n",
     "{cfg}: root: unknown setting — remove it: the project folder is the one holding "
     "cswf.yaml"),
    ("delivery: {smtp: {prot: 25}}\n",
     "{cfg}: delivery.smtp.prot: unknown key — did you mean 'port'?"),
    ("delivery: {cap_per_day: 0}\n",
     "{cfg}: delivery.cap_per_day: Input should be greater than or equal to 1 — fix the value"),
    ("delivery: {dry_run: maybe}\n",
     "{cfg}: delivery.dry_run: Input should be a valid boolean, unable to interpret input "
     "(got 'maybe') — write true or false"),
    ("delivery: {default_time_zone: Europe/Pariss}\n",
     "{cfg}: delivery.default_time_zone: unknown time zone 'Europe/Pariss' (did you mean "
     "'Europe/Paris'?) — fix the value"),
    ("delivery: {default_time_zone: Mars/Olympus_Mons}\n",
     "{cfg}: delivery.default_time_zone: unknown time zone 'Mars/Olympus_Mons' (use an IANA "
     "name such as 'Europe/Paris') — fix the value"),
    ("delivery: {quiet_hours: {start: '25:00'}}\n",
     "{cfg}: delivery.quiet_hours.start: Input should be in a valid time format, hour value is "
     "outside expected range of 0-23 (got '25:00') — write a local time as HH:MM, e.g. "
     "\"20:00\""),
    ("tick_cron: '0 0 31 2 *'\n",
     "{cfg}: tick_cron: '0 0 31 2 *' never fires (no such date) — write five cron fields "
     "(UTC), e.g. \"0 */3 * * *\""),
    ("tick_cron: '* * * * * *'\n",
     "{cfg}: tick_cron: '* * * * * *' is not a cron expression — write five cron fields (UTC), "
     "e.g. \"0 */3 * * *\""),
    ("tick_crn: '0 * * * *'\n", "{cfg}: tick_crn: unknown setting — did you mean 'tick_cron'?"),
    ("shards: 0\n", "{cfg}: shards: Input should be greater than or equal to 1 — fix the value"),
    ("shards: true\n",
     "{cfg}: shards: expected a whole number of shards, got True — fix the value"),
    # A number in quotes is refused everywhere (as in specs), saying how to write it.
    ("shards: \"4\"\n",
     "{cfg}: shards: write the number without quotes: 4, not '4' — fix the value"),
    ("snapshots: {max_age_days: '2'}\n",
     "{cfg}: snapshots.max_age_days: write the number without quotes: 2, not '2' — fix the "
     "value"),
    ("delivery: {cap_per_day: \"3\"}\n",
     "{cfg}: delivery.cap_per_day: write the number without quotes: 3, not '3' — fix the value"),
    ("guards: {exits: {share: yes}}\n",
     "{cfg}: guards.exits.share: expected a number, got True — fix the value"),
]


@pytest.mark.parametrize(("text", "expected"), CONFIG_ERRORS)
def test_a_bad_config_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "cswf.yaml").write_text(text)
    code, line = one_error(["validate", "--root", str(tmp_path)])
    assert code == 1
    assert line == "error: " + expected.format(cfg=tmp_path / "cswf.yaml")


def test_a_number_in_an_environment_variable_is_a_number(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An environment variable is always text: CSWF_SHARDS=4 is no number in quotes.
    (tmp_path / "cswf.yaml").write_text("shards: 1\n")
    monkeypatch.setenv("CSWF_SHARDS", "4")
    assert load_settings(tmp_path).shards == 4


def test_an_environment_override_is_named(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cswf.yaml").write_text("{}\n")
    monkeypatch.setenv("CSWF_TICK_CRON", "hourly")
    _, line = one_error(["validate", "--root", str(tmp_path)])
    assert line == ("error: CSWF_TICK_CRON: 'hourly' is not a cron expression — write five "
                    "cron fields (UTC), e.g. \"0 */3 * * *\"")


def test_no_project_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CSWF_ROOT", raising=False)
    _, line = one_error(["validate"])
    assert line == ("error: cswf.yaml: not found — run in the project folder or give --root "
                    "(the one with cswf.yaml), or create a project with `cswf init DIR`")
    (tmp_path / "empty").mkdir()
    _, line = one_error(["ingest", "--root", "empty"])
    assert line == ("error: empty/cswf.yaml: not found — point --root at the project folder "
                    "(the one with cswf.yaml), or create a project with `cswf init DIR`")
    _, line = one_error(["reports", "--root", str(tmp_path / "nope")])
    assert line == (f"error: --root: no folder {tmp_path / 'nope'} — give the project folder "
                    "(the one with cswf.yaml), or create a project with `cswf init DIR`")


def test_a_missing_cswf_root_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSWF_ROOT", str(tmp_path / "gone"))
    _, line = one_error(["validate"])
    assert line == (f"error: CSWF_ROOT: no folder {tmp_path / 'gone'} — set it to the project "
                    "folder (the one with cswf.yaml), or unset it")


def test_a_blocked_tick_is_one_line() -> None:
    blocked = BlockedTick("snapshots failed their checks; no tick ran:\n- raw_accounts: 2 "
                          "duplicate keys\n- raw_accounts is empty")
    assert explain(blocked).line() == (
        "landing files: snapshots failed their checks; no tick ran: raw_accounts: 2 duplicate "
        "keys; raw_accounts is empty — fix or remove the files named, then run again (a known "
        "change: list its day under snapshots.accept in cswf.yaml)")


def test_usage_errors_are_one_line() -> None:
    code, line = one_error(["run", "--strat", "2026-06-01"])
    assert code == 2
    assert line == ("error: --strat: no such option — did you mean --root or --start? see "
                    "`cswf run --help`")
    _, line = one_error(["run", "--start", "2026-06-01"])
    assert line == "error: --end: missing — give it; see `cswf run --help`"
    _, line = one_error(["rn"])
    assert line == "error: no such command 'rn'. Did you mean 'run'? — see `cswf --help`"


def test_an_unexpected_error_is_one_line_unless_asked(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path)

    def boom(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli.project, "check_specs", boom)
    _, line = one_error(["validate", "--root", str(root)])
    assert line == ("error: unexpected RuntimeError: boom — run again with CSWF_TRACEBACK=1 to "
                    "see where, and report it")
    monkeypatch.setenv("CSWF_TRACEBACK", "1")
    result = runner.invoke(app, ["validate", "--root", str(root)])
    assert isinstance(result.exception, RuntimeError)


def test_a_config_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "cswf.yaml").write_bytes(b"tick_start: '2026-05-31 00:00'\n# caf\xe9\n")
    _, line = one_error(["validate", "--root", str(tmp_path)])
    assert line == (f"error: {tmp_path / 'cswf.yaml'}: line 2: not UTF-8 text (byte 0xe9) — "
                    "save the file as UTF-8")


@pytest.mark.parametrize(("text", "expected"), [
    ("groups: [a\n", "line 1: not valid YAML: while parsing a flow sequence (column 9): "
                     "expected ',' or ']', but got '<stream end>' on line 2 (column 1)"),
    ("groups:\n  team: {members: []}\n",
     "group 'team': members is empty; list at least one user"),
    ("- a\n", "expected a mapping `groups:` holding one group per key, each with "
              "`members: [...]`"),
    ("groups: {team: {member: [a@example.com]}}\n",
     "groups.team.members: Field required; groups.team.member: unknown key; did you mean "
     "'members'?"),
    ("group: {}\n", "group: unknown key; did you mean 'groups'?"),
])
def test_a_bad_groups_file_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    root = make_project(tmp_path)
    (root / "user_groups.yaml").write_text(text)
    _, line = one_error(["validate", "--root", str(root)])
    assert line == f"error: {root / 'user_groups.yaml'}: {expected} — fix the user groups file"


LANDING_TODO = ("— create it (`mkdir -p {landing}/accounts`) and drop snapshot files such as "
                "accounts/accounts_YYYY-MM-DD.csv in it (`cswf init DIR` writes its README.md "
                "listing every file), or set landing_dir in cswf.yaml")


@pytest.mark.parametrize("args", [["ingest"], ["tick", "--as-of", "2026-06-01"],
                                  ["run", "--start", "2026-06-01", "--end", "2026-06-02"],
                                  ["preview", "hello", "--as-of", "2026-06-01"]])
def test_a_missing_landing_folder_is_one_line(tmp_path: Path, args: list[str]) -> None:
    root = make_project(tmp_path)
    shutil.rmtree(root / "data/landing")
    _, line = one_error([*args, "--root", str(root)])
    landing = root / "data/landing"
    assert line == (f"error: {landing}: the landing folder does not exist "
                    + LANDING_TODO.format(landing=landing))
    assert not (root / "data/cswf.duckdb").exists()


def test_broken_spec_files_are_reported_with_the_file(tmp_path: Path) -> None:
    root = make_project(tmp_path, {
        "hello.yaml": SPEC,
        "latin1.yaml": "name: caf\xe9\n",
        "long.yaml": SPEC.replace("name: hello", "name: long") + "  - name: pause\n"
                     "    delay: {days: 100000000}\n  - name: bye\n"
                     "    actions: [{type: task, title: Bye}]\n",
        "deep.yaml": "name: deep\nowner: {field: csm_email}\nentry: " + "{not: " * 5000
                     + "{field: tier, op: eq, value: x}" + "}" * 5000 + "\nsteps: []\n",
    })
    (root / "workflow_specs/latin1.yaml").write_bytes(b"name: caf\xe9\n")
    (root / "workflow_specs/x.yaml").mkdir()
    code, out, err = cswf("validate", "--root", str(root))
    assert code == 1 and "Traceback" not in out + err
    nesting = ("conditions nest at most 50 levels of all / any / not; flatten the rule (one "
               "`any` of many leaves, not a chain of nested groups)")
    assert out.splitlines() == [
        f"deep.yaml: (top): nests too deep to read: {nesting}",
        "latin1.yaml: (top): not UTF-8 text: byte 0xe9 on line 1 — save the file as UTF-8",
        "long.yaml: steps.1.delay.days: Input should be less than or equal to 3650 "
        "(got 100000000)",
        "x.yaml: (top): is a folder, not a spec file: rename it (a folder in the specs folder "
        "must not end in .yaml or .yml) or move it elsewhere",
    ]
    assert err == f"4 problem(s) in {root / 'workflow_specs'}\n"
    _, line = one_error(["preview", "hello", "--as-of", "2026-06-01", "--root", str(root)])
    assert line == (f"error: deep.yaml: (top): nests too deep to read: {nesting} (and 3 more) — "
                    "run `cswf validate` to see every problem, fix the spec, try again")


@pytest.mark.parametrize(("levels", "expected"), [
    (60, "conditions nest at most 50 levels of all / any / not; this one nests 60"),
    (5000, "nests too deep to read"),
])
def test_a_where_nested_too_deep_is_one_line(ran: Path, levels: int, expected: str) -> None:
    where = "{not: " * levels + "{field: tier, op: eq, value: smb}" + "}" * levels
    _, line = one_error(["deploy", "hello", "--where", where, "--root", str(ran)])
    assert line == (f"error: --where: {expected} — conditions nest at most 50 levels of all / "
                    "any / not; flatten the rule (one `any` of many leaves, not a chain of "
                    "nested groups)")


def test_an_unknown_report_names_the_tables(ran: Path) -> None:
    _, line = one_error(["report", "nope", "--root", str(ran)])
    assert line.startswith(f"error: no table 'nope' in {ran / 'data/bi/cswf.duckdb'}; tables: ")
    assert "workflow_summary" in line


def test_a_workflow_that_fails_stops_the_tick_before_anything_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path)
    panic = panic_class()

    def overflow(frame: object) -> None:
        raise panic("`NaiveDateTime + TimeDelta` overflowed")

    monkeypatch.setattr("cswf.engine.tick.check_schedule", overflow)
    _, line = one_error(["tick", "--as-of", "2026-06-01", "--root", str(root)])
    assert line.startswith("error: workflow 'hello': evaluating steps.0 failed: "
                           "`NaiveDateTime + TimeDelta` overflowed (a panic in Polars) — run ")
    assert line.endswith(f" stopped; its event log was not kept: set DAGSTER_HOME="
                         f"{root.resolve()} and run again to keep it")  # no Makefile: no make ui
    with duckdb.connect(str(root / "data/cswf.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM tick_log").fetchall() == [(0,)]
        assert con.sql("SELECT count(*) FROM actions_outbox").fetchall() == [(0,)]


def test_a_groups_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    (root / "user_groups.yaml").write_bytes(b"groups: {caf\xe9: {members: [a]}}\n")
    _, line = one_error(["validate", "--root", str(root)])
    assert line == (f"error: {root / 'user_groups.yaml'}: not UTF-8 text (byte 0xe9); save it as "
                    "UTF-8 — fix the user groups file")


def test_the_event_log_is_named_only_where_it_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(root=tmp_path)
    assert event_log(settings, "r1") == (f"its event log was not kept: set DAGSTER_HOME="
                                         f"{tmp_path.resolve()} and run again to keep it")
    (tmp_path / "Makefile").write_text("ui:\n")  # this repository: `make ui` sets it
    assert event_log(settings, "r1").endswith(  # the instance `make ui` reads
        f"DAGSTER_HOME={tmp_path.resolve() / 'data' / 'dagster'} and run again to keep it, as "
        "`make ui` does")
    monkeypatch.setenv("DAGSTER_HOME", "/srv/dagster")
    assert event_log(settings, "r1") == ("its event log is in the Dagster instance at "
                                         "/srv/dagster (`dg dev` shows run r1)")


def test_reports_before_the_first_tick_is_one_line(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    todo = ("nothing to report yet: no tick has run — run ticks first: `cswf run --start DAY "
            "--end DAY` or `cswf tick --as-of TIME`")
    database = root / "data/cswf.duckdb"
    assert one_error(["reports", "--root", str(root)]) == (1, f"error: {database}: {todo}")
    assert not database.exists()  # asking wrote nothing
    assert cswf("ingest", "--root", str(root))[0] == 0  # a database, but no tick yet
    assert one_error(["reports", "--root", str(root)]) == (1, f"error: {database}: {todo}")


def test_an_empty_path_variable_is_one_line(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path)
    monkeypatch.setenv("CSWF_DATABASE", "")
    assert one_error(["validate", "--root", str(root)]) == (
        1, "error: CSWF_DATABASE: is set but empty — give it a value, or unset it (`unset "
           "CSWF_DATABASE`) to use database from cswf.yaml")


def test_an_unknown_cswf_variable_is_one_warning(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path)
    (root / "cswf.yaml").write_text("tick_start: '2026-05-31 00:00'\ndelivery: {smtp: {host: h, "
                                    "from_address: a@b.c, user_env: CSWF_MAIL_USER, "
                                    "password_env: CSWF_MAIL_PASSWORD}}\n")
    monkeypatch.setenv("CSWF_DATBASE", "x.duckdb")
    monkeypatch.setenv("CSWF_BOGUS", "1")
    monkeypatch.setenv("CSWF_MAIL_USER", "me")  # named by the delivery section: known
    monkeypatch.setenv("CSWF_TEST_KILL", "x")  # the test suite's own
    code, out, err = cswf("validate", "--root", str(root))
    assert code == 0 and out.startswith("ok  hello.yaml")
    assert err.splitlines() == [
        "warning: CSWF_BOGUS: not a cswf setting, ignored — the closest known is 'CSWF_ROOT'",
        "warning: CSWF_DATBASE: not a cswf setting, ignored — did you mean 'CSWF_DATABASE'?",
    ]


@pytest.mark.parametrize(("key", "default"), [("landing_dir", "data/landing"),
                                            ("staging_dir", "data/staging")])
def test_an_empty_path_in_the_config_is_one_line(tmp_path: Path, key: str, default: str
                                                 ) -> None:
    root = make_project(tmp_path)
    (root / "cswf.yaml").write_text(f"tick_start: '2026-05-31 00:00'\n{key}: ''\n")
    assert one_error(["validate", "--root", str(root)]) == (
        1, f"error: {root / 'cswf.yaml'}: {key}: an empty path (it would be the project "
           f"folder itself) — give a path relative to the project folder, e.g. {default}, or "
           "remove the line for the default")


def test_a_shard_step_killed_mid_run_is_one_line_and_the_tick_then_runs(tmp_path: Path) -> None:
    """A shard step's process SIGKILLed as the kernel's out-of-memory killer would, in a
    multiprocess `cswf tick`: one line naming the step and the signal (Dagster's own error
    for it is empty), nothing written to the terminal by the steps' log tails; the tick then
    runs whole."""
    import os
    import signal
    import time

    from cswf.project.fanout import PAUSE_BEFORE_PUBLISH

    root = make_project(tmp_path / "p")
    with (root / "cswf.yaml").open("a") as config:
        config.write("shards: 2\nexecutor: multiprocess\n")
    pid = tmp_path / "shard.pid"
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    tick = [sys.executable, "-m", "cswf.cli", "tick", "--as-of", f"{DAY}T00:00",
            "--root", str(root)]
    child = subprocess.Popen(tick, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**env, PAUSE_BEFORE_PUBLISH: f"1:300:{pid}"})
    deadline = time.monotonic() + 240
    while not (pid.exists() and pid.read_text()):
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.2)
    os.kill(int(pid.read_text()), signal.SIGKILL)
    _, err = child.communicate(timeout=240)
    assert child.returncode == 1
    assert err.splitlines() == [err.rstrip("\n")], err  # one line, nothing else
    assert err.startswith(
        "error: step workflow_engine.engine_shard_1's process was killed by signal 9 (SIGKILL), "
        "as the system does when memory runs out: run it again (with more memory, or more "
        "shards, if memory ran out) — run "), err
    again = subprocess.run(tick, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "1 written" in again.stdout
    with duckdb.connect(str(root / "data" / "cswf.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM tick_log").fetchall() == [(1,)]


@pytest.mark.parametrize(("said", "line"), [
    ("Multiprocess executor: child process for step s was terminated by signal 9 (SIGKILL). "
     "This usually indicates that the process was killed by the operating system due to "
     "running out of memory.",
     "step s's process was killed by signal 9 (SIGKILL), as the system does when memory runs "
     "out: run it again (with more memory, or more shards, if memory ran out)"),
    ("Multiprocess executor: child process for step s was terminated by signal 11 (SIGSEGV).",
     "step s's process was killed by signal 11 (SIGSEGV): run it again"),
    ("Multiprocess executor: child process for step s unexpectedly exited with code 3.",
     "step s's process exited with code 3 without saying why: run it again"),
])
def test_a_step_whose_process_died_is_said_as_dagster_saw_it(said: str, line: str) -> None:
    from types import SimpleNamespace

    run = SimpleNamespace(all_events=[SimpleNamespace(step_key="other", message="x"),
                                      SimpleNamespace(step_key="s", message=said)])
    assert cli._killed(run, "s") == line  # type: ignore[arg-type]
