"""cswf installs like any package: the wheel built from this tree, in a clean virtual
environment, starts a project with `cswf init` and runs it, using nothing of this repository.

Dependencies are installed offline from a wheelhouse of the pinned `requirements.lock` (plus the
build backend), downloaded once and kept in pytest's cache; the first run fetches it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from landing_rows import snapshot_csv

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
BUILD_BACKEND = "setuptools>=68"  # as [build-system] in pyproject.toml asks
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
CONTRACT = ("import json; from cswf.ingest.contract import ACCOUNTS; "
            "print(json.dumps([[c.name, c.dtype, c.allowed] for c in ACCOUNTS.columns]))")


def pip(*args: str, env: dict[str, str]) -> None:
    """This interpreter's pip, quiet, ignoring the machine's pip configuration."""
    subprocess.run([sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check",
                    *args], check=True, env=env)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment a new user has: no PYTHONPATH, no CSWF_*/DAGSTER_* settings, no pip
    configuration files."""
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("PYTHON", "CSWF_", "DAGSTER_", "PIP_", "VIRTUAL_ENV"))}
    return {**keep, "PIP_CONFIG_FILE": os.devnull, **extra}


@pytest.fixture(scope="session")
def wheelhouse(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
               ) -> Path:
    """Wheels of every pinned dependency and of the build backend, for offline installs."""
    key = hashlib.sha256(LOCK.read_bytes() + BUILD_BACKEND.encode()).hexdigest()[:16]
    cache = getattr(request.config, "cache", None)
    home = cache.mkdir("cswf-wheelhouse") if cache is not None else tmp_path_factory.mktemp("w")
    ready = home / key
    if not ready.is_dir():
        for old in home.iterdir():  # wheelhouses of earlier locks, or a broken download
            shutil.rmtree(old, ignore_errors=True)
        partial = home / f"{key}.partial"
        env = clean_env()
        pip("download", "--no-deps", "--dest", str(partial), "-r", str(LOCK), env=env)
        pip("download", "--no-deps", "--dest", str(partial), BUILD_BACKEND, env=env)
        partial.rename(ready)
    return ready


@pytest.mark.slow  # 30-50 s with the wheelhouse cached; about 70 s on a first run (CI's clone)
def test_the_built_wheel_installs_and_runs_a_new_project(
        tmp_path: Path, wheelhouse: Path) -> None:
    started = time.perf_counter()
    env = clean_env()
    source = tmp_path / "source"  # a copy: the build writes build/ and *.egg-info next to it
    shutil.copytree(REPO / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    offline = ["--no-index", "--find-links", str(wheelhouse)]
    pip("wheel", "--no-deps", *offline, "--wheel-dir", str(tmp_path / "dist"), str(source),
        env=env)
    [wheel] = (tmp_path / "dist").glob("cswf-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   env=env)
    python = venv / "bin" / "python"
    pip("--python", str(python), "install", "--no-compile", *offline, str(wheel), env=env)
    shutil.rmtree(source)  # nothing of the source tree is left to find

    work = tmp_path / "work"
    work.mkdir()
    user = clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")

    def run(*args: str, cwd: Path = work) -> str:
        done = subprocess.run(list(args), cwd=cwd, env=user, capture_output=True, text=True)
        assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
        return done.stdout

    assert run("python", "-c", "import cswf; print(cswf.__file__)").startswith(str(venv))
    assert run("cswf", "--version") == f"cswf {VERSION}\n"
    run("cswf", "init", "my-project")
    project = work / "my-project"

    # One day of accounts, written from the installed package's contract: one account renews
    # within 60 days (the example spec takes it in), one does not.
    columns = json.loads(run("python", "-c", CONTRACT))
    # Yesterday, with tick_start moved back to it: both ticks are past whatever the hour.
    today = datetime.now(UTC).date() - timedelta(days=1)
    config = project / "cswf.yaml"
    config.write_text(re.sub(r'tick_start: "[^"]*"', f'tick_start: "{today} 00:00"',
                             config.read_text()))
    rows = [{"account_id": "soon", "stage": "mature",
             "renewal_date": (today + timedelta(days=30)).isoformat()},
            {"account_id": "later", "stage": "mature",
             "renewal_date": (today + timedelta(days=200)).isoformat()}]
    landing = project / "data" / "landing" / "accounts"
    landing.mkdir()
    (landing / f"accounts_{today}.csv").write_text(snapshot_csv(columns, today, rows))

    out = run("cswf", "run", "--start", f"{today}", "--end", f"{today}T03:00:00Z", cwd=project)
    assert "2 ticks" in out
    with duckdb.connect(str(project / "data" / "cswf.duckdb"), read_only=True) as con:
        enrolled = con.sql("SELECT workflow, participant_id FROM enrollments").fetchall()
        actions = con.sql("SELECT action_type FROM actions_outbox ORDER BY 1").fetchall()
    assert enrolled == [("renewal_check_in", "soon")]
    assert actions == [("email",), ("task",)]
    print(f"install test: {time.perf_counter() - started:.0f}s")
