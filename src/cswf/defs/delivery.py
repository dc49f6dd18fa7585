"""Delivery after the tick: its own assets, job and schedule (actions leave on their own cadence).

`deliveries` sends what the outbox holds (dry run unless cswf.yaml says otherwise) and records
what happened; `action_insights` is the per-step report of what came of it. `now` is the wall
clock unless the run config gives one (a simulation delivers as of its own time).

The delivery job also runs the outbox's blocking checks (`checks.OUTBOX_CHECKS`) over the whole
outbox first: when one fails, nothing is sent. When delivery's breaker holds a run (a due volume
far above the norm, delivery/brakes.py), `deliveries` fails with the breaker's one line, which
names the command that releases it.
"""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource

from cswf import project
from cswf.defs.checks import OUTBOX
from cswf.defs.metadata import preview, table_metadata
from cswf.defs.resources import CswfProject, open_warehouse

DELIVERY_GROUP = "delivery"
DELIVERY_JOB = "delivery_job"
DELIVERY_SCHEDULE = "delivery_schedule"
DELIVERY_CRON = "*/15 * * * *"

# What `define_asset_job` returns: a job resolved when the Definitions are (its class is not
# public API, so it is not named here).
AssetJob = Any


class DeliveryRunConfig(dg.Config):
    now: str = ""  # ISO time (UTC); empty: the wall clock


def _now(config: DeliveryRunConfig) -> datetime:
    if config.now:
        return datetime.fromisoformat(config.now).replace(tzinfo=None)
    return datetime.now(UTC).replace(tzinfo=None)


@dg.asset(
    group_name=DELIVERY_GROUP,
    deps=["actions_outbox"],
    kinds={"duckdb", "email"},
    description="Sends due actions exactly once (emails, webhooks, CRM export tables), after "
                "suppression, frequency-cap and quiet-hour rules; records every outcome. Its "
                "table: one row per action and where it stands.",
)
def deliveries(
    context: dg.AssetExecutionContext,
    config: DeliveryRunConfig,
    cswf: CswfProject,
    warehouse: DuckDBResource,
) -> dg.MaterializeResult:
    settings = cswf.settings()
    now = _now(config)
    with open_warehouse(warehouse) as con:
        report = project.deliver_outbox(con, settings, now)
        table = table_metadata(con, "deliveries", settings.sql_path)
        rows = int(con.execute("SELECT count(*) FROM deliveries").fetchall()[0][0])
        statuses = preview(con, "SELECT status, count(*) AS actions FROM deliveries "
                                "GROUP BY ALL ORDER BY ALL")
    if report.breaker is not None:  # nothing was sent: a person approves the volume first
        raise dg.Failure(description=report.breaker,
                         metadata={"now": now.isoformat(sep=" "), "breaker": report.breaker})
    context.log.info(f"delivery as of {now:%Y-%m-%d %H:%M}: {report.summary()}")
    return dg.MaterializeResult(metadata={
        **table,
        "dagster/row_count": rows,
        "now": now.isoformat(sep=" "),
        "summary": report.summary(),
        **{f"this run: {k}": v for k, v in sorted(report.outcomes.items())},
        "dry run": report.dry_run,
        "preview folder": str(report.preview_dir) if report.preview_dir else "",
        "all deliveries by status": statuses,
    })


@dg.asset(
    group_name=DELIVERY_GROUP,
    deps=[deliveries],
    kinds={"duckdb"},
    description="Per workflow and step: emails sent / delivered / opened / clicked / replied / "
                "bounced, tasks created / completed / overdue.",
)
def action_insights(
    context: dg.AssetExecutionContext, config: DeliveryRunConfig, cswf: CswfProject,
    warehouse: DuckDBResource,
) -> dg.MaterializeResult:
    settings = cswf.settings()
    with open_warehouse(warehouse) as con:
        rows = project.store_action_insights(con, _now(config))
        table = table_metadata(con, "action_insights", settings.sql_path)
        shown = preview(con, "SELECT * FROM action_insights")
        # BI readers see what delivery did without waiting for the next tick.
        context.log.info(project.publish_bi_copy(con, settings).summary())
    return dg.MaterializeResult(metadata={
        **table,
        "dagster/row_count": rows,
        "preview": shown,
    })


DELIVERY_ASSETS = [deliveries, action_insights]


def build_delivery_job() -> AssetJob:
    return dg.define_asset_job(
        DELIVERY_JOB,
        selection=dg.AssetSelection.groups(DELIVERY_GROUP)
        | dg.AssetSelection.checks_for_assets(OUTBOX),
        description="Check the outbox (blocking), deliver what it holds, then rebuild the action "
                    "insights.",
    )


def build_delivery_schedule(job: AssetJob) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=DELIVERY_SCHEDULE, job=job, cron_schedule=DELIVERY_CRON,
        execution_timezone="UTC",
        description="Delivers every 15 minutes (stopped until switched on in the UI).",
    )
