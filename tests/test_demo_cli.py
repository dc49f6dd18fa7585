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
    assert any(line.startswith("Dagster UI: `make ui`") for line in lines)
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
