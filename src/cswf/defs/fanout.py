"""`shards: N` > 1 in Dagster: the engine's three assets computed by a graph of ops, so each
shard of a tick is a step of its own on the executor cswf.yaml names.

    prepare_tick ─┬─ engine_shard_0 ─┬─ commit_tick → enrollments, transitions, actions_outbox
                  ├─ engine_shard_1 ─┤
                  └─ ...            ─┘

`prepare_tick` and `commit_tick` are the only writers of the working database (one at a
time, as DuckDB allows); the shard steps never open it: each reads the input slice the
prepare step published and publishes its slice (project/fanout.py). A run holds ONE tick:
the next tick's prepare step reads the state this tick's `commit_tick` wrote, so a range runs as
one run per tick, in order (`run_sharded_ticks`; in the UI, a backfill of the
self-dependent `enrollments` launches them one after another).

`executor: multiprocess` runs every step in a process of its own, at most
`max_concurrent_shards` at once (Dagster's `max_concurrent`); it needs a persistent instance
(DAGSTER_HOME, or a temporary one here) and a job Dagster can rebuild in each process
(`reconstruct_shards_job`, from the project folder and the settings given in code).
"""

import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource

from cswf import project
from cswf.calendar import as_of_of, key_of
from cswf.defs.checks import TICK_CHECKS
from cswf.defs.delivery import AssetJob
from cswf.defs.resources import (
    Audience,
    CswfProject,
    TickObserver,
    ignore_tick,
    open_warehouse,
)
from cswf.engine.tick import TickResult
from cswf.project.fanout import commit_tick, prepare_tick, shard_tick
from cswf.project.ticks import answers_until
from cswf.settings import Settings, load_settings
from cswf.store.warehouse import WriteOutcome, connect, load_tick

ENGINE = ("enrollments", "transitions", "actions_outbox")
PREPARE, COMMIT = "prepare_tick", "commit_tick"
SHARD_POOL = "cswf_shards"  # a Dagster concurrency pool: bounds shard steps across runs


def shard_op_name(shard: int) -> str:
    return f"engine_shard_{shard}"


def database_steps() -> list[str]:
    """The ops of `tick_shards_job` that open the working database: every one but the shards
    (the prepare and global steps, the engine's checks). On Kubernetes, the steps whose pods
    mount its volume (docs/scaling.md: `per_step_k8s_config`)."""
    checks = [check.node_def.name for check in TICK_CHECKS
              if any(key.asset_key.to_user_string() in ENGINE for key in check.check_keys)]
    return [PREPARE, COMMIT, *checks]


def fans_out(settings: Settings, shard_executor: dg.ExecutorDefinition | None = None) -> bool:
    """Whether a tick's shards are Dagster steps: with `shards` > 1 on the multiprocess
    executor, or an executor given in code. With `executor: in_process` the shards run one after
    another inside the engine's one step (project/ticks.py), the same result at a fraction of
    the cost: a run per tick and a step per shard buy nothing in one process."""
    return settings.shards > 1 and (settings.executor == "multiprocess"
                                    or shard_executor is not None)


def executor_for(settings: Settings) -> dg.ExecutorDefinition:
    """The executor cswf.yaml chose (in process unless `shards` > 1 and `executor:
    multiprocess`): defs/__init__.py says why one process is the default."""
    if settings.shards == 1 or settings.executor == "in_process":
        return dg.in_process_executor
    # forkserver: each step's process forks from one that imported cswf and Dagster already
    config: dict[str, Any] = {"start_method": {"forkserver": {"preload_modules": [
        "cswf.defs", "cswf.project.fanout", "cswf.defs.stepprocess"]}}}
    if settings.max_concurrent_shards is not None:
        config["max_concurrent"] = settings.max_concurrent_shards
    return dg.multiprocess_executor.configured(config)


def _one_tick(context: dg.OpExecutionContext) -> datetime:
    """The run's tick: a run of sharded ticks holds one (the next one's shards need its
    commit), so a range of partitions is refused with the reason."""
    keys = context.partition_keys
    if len(keys) != 1:
        raise ValueError(f"with shards > 1 a run holds one tick, got {len(keys)} "
                         f"({keys[0]} … {keys[-1]}): run one tick per run (cswf run does)")
    return as_of_of(keys[0])


