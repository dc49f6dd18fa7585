"""`cswf init`: the files of a new project, refusing to overwrite, and a first run on them."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml
from landing_rows import contract_columns, snapshot_csv
from typer.testing import CliRunner

from cswf.cli import app
from cswf.clitools.config import project_settings
from cswf.ingest.contract import ACCOUNTS, OBJECTS
from cswf.scaffold import dagster_files, init_project, project_files
from cswf.specs.schema import referenced_schema

runner = CliRunner()
FILES = [
    ".gitignore",
    "cswf.yaml",
    "dagster.yaml",
    "data/landing/README.md",
    "pyproject.toml",
    "segments/renewing_soon.yaml",
    "src/my_project/__init__.py",
    "src/my_project/definitions.py",
    "src/my_project/defs/__init__.py",
    "src/my_project/defs/cswf_defs.py",
    "user_groups.yaml",
    "workflow-spec.schema.json",
    "workflow_specs/renewal_check_in.yaml",
    "workflow_specs/templates/renewal_check_in.html.j2",
]


def init(folder: Path, *extra: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["init", str(folder), *extra], terminal_width=400)
    return result.exit_code, result.stdout, result.stderr


def test_init_writes_a_project(tmp_path: Path) -> None:
    folder = tmp_path / "my-project"
    code, out, _ = init(folder)
    assert code == 0, out
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) \
        == FILES
    assert out.splitlines() == [
        *[f"wrote {folder / rel}" for rel in FILES],
        f"next: drop snapshot files in {folder / 'data/landing'} (its README.md says which), "
        f"then `cd {folder} && cswf run --start DATE --end DATE` (ticks start at tick_start, "
        f"{datetime.now(UTC):%Y-%m-%d} 00:00 in cswf.yaml: move it back to replay older "
        "snapshots); for the Dagster UI: `pip install --no-deps -e .` once, then "
        "`DAGSTER_HOME=$PWD dg dev`",
    ]


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "cswf.yaml").write_text("# mine\n")
    code, out, err = init(folder)
    assert code == 1
    assert out == ""
    assert err == (f"error: {folder}: 1 file(s) would be overwritten: cswf.yaml — choose an "
                   "empty folder, or add --force to overwrite them\n")
    assert [p.name for p in folder.iterdir()] == ["cswf.yaml"]
    assert (folder / "cswf.yaml").read_text() == "# mine\n"


def test_init_force_overwrites(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    assert init(folder)[0] == 0
    (folder / "user_groups.yaml").write_text("groups: {}\n")
    code, out, _ = init(folder, "--force")
    assert code == 0
    assert f"wrote {folder / 'user_groups.yaml'} (replaced)" in out.splitlines()
    assert "renewals:" in (folder / "user_groups.yaml").read_text()


def test_init_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("x")
    code, _, err = init(target)
    assert code == 1
    assert err == f"error: {target}: is a file, not a folder — choose another path\n"


def test_the_new_project_is_valid(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    init(folder)
    result = runner.invoke(app, ["validate", "--root", str(folder)], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok  renewal_check_in.yaml: renewal_check_in (enabled, "
                                    "3 steps, version ")
    assert result.stdout.endswith("ok  segments/renewing_soon.yaml: segment renewing_soon "
                                  "(account)\n")
    settings = project_settings(folder)
    assert settings.tick_start == datetime.now(UTC).replace(
        hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    assert settings.database_path == folder / "data/cswf.duckdb"
    assert settings.landing_path == folder / "data/landing"
    assert settings.sql_dir is None  # the shipped models


def test_the_landing_readme_is_the_contract() -> None:
    readme = project_files(Path("p"))["data/landing/README.md"]
    for obj in OBJECTS.values():
        assert f"## {obj.name}\n" in readme
        assert f"{obj.name}/{obj.name}_YYYY-MM-DD.csv" in readme
        for column in obj.columns:
            required = "key" if column.key else "yes" if column.required else "optional"
            allowed = ", ".join(f"`{v}`" for v in column.allowed or ())
            assert (f"| {column.name} | {column.dtype} | {required} | {allowed} | "
                    f"{column.description} |") in readme
    assert "| workflow | yes |" in readme and "| requested_at | optional |" in readme
    assert "| action_id | yes |" in readme and "`unsubscribed`" in readme


def test_dagster_instance_stays_under_data() -> None:
    config = yaml.safe_load(project_files(Path("p"))["dagster.yaml"])
    assert config["storage"]["sqlite"]["base_dir"] == "data/dagster"
    assert "dagster._" not in project_files(Path("p"))["dagster.yaml"]  # documented keys only
    # The dg project: `dg dev` loads src/<module>/definitions.py, which calls cswf's build_defs.
    files = dagster_files(Path("my-project"))
    assert sorted(files) == ["pyproject.toml", "src/my_project/__init__.py",
                             "src/my_project/definitions.py", "src/my_project/defs/__init__.py",
                             "src/my_project/defs/cswf_defs.py"]
    assert 'root_module = "my_project"' in files["pyproject.toml"]
    assert "build_defs(project_settings(" in files["src/my_project/defs/cswf_defs.py"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_ignores_data_but_the_landing_readme(tmp_path: Path) -> None:
    init(tmp_path)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    paths = ["data/cswf.duckdb", "data/dagster/runs.db", "data/landing/accounts/a.csv",
             "data/landing/README.md", "cswf.yaml"]
    ignored = subprocess.run(["git", "-C", str(tmp_path), "check-ignore", *paths],
                             capture_output=True, text=True).stdout.split()
    assert ignored == paths[:3]


def test_a_first_run_enrolls_and_acts(tmp_path: Path) -> None:
    """The example spec takes in an account renewing within 60 days: a task and an email."""
    folder = tmp_path / "p"
    init(folder)
    # Yesterday: both of its first ticks are in the past whatever the hour (today's 03:00 tick
    # is not yet runnable before 03:00), so the project starts a day back.
    today = datetime.now(UTC).date() - timedelta(days=1)
    config = folder / "cswf.yaml"
    config.write_text(re.sub(r'tick_start: "[^"]*"', f'tick_start: "{today} 00:00"',
                             config.read_text()))
    landing = folder / "data/landing/accounts"
    landing.mkdir()
    rows = [{"account_id": "soon", "stage": "mature",
             "renewal_date": (today + timedelta(days=30)).isoformat()},
            {"account_id": "later", "stage": "mature",
             "renewal_date": (today + timedelta(days=200)).isoformat()}]
    (landing / f"accounts_{today}.csv").write_text(
        snapshot_csv(contract_columns(ACCOUNTS), today, rows))
    result = runner.invoke(app, ["run", "--start", f"{today}", "--end", f"{today}T03:00:00Z",
                                 "--root", str(folder)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "2 ticks" in result.stdout
    with duckdb.connect(str(folder / "data/cswf.duckdb"), read_only=True) as con:
        enrolled = con.sql("SELECT workflow, participant_id FROM enrollments").fetchall()
        actions = con.sql("SELECT action_type, coalesce(recipient, assignee) FROM "
                          "actions_outbox ORDER BY 1").fetchall()
    assert enrolled == [("renewal_check_in", "soon")]
    assert actions == [("email", "primary_contact.0@example.com"),
                       ("task", "csm.0@example.com")]


def test_init_date_is_today(tmp_path: Path) -> None:
    text = project_files(tmp_path, datetime(2027, 1, 2, 15, 30, tzinfo=UTC))["cswf.yaml"]
    assert 'tick_start: "2027-01-02 00:00"' in text  # the day init runs


def test_a_range_into_the_future_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    init(folder)
    today = datetime.now(UTC).date()
    landing = folder / "data/landing/accounts"
    landing.mkdir()
    (landing / f"accounts_{today}.csv").write_text(
        snapshot_csv(contract_columns(ACCOUNTS), today, []))
    tomorrow = today + timedelta(days=1)
    result = runner.invoke(app, ["run", "--start", f"{today}", "--end", f"{tomorrow}T03:00",
                                 "--root", str(folder)], terminal_width=200)
    assert result.exit_code == 1
    assert f"error: tick {tomorrow} 03:00 is in the future (it is now " in result.output
    assert "end the range at a tick that has come" in result.output


def _readme_steps() -> list[list[str]]:
    """The `cswf ...` commands of the README's "Start your own project", as arguments."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Start your own project", 1)[1].split("\n## ", 1)[0]
    return [line.split("#", 1)[0].split()[1:] for line in section.splitlines()
            if line.startswith("    cswf ")]


