"""Run ticks and delivery through Dagster in this process: what `cswf demo`, `cswf tick` and
`cswf run` call, so a tick run from the shell leaves the same trace in Dagster as one the
schedule started (the run, its checks, a materialized partition per tick).

Runs are recorded in the DAGSTER_HOME instance when DAGSTER_HOME is set (the Makefile sets it
for `make demo` and `make ui`); without it they run against a throwaway instance.
"""

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from cswf.calendar import as_of_of, key_of
from cswf.defs import build_defs
from cswf.defs.automation import DATA_TESTS_JOB, TICK_JOB, TICK_RANGE_JOB
from cswf.defs.delivery import DELIVERY_JOB
from cswf.defs.eventlog import event_log_kept_open
from cswf.defs.fanout import fans_out
from cswf.defs.resources import Audience
from cswf.project import OnTick, ticks_in
from cswf.settings import Settings

# A range of partitions in one run: the run tags a single-run backfill carries (Dagster has no
# `partition_key_range` argument for in-process runs; its maintainers show these tags for it).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

# Dagster records a "planned" event per asset and partition when a run starts (2,880 for a
# 720-tick range, about as slow to write as the materializations themselves). With this set it
# records one per asset with the whole range instead; the catch, per Dagster, is that the
# partitions of a run that fails are shown as missing rather than failed.
PLANNED_EVENTS_AS_RANGES = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


def run_tick_range(
    settings: Settings,
    start: datetime,
    end: datetime,
    instance: dg.DagsterInstance | None = None,
    *,
    raise_on_error: bool = True,
    audience: Audience | None = None,
    on_tick: OnTick | None = None,
    ingest_now: datetime | None = None,
    quiet: bool = False,
    rewrite_delivered: bool = False,
) -> dg.ExecuteInProcessResult:
    """Execute `tick_job` for every tick with start <= as_of <= end in one run.

    A range of ticks runs `tick_range_job`, then the data tests of the landing and report
    tables once, as a `data_tests_job` run (defs/automation.py says why).

    `instance` defaults to `default_instance()`. `ingest_now` is when the landing files
    count as arriving (default: the wall clock). `quiet` keeps Dagster's log lines off the
    terminal (they stay in the run's event log). `rewrite_delivered` lets a re-run rewrite ticks
    whose actions were delivered (store/history.py). Raises ValueError when the range holds no tick
    or goes past the tick partitions (the last tick of the latest snapshot's day, or now).
    """
    ticks = ticks_in(settings, start, end)
    if not ticks:
        raise ValueError(
            f"no tick between {start} and {end} (calendar '{settings.tick_cron}' from "
            f"{settings.tick_start})"
        )
    run_id = str(uuid.uuid4())
    with ExitStack() as stack:
        instance = instance or stack.enter_context(default_instance())
        keeper = stack.enter_context(event_log_kept_open(instance, run_id))
        return _run_ticks_job(settings, ticks, instance, run_id, keeper.on_tick(on_tick),
                              audience=audience, raise_on_error=raise_on_error,
                              ingest_now=ingest_now, quiet=quiet,
                              rewrite_delivered=rewrite_delivered)


def _run_ticks_job(
    settings: Settings, ticks: list[datetime], instance: dg.DagsterInstance, run_id: str,
    on_tick: OnTick, *, audience: Audience | None, raise_on_error: bool,
    ingest_now: datetime | None, quiet: bool, rewrite_delivered: bool,
) -> dg.ExecuteInProcessResult:
    defs = build_defs(settings, audience, on_tick)
    job = defs.resolve_job_def(TICK_JOB if len(ticks) == 1 else TICK_RANGE_JOB)
    partitions = job.partitions_def
    if partitions is None or not partitions.has_partition_key(key_of(ticks[-1])):
        last = partitions.get_last_partition_key() if partitions is not None else None
        last_tick = last and f"{as_of_of(last):%Y-%m-%d %H:%M}"
        now = datetime.now(UTC).replace(tzinfo=None)
        if ticks[-1] > now:  # the clock, not the data, is what stops it
            raise ValueError(
                f"tick {ticks[-1]:%Y-%m-%d %H:%M} is in the future (it is now {now:%Y-%m-%d %H:%M} "
                "UTC): end the range at a tick that has come"
            )
        raise ValueError(
            f"tick {ticks[-1]:%Y-%m-%d %H:%M} comes after the last tick with a landed account "
            f"snapshot ({last_tick or 'none yet'}): nothing new to evaluate — land that day's "
            "snapshot files first (docs/data-contract.md)"
        )
    tags = {RANGE_START_TAG: key_of(ticks[0]), RANGE_END_TAG: key_of(ticks[-1])}
    config: dict[str, Any] = _quiet() if quiet else {}
    ops: dict[str, Any] = {}
    if ingest_now is not None:
        ops["landing_snapshots"] = {"config": {"now": ingest_now.isoformat()}}
    if rewrite_delivered:
        ops["workflow_engine"] = {"config": {"rewrite_delivered": True}}
    if ops:
        config["ops"] = ops
    if fans_out(settings):  # one run per tick, shard steps on their executor (defs/fanout.py)
        return _run_sharded(settings, ticks, audience, instance, config, rewrite_delivered,
                            raise_on_error=raise_on_error, on_tick=on_tick, quiet=quiet)
    with _default_environment(PLANNED_EVENTS_AS_RANGES, "true"):
        result = job.execute_in_process(
            run_config=config, instance=instance, tags=tags, raise_on_error=raise_on_error,
            run_id=run_id,
        )
        if len(ticks) > 1 and result.success:  # the whole tables' data tests, once
            defs.resolve_job_def(DATA_TESTS_JOB).execute_in_process(
                run_config=_quiet() if quiet else None, instance=instance, raise_on_error=False
            )
        return result


