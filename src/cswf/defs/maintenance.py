"""The warehouse's upkeep: `compact_job` merges the row groups ticks leave partial
(store/compaction.py), weekly on `compact_schedule` (stopped until switched on, as every
schedule is) or whenever launched from the UI."""


from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from cswf.defs.resources import open_warehouse
from cswf.store.compaction import NO_DATABASE, compact

COMPACT_JOB = "compact_job"
COMPACT_SCHEDULE = "compact_schedule"
COMPACT_CRON = "0 4 * * 0"  # Sundays at 04:00 UTC


@dg.op(description="Merge the partial row groups of every table in the working database.")
def compact_warehouse(context: dg.OpExecutionContext, warehouse: DuckDBResource) -> dg.Output:
    if not Path(warehouse.database).exists():
        what, todo = NO_DATABASE
        raise dg.Failure(f"{warehouse.database}: {what} — {todo}")
    with open_warehouse(warehouse) as con:
        done = compact(con, datetime.now(UTC).replace(tzinfo=None))
    context.log.info(done.line())
    return dg.Output(None, metadata={
        "row groups before": done.before,
        "row groups after": done.after,
        "seconds": round(done.seconds, 2),
    })


@dg.job(name=COMPACT_JOB, description="Merge the row groups ticks leave partial "
        "(docs/tables.md, 'Compaction').")
def compact_job() -> None:
    compact_warehouse()


compact_schedule = dg.ScheduleDefinition(
    name=COMPACT_SCHEDULE, job=compact_job, cron_schedule=COMPACT_CRON,
    execution_timezone="UTC",
    description="Compacts the working database on Sundays at 04:00 UTC (stopped until switched "
                "on in the UI).",
)
