"""The tick job, its schedule and the landing-folder sensor.

`tick_job` selects every asset (ingest, facts, engine, reports) and is partitioned by the tick
calendar; the unpartitioned ingest and report assets run once per run, whatever the partition or
partition range. The schedule runs the latest tick at `tick_cron`; the sensor runs it as soon as
landing files are new or changed.

Both start STOPPED, as every new schedule and sensor does. Turn them on in the Dagster UI under
Automation (toggle `tick_schedule` / `landing_sensor`), or from a shell with
`dagster schedule start tick_schedule` / `dagster sensor start landing_sensor` (needs the
dagster-daemon running, e.g. under `dagster dev`).
"""

import hashlib
import json
from pathlib import Path

import dagster as dg
from dagster._core.definitions.partitions.partitioned_schedule import (
    UnresolvedPartitionedAssetScheduleDefinition,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from cswf.defs.resources import CswfProject
from cswf.ingest.contract import FILE_SUFFIXES
from cswf.ingest.deploy_requests import FOLDER as DEPLOY_FOLDER
from cswf.ingest.snapshots import landing_files
from cswf.project import EVENTS_FOLDER

TICK_JOB = "tick_job"
TICK_SCHEDULE = "tick_schedule"
LANDING_SENSOR = "landing_sensor"
SENSOR_INTERVAL_SECONDS = 60


def build_tick_job() -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        TICK_JOB,
        # Partitioned by the tick assets' partitions; delivery runs on its own schedule.
        selection=dg.AssetSelection.all() - dg.AssetSelection.groups("delivery"),
        description=(
            "Ingest landing files, build facts, run the workflow engine and rebuild the reports "
            "for one tick or a range of ticks (one run for the whole range)."
        ),
    )


def build_tick_schedule(
    job: UnresolvedAssetJobDefinition,
) -> UnresolvedPartitionedAssetScheduleDefinition | dg.ScheduleDefinition:
    return dg.build_schedule_from_partitioned_job(
        job,
        name=TICK_SCHEDULE,
        description="Runs the latest tick on the tick calendar (settings.tick_cron, UTC).",
    )


# Besides the snapshots, the folders whose files a tick reads: action results and deploy requests.
WATCHED_FOLDERS = (EVENTS_FOLDER, DEPLOY_FOLDER)


def file_state(landing_dir: Path) -> dict[str, list[int]]:
    """Landing file (relative path) → [size, mtime in ns]: what the sensor's cursor keeps."""
    state = {}
    extra = [path for name in WATCHED_FOLDERS if (landing_dir / name).is_dir()
             for path in sorted((landing_dir / name).iterdir())
             if path.is_file() and path.suffix.lower() in FILE_SUFFIXES
             and not path.name.startswith(".")]
    for path in [*landing_files(landing_dir), *extra]:
        stat = path.stat()
        state[path.relative_to(landing_dir).as_posix()] = [stat.st_size, stat.st_mtime_ns]
    return state


def build_landing_sensor(
    job: UnresolvedAssetJobDefinition, partitions: dg.TimeWindowPartitionsDefinition
) -> dg.SensorDefinition:
    @dg.sensor(
        name=LANDING_SENSOR,
        job=job,
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        description=(
            "Runs the latest tick when landing files are new or changed (cursor: file name → "
            "size and mtime)."
        ),
    )
    def landing_sensor(
        context: dg.SensorEvaluationContext, cswf: CswfProject
    ) -> dg.RunRequest | dg.SkipReason:
        landing = cswf.settings().landing_path
        now = file_state(landing)
        before: dict[str, list[int]] = json.loads(context.cursor) if context.cursor else {}
        new = sorted(set(now) - set(before))
        changed = sorted(name for name in now if name in before and before[name] != now[name])
        removed = sorted(set(before) - set(now))
        cursor = json.dumps(now, sort_keys=True, separators=(",", ":"))
        if not new and not changed:
            if removed:  # forget them, so a file that comes back counts as new
                context.update_cursor(cursor)
                return dg.SkipReason(f"{len(removed)} landing file(s) removed, none new")
            return dg.SkipReason(f"no new or changed files in {landing}")
        latest = partitions.get_last_partition_key()
        if latest is None:  # before the first tick: keep the cursor, so the files count later
            return dg.SkipReason("no tick is due yet (before tick_start)")
        context.update_cursor(cursor)
        context.log.info(f"{len(new)} new, {len(changed)} changed landing file(s): tick {latest}")
        return dg.RunRequest(
            run_key="landing-" + hashlib.sha256(cursor.encode()).hexdigest()[:20],
            partition_key=latest,
            tags={"cswf/new_files": str(len(new)), "cswf/changed_files": str(len(changed))},
        )

    return landing_sensor
