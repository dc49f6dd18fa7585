"""Shared test setup: the tests folder is importable (for the engine harness), and no test
records runs in the developer's Dagster instance (a test that wants one sets DAGSTER_HOME)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _no_dagster_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
