"""Run a range of ticks through Dagster in this process, as ONE run.

This is what `cswf demo` calls: the run is recorded in the Dagster instance (DAGSTER_HOME), so the
UI shows every tick of the range as a materialized partition of the tick assets.
"""

import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Any

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from cswf.calendar import key_of
from cswf.defs import build_defs
from cswf.defs.automation import TICK_JOB
from cswf.defs.delivery import DELIVERY_JOB
from cswf.defs.resources import Audience
from cswf.project import ticks_in
from cswf.settings import Settings

# Dagster records a "planned" event per asset and partition when a run starts (2,880 for a
# 720-tick range, about as slow to write as the materializations themselves). With this set it
# records one per asset with the whole range instead; the catch, per Dagster, is that the
# partitions of a run that fails are shown as missing rather than failed.
PLANNED_EVENTS_AS_RANGES = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
# Run config for a run whose terminal shows something else (the demo's progress bar): the
# default console logger prints warnings and errors only; the run's event log keeps everything.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_tick_range(
    settings: Settings,
    start: datetime,
    end: datetime,
    instance: dg.DagsterInstance | None = None,
    *,
    raise_on_error: bool = True,
    audience: Audience | None = None,
    run_config: Mapping[str, Any] | None = None,
) -> dg.ExecuteInProcessResult:
    """Execute `tick_job` for every tick with start <= as_of <= end in one run.

    `instance` defaults to the DAGSTER_HOME instance when DAGSTER_HOME is set, else an ephemeral
    one (nothing recorded). `run_config` is the run's config, e.g. its loggers (QUIET_CONSOLE).
    Raises ValueError when the range holds no tick.
    """
    ticks = ticks_in(settings, start, end)
    if not ticks:
        raise ValueError(
            f"no tick between {start} and {end} (calendar '{settings.tick_cron}' from "
            f"{settings.tick_start})"
        )
    job = build_defs(settings, audience).resolve_job_def(TICK_JOB)
    tags = {
        ASSET_PARTITION_RANGE_START_TAG: key_of(ticks[0]),
        ASSET_PARTITION_RANGE_END_TAG: key_of(ticks[-1]),
    }
    with ExitStack() as stack:
        instance = instance or stack.enter_context(_default_instance())
        stack.enter_context(_default_environment(PLANNED_EVENTS_AS_RANGES, "true"))
        return job.execute_in_process(instance=instance, tags=tags, raise_on_error=raise_on_error,
                                      run_config=dict(run_config or {}))


def run_delivery(
    settings: Settings, now: datetime, instance: dg.DagsterInstance | None = None,
    run_config: Mapping[str, Any] | None = None,
) -> dg.ExecuteInProcessResult:
    """Execute `delivery_job` once, delivering as of `now` (a simulation's own time)."""
    job = build_defs(settings).resolve_job_def(DELIVERY_JOB)
    config = {**(run_config or {}),
              "ops": {name: {"config": {"now": now.isoformat()}}
                      for name in ("deliveries", "action_insights")}}
    with ExitStack() as stack:
        instance = instance or stack.enter_context(_default_instance())
        return job.execute_in_process(instance=instance, run_config=config)


def _default_instance() -> dg.DagsterInstance:
    """The DAGSTER_HOME instance when DAGSTER_HOME is set, else a throwaway one."""
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") \
        else dg.DagsterInstance.ephemeral()


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
