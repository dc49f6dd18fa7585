"""The real Dagster webserver serves the project's definitions through its `dg` entry point
(src/demo_project/definitions.py): what `make ui` shows."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from engine_harness import ASSET_GROUPS

REPO = Path(__file__).resolve().parents[1]
ASSETS_QUERY = """
{ assetNodes { assetKey { path } groupName isPartitioned } }
"""
JOBS_QUERY = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
    schedules { name cronSchedule }
    sensors { name }
    jobs { name }
} } } }
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory):
    port = free_port()
    home = tmp_path_factory.mktemp("dagster")
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")  # as `make ui` does
    env = {**os.environ, "DAGSTER_HOME": str(home), "CSWF_ROOT": str(REPO)}
    binary = Path(sys.executable).parent / "dagster-webserver"
    process = subprocess.Popen(
        [str(binary), "-m", "demo_project.definitions", "-d", str(REPO / "src"),
         "-h", "127.0.0.1", "-p", str(port)],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(process.stderr.read().decode()[-2000:]) from None
            time.sleep(0.5)
    yield port
    process.terminate()
    process.wait(timeout=20)


def test_the_ui_lists_every_stage_as_assets(webserver: int) -> None:
    nodes = graphql(webserver, ASSETS_QUERY)["assetNodes"]
    groups = {"/".join(n["assetKey"]["path"]): n["groupName"] for n in nodes}
    assert groups == ASSET_GROUPS
    partitioned = {"/".join(n["assetKey"]["path"]) for n in nodes if n["isPartitioned"]}
    assert partitioned == {"account_facts", "enrollments", "transitions", "actions_outbox"}


def test_the_ui_has_the_jobs_schedules_and_sensor(webserver: int) -> None:
    (repo,) = graphql(webserver, JOBS_QUERY)["repositoriesOrError"]["nodes"]
    assert {s["name"]: s["cronSchedule"] for s in repo["schedules"]} == {
        "tick_schedule": "0 */3 * * *", "delivery_schedule": "*/15 * * * *",
        "compact_schedule": "0 4 * * 0"}
    assert [s["name"] for s in repo["sensors"]] == ["landing_sensor"]
    assert {"tick_job", "delivery_job", "compact_job"} <= {j["name"] for j in repo["jobs"]}


def test_the_ui_page_is_served(webserver: int) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{webserver}/", timeout=10) as response:
        page = response.read().decode()
    assert response.status == 200 and "<html" in page.lower()
