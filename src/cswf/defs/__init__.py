"""Dagster definitions for cswf: a thin layer over `cswf.project`.

cswf is a library: a project's `defs/` folder calls `build_defs(settings)` (this repository's
demo project does, in src/demo_project/defs/cswf_defs.py; see docs/dagster.md). Tests and tools
build their own with the settings they want.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import dagster as dg

from cswf.defs.assets import build_assets
from cswf.defs.automation import (
    build_data_tests_job,
    build_landing_sensor,
    build_tick_job,
    build_tick_range_job,
    build_tick_schedule,
)
from cswf.defs.checks import LANDING_CHECKS, TICK_CHECKS, build_report_checks
from cswf.defs.datatests import data_test_checks, per_run_tests
from cswf.defs.delivery import DELIVERY_ASSETS, build_delivery_job, build_delivery_schedule
from cswf.defs.fanout import build_tick_shards_job, fans_out
from cswf.defs.fanout import database_steps as database_steps  # docs/scaling.md, Kubernetes
from cswf.defs.maintenance import compact_job, compact_schedule
from cswf.defs.partitions import latest_snapshot_day, tick_partitions
from cswf.defs.resources import (
    Audience,
    ignore_tick,
    project_resource,
    warehouse_resource,
)
from cswf.project import OnTick
from cswf.settings import Settings, find_root
from cswf.store.private import private_umask


def build_defs(
    settings: Settings, audience: Audience | None = None, on_tick: OnTick | None = None,
    shard_executor: dg.ExecutorDefinition | None = None,
) -> dg.Definitions:
    """Every asset, check, job, schedule and sensor of the project described by `settings`.

    `audience` answers actions between ticks (a simulation's customers); `on_tick` is told of
    every tick a run stores (the CLI's progress bar). `shard_executor` replaces the executor
    cswf.yaml names for `tick_shards_job` (e.g. dagster-k8s's `k8s_job_executor`:
    docs/scaling.md). Runs use the in-process executor: DuckDB
    allows one writer process, and the steps of a tick run are sequential anyway (each needs the
    previous one's tables), so separate step processes would only add start-up time and lock
    contention. With `shards` > 1, `tick_shards_job` runs a tick's shard steps on the executor
    cswf.yaml names (defs/fanout.py).
    """
    private_umask()  # loading the definitions starts the pipeline's process (store/private.py)
    through = latest_snapshot_day(settings.landing_path)
    partitions = tick_partitions(settings.calendar, through)
    tick_job = build_tick_job()
    data_tests = data_test_checks(settings)
    per_run = per_run_tests(data_tests)
    delivery_job = build_delivery_job()
    fan_out = fans_out(settings, shard_executor)
    shards_job = [build_tick_shards_job(settings, shard_executor)] if fan_out else []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # backfill_policy is beta in 1.13
        assets = build_assets(settings, partitions, shard_steps=fan_out)
    return dg.Definitions(
        assets=[*assets, *DELIVERY_ASSETS],
        asset_checks=[*LANDING_CHECKS, *TICK_CHECKS, *build_report_checks(settings),
                      *data_tests],
        jobs=[tick_job, build_tick_range_job(per_run), build_data_tests_job(per_run),
              delivery_job, compact_job, *shards_job],
        schedules=[
            build_tick_schedule(tick_job, settings.calendar, partitions),
            build_delivery_schedule(delivery_job),
            compact_schedule,
        ],
        sensors=[build_landing_sensor(tick_job, partitions, through)],
        resources={
            "cswf": project_resource(settings),
            "warehouse": warehouse_resource(settings),
            "audience": audience or Audience(),
            "tick_observer": on_tick or ignore_tick,
        },
        executor=dg.in_process_executor,
    )


class ProjectSettingsError(ValueError):
    """cswf.yaml or a CSWF_* variable is wrong: its message is the CLI's one line (file, key,
    what to do), which Dagster shows where the definitions fail to load."""


def project_settings(start: Path) -> Settings:
    """The settings of the project whose cswf.yaml is found from `start` upwards; CSWF_ROOT
    names another project folder, and CSWF_* variables override single settings. Checked as
    the CLI checks them, so `dg dev` names a bad setting as `cswf validate` would."""
    from cswf.clitools.config import project_settings as checked
    from cswf.clitools.errors import CliError

    try:
        return checked(None if os.environ.get("CSWF_ROOT") else find_root(start))
    except CliError as exc:
        raise ProjectSettingsError(exc.line()) from None