def _run_sharded(
    settings: Settings, ticks: list[datetime], audience: Audience | None,
    instance: dg.DagsterInstance, config: dict[str, Any], rewrite_delivered: bool, *,
    raise_on_error: bool, on_tick: OnTick, quiet: bool,
) -> dg.ExecuteInProcessResult:
    """Shard steps (defs/fanout.py `fans_out`): ingest and facts for the range in one run, each
    tick's engine a run of its own, then the reports; the landing and report data tests once.
    A simulated audience answers in this process between one tick's run and the next."""
    return _run_sharded_runs(settings, ticks, build_defs(settings, audience, on_tick), instance,
                             config, rewrite_delivered, raise_on_error=raise_on_error,
                             on_tick=on_tick, quiet=quiet)


def _run_sharded_runs(
    settings: Settings, ticks: list[datetime], defs: dg.Definitions,
    instance: dg.DagsterInstance, config: dict[str, Any], rewrite_delivered: bool, *,
    raise_on_error: bool, on_tick: OnTick, quiet: bool,
) -> dg.ExecuteInProcessResult:
    from cswf.defs.fanout import COMMIT, run_sharded_ticks

    job = defs.resolve_job_def(TICK_JOB if len(ticks) == 1 else TICK_RANGE_JOB)
    groups = {spec.key: spec.group_name for spec in defs.resolve_all_asset_specs()}
    tags = {RANGE_START_TAG: key_of(ticks[0]), RANGE_END_TAG: key_of(ticks[-1])}
    quiet_config = _quiet() if quiet else {}
    engine_config = {**quiet_config, "ops": {"workflow_engine": {"ops": {COMMIT: {"config": {
        "rewrite_delivered": rewrite_delivered}}}}}}

    def part(wanted: set[str], run_config: dict[str, Any],
             run_tags: dict[str, str]) -> dg.ExecuteInProcessResult:
        return job.execute_in_process(
            run_config=run_config, instance=instance, tags=run_tags,
            raise_on_error=raise_on_error,
            asset_selection=[key for key, group in groups.items() if group in wanted])

    result = run_sharded_ticks(
        settings, ticks, defs, instance,
        before=lambda: part({"ingest", "facts"}, {**quiet_config, **(
            {"ops": config["ops"]} if "landing_snapshots" in config.get("ops", {}) else {})},
            tags),
        after=lambda: part({"reports"}, quiet_config, {RANGE_START_TAG: key_of(ticks[-1]),
                                                       RANGE_END_TAG: key_of(ticks[-1])}),
        run_config=engine_config, raise_on_error=raise_on_error, on_tick=on_tick)
    if len(ticks) > 1 and result.success:  # the whole tables' data tests, once
        defs.resolve_job_def(DATA_TESTS_JOB).execute_in_process(
            run_config=quiet_config or None, instance=instance, raise_on_error=False)
    return result  # type: ignore[return-value]  # a multiprocess run's result reads the same


def run_delivery(
    settings: Settings, now: datetime, instance: dg.DagsterInstance | None = None,
    *, quiet: bool = False,
) -> dg.ExecuteInProcessResult:
    """Execute `delivery_job` once, delivering as of `now` (a simulation's own time).

    `quiet` keeps Dagster's log lines off the terminal, as for `run_tick_range`."""
    job = build_defs(settings).resolve_job_def(DELIVERY_JOB)
    config: dict[str, Any] = _quiet() if quiet else {}
    config["ops"] = {name: {"config": {"now": now.isoformat()}}
                     for name in ("deliveries", "action_insights")}
    with ExitStack() as stack:
        instance = instance or stack.enter_context(default_instance())
        return job.execute_in_process(instance=instance, run_config=config)


@contextmanager
def default_instance() -> Iterator[dg.DagsterInstance]:
    """The DAGSTER_HOME instance when DAGSTER_HOME is set (`make demo` sets it, as `make ui`
    does), else a throwaway one: the run happens, nothing is recorded."""
    if os.environ.get("DAGSTER_HOME"):
        with dg.DagsterInstance.get() as instance:
            yield instance
    else:
        with dg.DagsterInstance.ephemeral() as instance:
            yield instance


def _quiet() -> dict[str, Any]:
    """Run config that keeps Dagster's console logger silent (the event log keeps every line)."""
    return {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@contextmanager
def _default_environment(name: str, value: str) -> Iterator[None]:
    """Set an environment variable for the block, unless it is set already."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)
