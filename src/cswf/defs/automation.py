"""The tick job, its schedule and the landing-folder sensor.

`tick_job` selects every asset (ingest, facts, engine, reports) and their checks, and is
partitioned by the tick calendar; the unpartitioned ingest and report assets run once per run,
whatever the partition or partition range. The schedule runs the tick due at `tick_cron`; the
sensor runs the newest tick as soon as landing files are new or changed. Why schedules and a
sensor rather than declarative automation: docs/dagster.md.

Both start STOPPED, as every new schedule and sensor does. Turn them on in the Dagster UI under
Automation (toggle `tick_schedule` / `landing_sensor`), or from a shell with
`dagster schedule start tick_schedule` / `dagster sensor start landing_sensor` (needs the
dagster-daemon running, e.g. under `dagster dev`).
"""

import hashlib
import json
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import dagster as dg

from cswf.calendar import TickCalendar, key_of, utc_naive
from cswf.defs.delivery import AssetJob
from cswf.defs.partitions import latest_snapshot_day
from cswf.defs.resources import CswfProject
from cswf.ingest.contract import FILE_SUFFIXES
from cswf.ingest.deploy_requests import FOLDER as DEPLOY_FOLDER
from cswf.ingest.participant_events import FOLDER as PARTICIPANT_EVENTS_FOLDER
from cswf.ingest.snapshots import landing_files
from cswf.project import EVENTS_FOLDER

TICK_JOB = "tick_job"
TICK_RANGE_JOB = "tick_range_job"
DATA_TESTS_JOB = "data_tests_job"
TICK_SCHEDULE = "tick_schedule"
LANDING_SENSOR = "landing_sensor"
SENSOR_INTERVAL_SECONDS = 60


def build_tick_job() -> AssetJob:
    return dg.define_asset_job(
        TICK_JOB,
        # Partitioned by the tick assets' partitions; delivery runs on its own schedule.
        selection=dg.AssetSelection.all() - dg.AssetSelection.groups("delivery"),
        description=(
            "Ingest landing files, build facts, run the workflow engine and rebuild the reports "
            "for one tick or a range of ticks (one run for the whole range), with their checks."
        ),
    )


def build_tick_range_job(per_run_tests: Sequence[dg.AssetChecksDefinition]) -> AssetJob:
    """`tick_job` for a range of ticks in one run, without the data tests of whole tables.

    Dagster records a planned row per check and per partition of a run, each row holding the
    run's whole partition range: the 191 data tests over the demo's 720 ticks were 139,000 rows
    and 220 MB of its event log, a quarter of the run's time. A range runs its blocking checks
    and the facts' per-tick tests at every tick, and the tests of the unpartitioned landing and
    report tables once after it (`data_tests_job`).
    """
    return dg.define_asset_job(
        TICK_RANGE_JOB,
        selection=dg.AssetSelection.all() - dg.AssetSelection.groups("delivery")
        - dg.AssetSelection.checks(*per_run_tests),
        description="tick_job for a range of ticks in one run; the data tests of the landing "
                    "and report tables run after it, once, as data_tests_job.",
    )


def build_data_tests_job(per_run_tests: Sequence[dg.AssetChecksDefinition]) -> AssetJob:
    """The declared data tests of the landing and report tables alone (after a range)."""
    return dg.define_asset_job(
        DATA_TESTS_JOB, selection=dg.AssetSelection.checks(*per_run_tests),
        description="The declared data tests of the landing and report tables.",
    )


def build_tick_schedule(
    job: AssetJob, calendar: TickCalendar, partitions: dg.TimeWindowPartitionsDefinition
) -> dg.ScheduleDefinition:
    """At each tick of the calendar, run that tick, or skip with the reason when it comes after
    the last tick with a snapshot (the partitions end there until the definitions reload)."""

    @dg.schedule(
        name=TICK_SCHEDULE,
        job=job,
        cron_schedule=calendar.cron,
        execution_timezone="UTC",
        description="Runs the tick due now (settings.tick_cron, UTC), up to the last tick of "
        "the latest landed snapshot's day.",
    )
    def tick_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        due = calendar.latest(utc_naive(context.scheduled_execution_time))
        if due is None:
            return dg.SkipReason(f"before the first tick ({key_of(calendar.first)})")
        key = key_of(due)
        if not partitions.has_partition_key(key):
            return dg.SkipReason(
                f"tick {key} comes after the last tick with a snapshot "
                f"({partitions.get_last_partition_key()}): nothing new to evaluate. Once newer "
                "snapshots land, reload the definitions to add their ticks."
            )
        return dg.RunRequest(run_key=key, partition_key=key)

    return tick_schedule


# Besides the snapshots, the folders whose files a tick reads: action results, participant
# events and deploy requests.
WATCHED_FOLDERS = (EVENTS_FOLDER, PARTICIPANT_EVENTS_FOLDER, DEPLOY_FOLDER)


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
    job: AssetJob, partitions: dg.TimeWindowPartitionsDefinition, through: date | None
) -> dg.SensorDefinition:
    """`through`: the latest snapshot day the partitions were built for (they end there)."""

    @dg.sensor(
        name=LANDING_SENSOR,
        job=job,
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        description=(
            "Runs the newest tick when landing files are new or changed (cursor: file name → "
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
        newest = partitions.get_last_partition_key()
        if newest is None:  # before the first tick: keep the cursor, so the files count later
            return dg.SkipReason("no tick is due yet (before tick_start)")
        context.update_cursor(cursor)
        landed = latest_snapshot_day(landing)
        if landed is not None and (through is None or landed > through):
            context.log.warning(
                f"account snapshots up to {landed} have landed, but the tick partitions end "
                f"with {newest}: reload the definitions to add the newer ticks"
            )
        context.log.info(f"{len(new)} new, {len(changed)} changed landing file(s): tick {newest}")
        return dg.RunRequest(
            run_key="landing-" + hashlib.sha256(cursor.encode()).hexdigest()[:20],
            partition_key=newest,
            tags={"cswf/new_files": str(len(new)), "cswf/changed_files": str(len(changed))},
        )

    return landing_sensor