def _engine_ops(shards: int) -> tuple[dg.OpDefinition, list[dg.OpDefinition], dg.OpDefinition]:
    @dg.op(name=PREPARE, ins={"facts": dg.In(dg.Nothing), "previous": dg.In(dg.Nothing)},
           out=dg.Out(dg.Nothing),
           description="Before the shards: the snapshot, hold and lifecycle checks, the spec "
                       "versions, each shard's inputs published as its input slice (the "
                       "working database's writer).")
    def prepare(context: dg.OpExecutionContext, cswf: CswfProject,
                warehouse: DuckDBResource) -> None:
        settings = cswf.settings()
        with open_warehouse(warehouse) as con:
            prepare_tick(con, settings, project.load_workflows(settings), _one_tick(context))

    def shard_op(k: int) -> dg.OpDefinition:
        @dg.op(name=shard_op_name(k), ins={"prepared": dg.In(dg.Nothing)},
               out=dg.Out(dg.Nothing), tags={"cswf/shard": str(k)}, pool=SHARD_POOL,
               description=f"Shard {k} of {shards}: its participants' part of the tick, from "
                           "the input slice the prepare step published (the working database "
                           "is not opened), published as its slice (project/fanout.py).")
        def shard(context: dg.OpExecutionContext, cswf: CswfProject,
                  audience: Audience) -> None:
            settings = cswf.settings()
            as_of = _one_tick(context)
            # the specs alone: the prepare step checked them against the warehouse, which a
            # shard step never opens (its input slice names the versions it was cut for)
            where = shard_tick(settings, project.load_workflows(settings, warehouse=False),
                               as_of, k, shards)
            context.log.info(f"tick {key_of(as_of)} shard {k} of {shards}: slice {where}")
        return shard

    @dg.op(name=COMMIT, ins={"slices": dg.In(dg.Nothing)},
           out={name: dg.Out(dg.Nothing) for name in ENGINE},
           description="The global step: every shard's slice merged, group tasks assigned, the "
                       "tick written in one transaction, the slices removed.")
    def commit(context: dg.OpExecutionContext, config: _CommitConfig, cswf: CswfProject,
               warehouse: DuckDBResource, audience: Audience,
               tick_observer: TickObserver) -> Iterator[dg.Output]:
        settings = cswf.settings()
        as_of = _one_tick(context)
        with open_warehouse(warehouse) as con:
            outcome, wrote = commit_tick(
                con, settings, project.load_workflows(settings), as_of, shards,
                on_tick=None if tick_observer is ignore_tick else tick_observer,
                respond=audience.responder(), rewrite_delivered=config.rewrite_delivered)
        context.log.info(f"tick {key_of(as_of)} {outcome.status} from {shards} shards: "
                         f"{wrote.participants} participants, {wrote.transitions} "
                         f"transitions, {wrote.actions} actions")
        rows = {"enrollments": wrote.changed, "transitions": wrote.transitions,
                "actions_outbox": wrote.actions}
        for name in ENGINE:
            yield dg.Output(None, name, metadata={"tick_status": outcome.status,
                                                  "shards": shards,
                                                  "dagster/row_count": rows[name]})

    return prepare, [shard_op(k) for k in range(shards)], commit


class _CommitConfig(dg.Config):
    """As the one-process engine's: `rewrite_delivered` lets a re-run rewrite delivered ticks."""

    rewrite_delivered: bool = False


def build_sharded_engine(partitions: dg.TimeWindowPartitionsDefinition, shards: int,
                         descriptions: dict[str, str]) -> dg.AssetsDefinition:
    """`workflow_engine` as a graph: prepare, the shard steps, the global step."""
    prepare, shard_ops, commit = _engine_ops(shards)

    @dg.graph_multi_asset(
        name="workflow_engine",
        outs={name: dg.AssetOut(group_name="engine", kinds={"duckdb", "polars"},
                                description=descriptions[name]) for name in ENGINE},
        ins={
            "facts": dg.AssetIn("account_facts", dagster_type=dg.Nothing),
            "previous": dg.AssetIn(
                "enrollments", dagster_type=dg.Nothing,
                partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1,
                                                                end_offset=-1)),
        },
        partitions_def=partitions,
        # one run per tick: a tick's global step comes before the next tick's shards
        backfill_policy=dg.BackfillPolicy.multi_run(1),
        can_subset=False,
    )
    def workflow_engine(facts: Any, previous: Any) -> dict[str, Any]:
        prepared = prepare(facts=facts, previous=previous)
        committed = commit(slices=[op(prepared=prepared) for op in shard_ops])
        return dict(zip(ENGINE, committed, strict=True))

    return workflow_engine


# -- the job and running a range: one run per tick --------------------------------------------

SHARDS_JOB = "tick_shards_job"


def build_tick_shards_job(settings: Settings,
                          executor: dg.ExecutorDefinition | None = None) -> AssetJob:
    """The engine's steps (prepare, shards, commit) and the engine's checks for one tick, on
    the executor cswf.yaml names (or `executor`, given in code); `cswf tick`/`cswf run` run it
    once per tick, and so can the UI (a partition of `tick_shards_job`)."""
    return dg.define_asset_job(
        SHARDS_JOB, selection=dg.AssetSelection.assets(*ENGINE),
        executor_def=executor or executor_for(settings),
        description=f"The workflow engine for one tick in {settings.shards} shard steps and a "
                    "global step, on the executor cswf.yaml names (docs/scaling.md).")


