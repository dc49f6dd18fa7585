"""docs/scaling.md's Kubernetes executor, checked with dagster-k8s's own code short of a
cluster: the block runs as written, its configuration is valid for `k8s_job_executor`, and the
Kubernetes job dagster-k8s builds for each step of `tick_shards_job` mounts the working
database's volume where the step opens the database and nowhere else. No pod is started."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from test_tick_chunks import REPO

from cswf.defs import database_steps
from cswf.defs.fanout import SHARDS_JOB, shard_op_name

dagster_k8s = pytest.importorskip("dagster_k8s", reason="`make test` installs dagster-k8s "
                                  "from requirements.lock")
from dagster_k8s.job import (  # noqa: E402 (only with dagster-k8s)
    DagsterK8sJobConfig,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
)

SHARDS = 3


def documented_block() -> str:
    text = (REPO / "docs" / "scaling.md").read_text()
    found = re.search(r"```python\n(# src/<project>/defs/cswf_defs\.py\n.*?)```", text, re.S)
    assert found, "docs/scaling.md has no Kubernetes definitions block"
    return found[1]


def documented_executor(root: Path, monkeypatch: pytest.MonkeyPatch
                        ) -> tuple[dict[str, Any], dg.JobDefinition]:
    """The configuration the block gives `k8s_job_executor`, and the tick job it builds."""
    given: dict[str, Any] = {}
    real = dagster_k8s.k8s_job_executor

    class Recording:
        def configured(self, config: dict[str, Any]) -> dg.ExecutorDefinition:
            given.update(config)
            return real.configured(config)

    monkeypatch.setattr(dagster_k8s, "k8s_job_executor", Recording())
    monkeypatch.delenv("CSWF_ROOT", raising=False)
    (root / "defs").mkdir(parents=True)
    (root / "cswf.yaml").write_text(f"shards: {SHARDS}\n"
                                    "staging_url: s3://cswf-slices/prod\n")
    namespace: dict[str, Any] = {"__file__": str(root / "defs" / "cswf_defs.py"),
                                 "__name__": "cswf_defs"}
    exec(compile(documented_block(), "docs/scaling.md", "exec"), namespace)
    job = namespace["defs"]().resolve_job_def(SHARDS_JOB)
    return given, job


def step_pod(config: dict[str, Any], op: str) -> Any:
    """The pod spec dagster-k8s gives step `op`: the executor's own settings merged with the
    op's `per_step_k8s_config`, as its step handler merges them."""
    job_config = DagsterK8sJobConfig(
        job_image="registry.example.com/my-cswf-project:1.0", dagster_home="/opt/dagster",
        volume_mounts=config.get("volume_mounts", []), volumes=config.get("volumes", []))
    per_step = UserDefinedDagsterK8sConfig.from_dict(
        config.get("per_step_k8s_config", {}).get(op, {}))
    job = construct_dagster_k8s_job(job_config, ["dagster", "api", "execute_step"],
                                    "dagster-step-x", per_step, "dagster-step-x",
                                    component="step_worker")
    return job.spec.template.spec


def test_the_documented_executor_mounts_the_database_only_where_a_step_opens_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, job = documented_executor(tmp_path / "project", monkeypatch)

    @dg.job(executor_def=dagster_k8s.executor.k8s_job_executor)
    def probe() -> None: ...

    checked = dg.validate_run_config(probe, {"execution": {"config": config}})  # raises if bad
    assert set(checked["execution"]["k8s"]["per_step_k8s_config"]) == set(database_steps())
    ops = {op.name for op in job.graph.iterate_op_defs()}
    shards = {shard_op_name(k) for k in range(SHARDS)}
    assert ops == set(database_steps()) | shards, "every step is either a shard or named"
    for op in sorted(ops):
        pod = step_pod(config, op)
        mounts = {(m.name, m.mount_path) for m in pod.containers[0].volume_mounts or []}
        claims = {v.name: v.persistent_volume_claim.claim_name for v in pod.volumes or []}
        if op in shards:
            assert (mounts, claims) == (set(), {}), op
        else:
            assert mounts == {("cswf-data", "/data")}, op
            assert claims == {"cswf-data": "cswf-data"}, op
