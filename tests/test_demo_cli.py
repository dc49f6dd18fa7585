"""`cswf demo` on a small book: context lines, the progress bar, the summary and where to look
next; none of Dagster's per-partition events on the terminal."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from cswf.cli import app

REPO = Path(__file__).resolve().parents[1]
DAYS = 33  # 30 days of history, then 3 days of ticks: 24 ticks


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("demo")
    shutil.copytree(REPO / "workflow_specs", root / "workflow_specs")
    (root / "cswf.yaml").write_text(
        "database: data/cswf.duckdb\nlanding_dir: data/landing\n"
        "tick_start: '2026-05-31 00:00'\n"
        "delivery: {dry_run: true, dry_run_dir: data/outbox_preview, cap_per_day: 3, "
        "quiet_hours: {start: '20:00', end: '08:00'}}\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DAGSTER_HOME", raising=False)  # an ephemeral instance: nothing recorded
        result = CliRunner().invoke(
            app, ["demo", "--accounts", "200", "--days", str(DAYS), "--fresh", "--root",
                  str(root)], terminal_width=200)
    assert result.exit_code == 0, result.output
    return root, result.output


def test_the_terminal_shows_context_a_bar_and_the_summary(demo: tuple[Path, str]) -> None:
    root, output = demo
    lines = output.splitlines()
    assert lines[0].startswith("book of business: 200 accounts")
    assert any("24 ticks" in line and "one Dagster run" in line for line in lines)
    assert any("24/24" in line for line in lines)  # the bar, finished
    assert "workflow_summary" in output and "onboarding_welcome" in output
    assert "emails:" in output and "after waiting for quiet hours" in output
    assert "customers:" in output and "tasks:" in output
    assert f"BI copy: {root / 'data' / 'bi' / 'cswf.duckdb'} (workflow_summary, " in output
    assert "DuckDB: " not in output  # readers never read the pipeline's own database
    # a project without this repository's Makefile, run without DAGSTER_HOME: nothing kept
    ui = (f"Dagster UI: this demo's runs were not kept (DAGSTER_HOME is not set): run it again "
          f"with DAGSTER_HOME={root.resolve()}, then `DAGSTER_HOME={root.resolve()} dg dev` in "
          f"{root.resolve()} (after `pip install --no-deps -e .` there once) shows them on "
          "http://localhost:3000.")
    assert " ".join(ui.split()) in " ".join(output.split())  # (the terminal wraps it)
    # It ends with the BI copy and the report page drawn from it (what to open next).
    assert lines[-2].startswith("BI copy as of 2026-06-02 21:00: ")
    assert lines[-1].startswith(f"wrote {root / 'data' / 'bi' / 'report.html'}: ")
    assert (root / "data" / "bi" / "report.html").stat().st_size > 0
    # Dagster's own events stay in the run's event log.
    assert "ASSET_MATERIALIZATION" not in output and "STEP_START" not in output
    assert len(lines) < 60


def test_the_numbers_on_the_terminal_are_the_tables(demo: tuple[Path, str]) -> None:
    root, output = demo
    with duckdb.connect(str(root / "data" / "cswf.duckdb"), read_only=True) as con:
        sent = con.sql("SELECT count(*) FROM deliveries WHERE action_type = 'email' "
                       "AND status = 'previewed'").fetchall()[0][0]
        waited = con.sql("SELECT count(*) FROM deliveries JOIN actions_outbox USING (action_id) "
                         "WHERE deliveries.action_type = 'email' AND deliveries.status = "
                         "'previewed' AND sent_at > tick").fetchall()[0][0]
        insights = con.sql("SELECT count(*) FROM action_insights").fetchall()[0][0]
    assert sent > 0 and waited > 0 and insights > 0
    assert f"emails: {sent:,} previewed ({waited:,} of them after waiting" in output


def test_a_project_made_today_is_told_where_the_demo_s_book_ticks(tmp_path: Path) -> None:
    """`cswf init` starts the calendar on the day the project is made, after the demo's book:
    the demo says what to set, in one line, and writes nothing."""
    root = tmp_path / "p"
    made = CliRunner().invoke(app, ["init", str(root), "--tick-start", "2026-11-30"])
    assert made.exit_code == 0, made.output
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    result = CliRunner().invoke(app, ["demo", "--days", "32", "--root", str(root)],
                                terminal_width=400)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: tick_start is 2026-11-30 00:00, outside the demo's book (2026-05-01 to "
        "2026-06-01, ticks from its day 31): set tick_start: \"2026-05-31 00:00\" in "
        f"{root}/cswf.yaml (or CSWF_TICK_START), then run cswf demo again"]
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_the_ui_line_names_the_command_of_this_kind_of_project(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make ui` in this repository; `dg dev` on the demo's instance in a project of its own."""
    from cswf.demo.summary import _dagster_ui
    from cswf.settings import load_settings

    (tmp_path / "cswf.yaml").write_text("tick_start: '2026-05-31 00:00'\n")
    settings = load_settings(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert _dagster_ui(settings).startswith(
        f"Dagster UI: `DAGSTER_HOME={tmp_path / 'home'} dg dev` in {tmp_path.resolve()} (after "
        "`pip install --no-deps -e .` there once), then open http://localhost:3000 (Assets ")
    (tmp_path / "Makefile").write_text("ui:\n")
    assert _dagster_ui(settings).startswith("Dagster UI: `make ui`, then open ")
