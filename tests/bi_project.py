"""A small project for the BI tests, built once per session: the repo's specs, a small book, ten
days of ticks (so reports are built and the BI copy published), a dry-run delivery (would-be
emails) and the copy published again with its deliveries. Paths in its cswf.yaml are relative,
so a copy of the folder is a project of its own."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cswf.cli import app
from cswf.demo.generate import generate_book

REPO = Path(__file__).resolve().parents[1]
LAST_TICK = "2026-06-09T21:00"
runner = CliRunner()
_built: list[Path] = []


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args), terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.stdout


def built(factory: pytest.TempPathFactory) -> Path:
    """The session's project (built on first use); copy it before changing it."""
    if not _built:
        root = factory.mktemp("bi") / "project"
        shutil.copytree(REPO / "workflow_specs", root / "workflow_specs")
        (root / "cswf.yaml").write_text(
            "database: cswf.duckdb\nlanding_dir: landing\nbi_dir: bi\n"
            "tick_start: '2026-05-31 00:00'\n"
            "delivery: {dry_run: true, dry_run_dir: outbox, export_dir: exports}\n"
        )
        generate_book(root / "landing", accounts=60, days=45, start=date(2026, 5, 1))
        cli("run", "--start", "2026-05-31", "--end", LAST_TICK, "--root", str(root))
        cli("deliver", "--now", LAST_TICK, "--root", str(root))
        cli("report", "--publish", "--root", str(root))  # with the deliveries, as `make demo`
        _built.append(root)
    return _built[0]


def copy_of(root: Path, where: Path) -> Path:
    target = where / "project"
    shutil.copytree(root, target, symlinks=True)
    return target