def test_the_readme_steps_run_as_written(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    steps = _readme_steps()
    assert [s[0] for s in steps] == ["init", "validate", "run"]
    monkeypatch.chdir(tmp_path)
    init_step = runner.invoke(app, steps[0], terminal_width=400)
    assert init_step.exit_code == 0, init_step.output
    monkeypatch.chdir(tmp_path / steps[0][1])
    day = datetime(2026, 7, 1).date()
    landing = Path("data/landing/accounts")
    landing.mkdir()
    (landing / f"accounts_{day}.csv").write_text(snapshot_csv(
        contract_columns(ACCOUNTS), day, [{"account_id": "a1", "stage": "mature",
                                           "renewal_date": "2026-07-20"}]))
    for step in steps[1:]:
        result = runner.invoke(app, step, terminal_width=400)
        assert result.exit_code == 0, result.output
    assert "8 ticks" in result.stdout


def test_ticks_before_tick_start_name_it(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    init_project(folder, today=datetime(2026, 11, 29))
    root = ["--root", str(folder)]
    config = folder / "cswf.yaml"
    said = [runner.invoke(app, args + root, terminal_width=400).stderr for args in (
        ["run", "--start", "2026-07-01", "--end", "2026-07-01T21:00"],
        ["tick", "--as-of", "2026-06-30T21:00"],
        ["backtest", "renewal_check_in", "--from", "2026-06-01", "--to", "2026-06-02"],
        ["tick", "--as-of", "2026-11-29T01:00"])]
    assert said == [
        "error: --start/--end: 2026-07-01 00:00 to 2026-07-01 21:00 is before tick_start "
        f"2026-11-29 00:00 ({config}: tick_start), the first tick — move tick_start back in "
        f'{config}, e.g. tick_start: "2026-07-01 00:00", to replay those days\n',
        "error: --as-of: 2026-06-30 21:00 is before tick_start 2026-11-29 00:00 "
        f"({config}: tick_start), the first tick — move tick_start back in {config}, e.g. "
        'tick_start: "2026-06-30 00:00", to replay those days\n',
        "error: --from/--to: 2026-06-01 00:00 to 2026-06-02 00:00 is before tick_start "
        f"2026-11-29 00:00 ({config}: tick_start), the first tick — move tick_start back in "
        f'{config}, e.g. tick_start: "2026-06-01 00:00", to replay those days\n',
        "error: --as-of: 2026-11-29 01:00:00 is not a tick of the schedule '0 */3 * * *' — "
        "give a tick, e.g. 2026-11-29 03:00\n",
    ]


def test_tick_start_from_the_environment_is_named(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "p"
    init_project(folder)
    monkeypatch.setenv("CSWF_TICK_START", "2026-11-01")
    result = runner.invoke(app, ["tick", "--as-of", "2026-06-30T21:00", "--root", str(folder)],
                           terminal_width=400)
    assert result.exit_code == 1
    assert result.stderr == (
        "error: --as-of: 2026-06-30 21:00 is before tick_start 2026-11-01 00:00 "
        "(CSWF_TICK_START), the first tick — set CSWF_TICK_START='2026-06-30 00:00' (or "
        "earlier), to replay those days\n")


def test_init_takes_the_first_tick(tmp_path: Path) -> None:
    code, out, _ = init(tmp_path / "p", "--tick-start", "2026-07-01")
    assert code == 0, out
    assert 'tick_start: "2026-07-01 00:00"' in (tmp_path / "p/cswf.yaml").read_text()


def test_schema_writes_where_the_specs_look(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    init(folder)
    (folder / "workflow-spec.schema.json").unlink()
    result = runner.invoke(app, ["schema", "--root", str(folder)], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {folder.resolve() / 'workflow-spec.schema.json'}\n"
    assert (folder / "workflow-spec.schema.json").is_file()
    assert not (folder / "docs").exists()
    # This repository's specs look in docs/, where `make schema` writes with --out.
    repo = Path(__file__).resolve().parents[1]
    assert referenced_schema(repo / "workflow_specs") == repo / "docs/workflow-spec.schema.json"


def test_the_config_says_where_a_dry_run_writes() -> None:
    """A dry run replaces every sender (docs/delivery.md): tasks go to dry_run_dir too."""
    text = project_files(Path("p"))["cswf.yaml"]
    assert "dry_run_dir, tasks and field updates to export_dir" not in text
    assert ("every action\n# is written to dry_run_dir instead (emails as .eml, tasks, field "
            "updates and webhooks as .json)") in text


def test_schema_outside_a_project_writes_here(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CSWF_ROOT", raising=False)
    result = runner.invoke(app, ["schema"], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert result.stdout == "wrote workflow-spec.schema.json\n"
    assert [p.name for p in tmp_path.iterdir()] == ["workflow-spec.schema.json"]