def reconstruct_shards_job(root: str, overrides: str) -> dg.JobDefinition:
    """`tick_shards_job`, rebuilt in each step's process from the project folder and the
    settings given in code (JSON): what the multiprocess executor needs."""
    from cswf.defs import build_defs

    return build_defs(load_settings(Path(root), **json.loads(overrides))).resolve_job_def(
        SHARDS_JOB)


@contextmanager
def persistent(instance: dg.DagsterInstance) -> Iterator[dg.DagsterInstance]:
    """`instance`, or a temporary instance on disk when it is ephemeral: processes of a
    multiprocess run share the run's records through it."""
    if not instance.is_ephemeral:
        yield instance
        return
    # Each step's process reports its start through Dagster's default console logger, at
    # DEBUG unless the instance says otherwise: the CLI's terminal is not the place.
    # Its steps' compute logs go with it: Dagster tails them while a step runs, and a tail
    # outliving the folder writes to the terminal (a killed step's, say).
    quiet = {"python_logs": {"python_log_level": "INFO"},
             "compute_logs": {"module": "dagster._core.storage.noop_compute_log_manager",
                              "class": "NoOpComputeLogManager"}}
    with tempfile.TemporaryDirectory(prefix="cswf-dagster-") as folder, \
            dg.DagsterInstance.local_temp(folder, overrides=quiet) as temporary:
        yield temporary


RunResult = dg.ExecuteInProcessResult | dg.JobExecutionResult


def run_sharded_ticks(
    settings: Settings, ticks: Sequence[datetime], defs: dg.Definitions,
    instance: dg.DagsterInstance, *, before: Callable[[], RunResult],
    after: Callable[[], RunResult], run_config: dict[str, Any], raise_on_error: bool,
    on_tick: Callable[..., None] | None,
) -> RunResult:
    """`before` (ingest and facts for every tick, one run in this process), then each tick's
    engine as a `tick_shards_job` run of its own, in order, then `after` (the reports);
    stops at the first run that fails and returns it (else the last).

    On the multiprocess executor a simulated audience (the demo's customers) answers here,
    between one tick's run and the next: the steps run in other processes, which cannot call
    it. It must record what it answers (the next tick's shard steps read the database)."""
    result = before()
    if not result.success:
        return result
    with ExitStack() as stack:
        respond = None
        if settings.executor == "multiprocess":
            instance = stack.enter_context(persistent(instance))
            audience = defs.resources.get("audience")
            respond = audience.responder() if isinstance(audience, Audience) else None
            from cswf.defs.resources import project_resource

            resource = project_resource(settings)
            job = dg.build_reconstructable_job(
                __name__, reconstruct_shards_job.__name__,
                reconstructable_args=(resource.root, json.dumps(resource.overrides)))
        for i, as_of in enumerate(ticks):
            key = key_of(as_of)
            if settings.executor != "multiprocess":
                result = defs.resolve_job_def(SHARDS_JOB).execute_in_process(
                    run_config=run_config, instance=instance, partition_key=key,
                    raise_on_error=raise_on_error)
            else:
                result = dg.execute_job(job, instance, run_config=run_config,
                                        tags={"dagster/partition": key},
                                        raise_on_error=raise_on_error)
                if result.success and (on_tick is not None or respond is not None):
                    outcome, stored = _stored_tick(settings, as_of, _status(result))
                    if on_tick is not None:
                        on_tick(outcome, stored)
                    if respond is not None:
                        _answer(settings, respond, stored,
                                answers_until(ticks, i, settings.calendar))
            if not result.success:
                return result
    return after()


class AudienceFailed(RuntimeError):
    """The simulated audience failed after a tick's run stored the tick (one line)."""


def _answer(settings: Settings, respond: Callable[..., object], tick: TickResult,
            until: datetime) -> None:
    """The audience's answers to a stored tick, up to `until`, recorded in the database."""
    try:
        with connect(settings.database_path, memory_limit=settings.memory_limit) as con:
            respond(con, tick, until)
    except Exception as err:  # the tick's run succeeded: say what failed after it
        raise AudienceFailed(f"tick {key_of(tick.as_of)} is stored, but the simulated "
                             f"audience failed after it: {type(err).__name__}: "
                             f"{(str(err).strip().splitlines() or [''])[0]}") from err


def _status(result: RunResult) -> str:
    """The tick's write status, as the global step recorded it on its materializations."""
    for event in result.get_asset_materialization_events():
        found = event.step_materialization_data.materialization.metadata.get("tick_status")
        if found is not None:
            return str(found.value)
    return "written"


def _stored_tick(settings: Settings, as_of: datetime, status: str
                 ) -> tuple[WriteOutcome, TickResult]:
    """What a step's process told its tick observer, read back from the database for the
    caller's observer (a multiprocess run's steps cannot call back into this process): as
    there, `state` holds the enrollments the tick changed, never the book."""
    with connect(settings.database_path, read_only=True,
                 memory_limit=settings.memory_limit) as con:
        return WriteOutcome(as_of, status), load_tick(con, as_of)
