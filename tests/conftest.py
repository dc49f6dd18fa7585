"""Shared test setup: the tests folder is importable (for the engine harness), and no test
records runs in the developer's Dagster instance (a test that wants one sets DAGSTER_HOME)."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import pgserver
import s3server
from test_delivery_servers import SmtpRecorder, smtp_server


@pytest.fixture(autouse=True)
def _no_dagster_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpRecorder, int]]:
    """A real SMTP server on localhost: (its recorder of received messages, its port)."""
    recorder = SmtpRecorder()
    with smtp_server(recorder) as port:
        yield recorder, port


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pgserver.Server]:
    """A real PostgreSQL server on 127.0.0.1 for the session (tests/pgserver.py)."""
    found = pgserver.binaries()
    if found is None:
        pytest.skip("no PostgreSQL server on this machine: `make test` installs Debian's "
                    "postgresql (Makefile: system)")
    with pgserver.running(found) as server:
        yield server


@pytest.fixture
def postgres(postgres_server: pgserver.Server) -> str:
    """The URL of a fresh database on the session's PostgreSQL server."""
    return postgres_server.database()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[s3server.Server]:
    """A real S3-compatible server (moto's) on 127.0.0.1 for the session (tests/s3server.py)."""
    pytest.importorskip("moto.server", reason="no moto on this machine: `make test` installs "
                        "it from requirements.lock")
    with s3server.running() as server:
        yield server


@pytest.fixture
def s3(s3_server: s3server.Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """`s3://<a fresh bucket>/slices` on the session's S3 server, with the AWS_* environment
    pointing at that server (and at nothing else)."""
    for name in s3server.OTHER_AWS:
        monkeypatch.delenv(name, raising=False)
    for name, value in s3server.environment(s3_server.endpoint).items():
        monkeypatch.setenv(name, value)
    return f"s3://{s3_server.bucket()}/slices"
