"""Dagster definitions for cswf: a thin layer over `cswf.project`.

`defs` is built from the project's settings (cswf.yaml found from the working directory upwards,
or CSWF_ROOT; CSWF_* variables override). Tests and tools build their own with `build_defs`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import dagster as dg

from cswf.defs.assets import build_assets
from cswf.defs.automation import (
    build_landing_sensor,
    build_tick_job,
    build_tick_schedule,
)
from cswf.defs.checks import LANDING_CHECKS
from cswf.defs.delivery import (
    DELIVERY_ASSETS,
    build_delivery_job,
    build_delivery_schedule,
)
from cswf.defs.partitions import tick_partitions
from cswf.defs.resources import Audience, project_resource, warehouse_resource
from cswf.settings import CONFIG_FILE, Settings, find_root, load_settings


def build_defs(settings: Settings, audience: Audience | None = None) -> dg.Definitions:
    """Every asset, check, job, schedule and sensor of the project described by `settings`.

    Runs use the in-process executor: DuckDB allows one writer process, and the steps of a tick
    run are sequential anyway (each needs the previous one's tables), so separate step processes
    would only add start-up time and lock contention.
    """
    partitions = tick_partitions(settings.calendar)
    tick_job = build_tick_job()
    delivery_job = build_delivery_job()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # backfill_policy is beta in 1.13
        assets = build_assets(settings, partitions)
    return dg.Definitions(
        assets=[*assets, *DELIVERY_ASSETS],
        asset_checks=LANDING_CHECKS,
        jobs=[tick_job, delivery_job],
        schedules=[build_tick_schedule(tick_job), build_delivery_schedule(delivery_job)],
        sensors=[build_landing_sensor(tick_job, partitions)],
        resources={
            "cswf": project_resource(settings),
            "warehouse": warehouse_resource(settings),
            "audience": audience or Audience(),
        },
        executor=dg.in_process_executor,
    )


def _default_root() -> Path | None:
    """CSWF_ROOT, else cswf.yaml from the working directory upwards, else this checkout."""
    if os.environ.get("CSWF_ROOT"):
        return None  # load_settings reads it
    found = find_root()
    if (found / CONFIG_FILE).exists():
        return found
    return Path(__file__).resolve().parents[2]


defs = build_defs(load_settings(_default_root()))
