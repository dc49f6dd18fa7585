"""The assets: ingest → facts → engine → reports. Each body opens DuckDB, calls one function of
`cswf.project` / `reports.build`, and reports what it did as metadata; no workflow
logic lives here.

Tick assets are partitioned by the tick calendar (`partitions.tick_partitions`) with a single-run
backfill policy, so a range of partitions (a backfill, or `launch.run_tick_range`) is one run that
computes all its facts in one SQL query and runs the ticks in order.
"""

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import duckdb
import polars as pl
from dagster_duckdb import DuckDBResource

from cswf import project
from cswf.calendar import as_of_of, key_of
from cswf.defs.fanout import build_sharded_engine
from cswf.defs.metadata import counts_table, model_description, preview, table_metadata
from cswf.defs.resources import Audience, CswfProject, TickObserver, open_warehouse
from cswf.engine.tick import TickResult
from cswf.ingest.checks import existing_tables
from cswf.ingest.contract import ACCOUNTS, OBJECTS
from cswf.reports.build import report_files
from cswf.settings import Settings
from cswf.store.warehouse import WriteOutcome

LANDING = "landing_snapshots"
FACTS = "account_facts"
ENGINE = ("enrollments", "transitions", "actions_outbox")
INFO_EVERY = 50


def _bullets(items: list[str], limit: int = 20) -> dg.MetadataValue:
    shown = [f"- {item}" for item in items[:limit]]
    if len(items) > limit:
        shown.append(f"- … and {len(items) - limit} more")
    return dg.MetadataValue.md("\n".join(shown) or "none")


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def _ticks(context: dg.AssetExecutionContext) -> list[datetime]:
    return sorted(as_of_of(key) for key in context.partition_keys)


class EngineConfig(dg.Config):
    """`rewrite_delivered`: a re-run may rewrite ticks whose actions were delivered (they are
    kept as superseded); without it such a re-run fails (`cswf tick/run --rewrite-delivered`)."""

    rewrite_delivered: bool = False


# -- ingest ----------------------------------------------------------------------------------


class IngestConfig(dg.Config):
    """When the ingest happens (ISO time, UTC); empty: the wall clock. Deploy requests without a
    `requested_at` arrive at this time: `cswf tick` passes its tick, as it always has."""

    now: str = ""


@dg.asset(
    name=LANDING,
    group_name="ingest",
    kinds={"duckdb", "polars"},
    description=(
        "Daily snapshot files from the landing folder, loaded into raw_accounts, raw_usage, "
        "raw_contacts and raw_opportunities; action results and deploy requests too. New and "
        "changed files load whole or are rejected with a reason (ingest_rejections); unchanged "
        "files are skipped. Its table is raw_accounts (the account snapshots)."
    ),
)
def landing_snapshots(
    context: dg.AssetExecutionContext, config: IngestConfig, cswf: CswfProject,
    warehouse: DuckDBResource,
) -> dg.MaterializeResult:
    settings = cswf.settings()
    known = project.workflow_names(settings)
    now = (datetime.fromisoformat(config.now) if config.now
           else datetime.now(UTC)).replace(tzinfo=None)
    with open_warehouse(warehouse) as con:
        report = project.ingest(con, settings, now, known)
        present = existing_tables(con)
        raw = {obj.table: _rows(con, obj.table) for obj in OBJECTS.values()
               if obj.table in present}
        table = table_metadata(con, ACCOUNTS.table, settings.sql_path)
        latest = preview(con, f"SELECT * FROM {ACCOUNTS.table} "
                              "ORDER BY snapshot_date DESC, account_id")
    snapshots = report.snapshots
    rejected_files = sorted({name for name, _ in report.rejected})
    for line in report.lines():
        (context.log.warning if line.startswith("rejected") else context.log.info)(line)
    return dg.MaterializeResult(
        metadata={
            **table,
            "dagster/row_count": raw.get(ACCOUNTS.table, 0),
            "landing_dir": dg.MetadataValue.path(str(settings.landing_path)),
            "ingested_at": now.isoformat(sep=" ", timespec="minutes"),
            "files_loaded": len(snapshots.files_loaded),
            "files_skipped": len(snapshots.files_skipped_unchanged),
            "files_rejected": len(rejected_files),
            "events_inserted": report.events.inserted,
            "deploy_requests_stored": report.deploys.requests_stored,
            **{f"rows_{name}": rows for name, rows in snapshots.rows_loaded.items()},
            "raw_tables": counts_table(raw),
            "latest_snapshot_rows": latest,
            "loaded": _bullets(snapshots.files_loaded),
            "rejections": _bullets([reason for _, reason in report.rejected]),
        }
    )


# -- facts and engine (partitioned by tick) --------------------------------------------------


def build_tick_assets(
    partitions: dg.TimeWindowPartitionsDefinition, shards: int = 1,
) -> list[dg.AssetsDefinition]:
    """account_facts and the engine's multi-asset, partitioned by tick (with `shards` > 1 the
    engine is a graph of shard steps: defs/fanout.py).

    A run over many ticks records one materialization per tick and asset: each gets that tick's
    own numbers; run totals, previews and schemas go on the run's last tick only, to keep a
    720-tick run's event log small.
    """

    # With shards, a backfill runs a tick per run (defs/fanout.py): the facts follow suit.
    policy = dg.BackfillPolicy.single_run() if shards == 1 else dg.BackfillPolicy.multi_run(1)

    @dg.asset(
        name=FACTS,
        partitions_def=partitions,
        backfill_policy=policy,
        deps=[LANDING],
        group_name="facts",
        kinds={"duckdb", "sql", "polars"},
        description=(
            "One row per tick and account: the latest snapshot as of the tick plus the features "
            "defined in sql/facts/ (what workflow conditions read). All ticks of a run are "
            "computed in one SQL query."
        ),
    )
    def account_facts(
        context: dg.AssetExecutionContext, cswf: CswfProject, warehouse: DuckDBResource
    ) -> dg.MaterializeResult:
        settings = cswf.settings()
        ticks = _ticks(context)
        last = key_of(ticks[-1])
        with open_warehouse(warehouse) as con:
            stored = project.store_facts(con, settings, ticks)
            table = table_metadata(con, FACTS, settings.sql_path)
            rows_at_last = preview(con, f"SELECT * FROM {FACTS} WHERE as_of = ? "
                                        "ORDER BY participant_id", [ticks[-1]])
        context.log.info(f"facts: {stored.rows} rows for {len(ticks)} tick(s)")
        per_tick = {
            as_of: (rows, participants)
            for as_of, rows, participants in stored.per_tick.iter_rows()
        }
        for as_of in ticks:
            rows, participants = per_tick.get(as_of, (0, 0))
            context.add_asset_metadata(
                {"dagster/row_count": rows, "participants": participants},
                partition_key=key_of(as_of),
            )
        context.add_asset_metadata(
            {**table, "run_rows": stored.rows, **_run_span(ticks),
             f"preview (tick {last})": rows_at_last},
            partition_key=last,
        )
        return dg.MaterializeResult()

    same_tick = [dg.AssetDep(FACTS)]
    previous_tick = dg.AssetDep(
        "enrollments",
        partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1),
    )
    descriptions = {
        "enrollments": "Each participant's enrollment in each workflow (view over "
        "enrollment_history, versioned by tick). A tick continues from the previous tick's state.",
        "transitions": "Entered / advanced / objective_met / exited / completed, per tick.",
        "actions_outbox": "Tasks, emails and field updates to deliver, per tick (status pending).",
    }

    @dg.multi_asset(
        name="workflow_engine",
        specs=[
            dg.AssetSpec(
                key,
                deps=[*same_tick, previous_tick] if key == "enrollments" else same_tick,
                group_name="engine",
                kinds={"duckdb", "polars"},
                description=descriptions[key],
            )
            for key in ENGINE
        ],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=False,
    )
    def workflow_engine(
        context: dg.AssetExecutionContext, config: EngineConfig, cswf: CswfProject,
        warehouse: DuckDBResource, audience: Audience, tick_observer: TickObserver,
    ) -> Iterator[dg.MaterializeResult]:
        settings = cswf.settings()
        ticks = _ticks(context)
        last_key = key_of(ticks[-1])
        workflows = project.load_workflows(settings)
        tally = _TickTally(context, len(ticks), tick_observer)
        with open_warehouse(warehouse) as con:
            summary = project.run_ticks(con, settings, workflows, ticks, on_tick=tally,
                                         respond=audience.responder(),
                                         rewrite_delivered=config.rewrite_delivered)
            tables = {asset: table_metadata(con, asset, settings.sql_path) for asset in ENGINE}
            previews = {
                "enrollments": preview(con, "SELECT * FROM enrollments WHERE updated_at = ? "
                                            "ORDER BY enrollment_id", [ticks[-1]]),
                "transitions": preview(con, "SELECT * FROM transitions WHERE tick = ? "
                                            "ORDER BY enrollment_id", [ticks[-1]]),
                "actions_outbox": preview(con, "SELECT * FROM actions_outbox WHERE tick = ? "
                                               "ORDER BY action_id", [ticks[-1]],
                                          drop=("body", "payload")),
            }
        for key, numbers in tally.per_tick.items():
            for asset in ENGINE:
                context.add_asset_metadata(numbers[asset], asset_key=asset, partition_key=key)
        run = {
            **_run_span(ticks),
            "run_written": summary.written,
            "run_unchanged": summary.unchanged,
            "run_rewritten": summary.rewritten,
            "run_rewound_ticks": tally.rewound,
            "spec_versions": dg.MetadataValue.json({w.name: w.version for w in workflows}),
            "held_tick": key_of(summary.held) if summary.held else "none",
        }
        if summary.held:  # the check tick_not_held fails with the whole line
            context.log.warning(f"tick {key_of(summary.held)} is held by a guard; the run "
                                "stopped after it (docs/safety.md)")
        last = tally.last
        if last is None:  # run_ticks runs every tick of a non-empty range
            raise RuntimeError(f"no tick ran for partitions {context.partition_keys}")
        active = last.state.filter(pl.col("status") == "active")
        by_workflow = dict(Counter(active["workflow"].to_list()))
        extra = {
            "enrollments": {
                "active_by_workflow": dg.MetadataValue.json(by_workflow),
                "run_changed_enrollments": tally.changed,
            },
            "transitions": {
                "run_transitions": summary.transitions,
                "run_by_type": dg.MetadataValue.json(dict(tally.transition_types)),
            },
            "actions_outbox": {
                "run_actions": summary.actions,
                "run_by_type": dg.MetadataValue.json(dict(tally.action_types)),
            },
        }
        for asset in ENGINE:
            context.add_asset_metadata(
                {**tables[asset], **run, **extra[asset],
                 f"preview (tick {last_key})": previews[asset]},
                asset_key=asset, partition_key=last_key,
            )
            yield dg.MaterializeResult(asset_key=asset)

    if shards > 1:
        return [account_facts, build_sharded_engine(partitions, shards, descriptions)]
    return [account_facts, workflow_engine]


def _run_span(ticks: list[datetime]) -> dict[str, Any]:
    return {"run_ticks": len(ticks), "first_tick": key_of(ticks[0]), "last_tick": key_of(ticks[-1])}


class _TickTally:
    """The `on_tick` callback: logs each tick (debug; every 50th at info), keeps each tick's
    numbers for its partition's metadata and run totals, and tells the `tick_observer`."""

    def __init__(
        self, context: dg.AssetExecutionContext, total: int, observer: TickObserver
    ) -> None:
        self.context, self.total, self.observer = context, total, observer
        self.changed = self.rewound = 0
        self.transition_types: Counter[str] = Counter()
        self.action_types: Counter[str] = Counter()
        self.per_tick: dict[str, dict[str, dict[str, Any]]] = {}
        self.last: TickResult | None = None

    def __call__(self, outcome: WriteOutcome, result: TickResult) -> None:
        key = key_of(outcome.as_of)
        changed = result.changed_state.height
        active = result.state.filter(pl.col("status") == "active").height
        self.changed += changed
        self.rewound += outcome.rewound_ticks
        self.transition_types.update(result.transitions["transition"].to_list())
        self.action_types.update(result.actions["action_type"].to_list())
        self.last = result
        status = {"tick_status": outcome.status}
        self.per_tick[key] = {  # dagster/row_count: the table's rows of this tick
            "enrollments": {
                **status,
                "dagster/row_count": result.state.height,
                "participants": result.participants,
                "active_enrollments": active,
                "changed_enrollments": changed,
            },
            "transitions": {**status, "dagster/row_count": result.transitions.height},
            "actions_outbox": {**status, "dagster/row_count": result.actions.height},
        }
        line = (
            f"tick {key} {outcome.status}: {result.participants} participants, "
            f"{active} active, {changed} enrollments changed, "
            f"{result.transitions.height} transitions, {result.actions.height} actions"
        )
        done = len(self.per_tick)
        if done % INFO_EVERY == 0 or done == self.total:
            self.context.log.info(f"{done}/{self.total} ticks: {line}")
        self.observer(outcome, result)


# -- reports ---------------------------------------------------------------------------------


def build_report_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """One asset per report file in sql/reports/ (workflow_summary, workflow_dashboard, ...)."""
    files = {path.stem: path for path in report_files(settings.sql_path)}
    if not files:
        return []

    @dg.multi_asset(
        name="reports",
        specs=[
            dg.AssetSpec(
                name,
                deps=list(ENGINE),
                group_name="reports",
                kinds={"duckdb", "sql"},
                description=model_description(settings.sql_path, name)
                or f"Report table built from sql/reports/{name}.sql, for BI tools.",
            )
            for name in files
        ],
        can_subset=False,
    )
    def reports(
        context: dg.AssetExecutionContext, cswf: CswfProject, warehouse: DuckDBResource
    ) -> Iterator[dg.MaterializeResult]:
        settings = cswf.settings()
        with open_warehouse(warehouse) as con:
            refreshed = project.refresh_reports(con, settings)  # built, then the BI copy
            counts = refreshed.rows
            missing = sorted(set(files) - set(counts))
            if missing:
                raise RuntimeError(f"reports {missing} were not built (sql/reports changed?)")
            metadata = {
                name: {**table_metadata(con, name, settings.sql_path),
                       "dagster/row_count": counts[name],
                       "preview": preview(con, f"SELECT * FROM {name}"),
                       **trend_numbers(con, name)}
                for name in files
            }
        context.log.info(f"reports: {counts}")
        context.log.info(refreshed.publication.summary())
        for name in files:
            yield dg.MaterializeResult(asset_key=name, metadata=metadata[name])

    return [reports]


# Numbers per materialization (one per tick run) that the asset's Plots tab draws as trends.
TRENDS = {
    "workflow_summary": "SELECT sum(active) AS active, sum(deployed) AS entered, "
                        "sum(completed) AS completed, sum(exited) AS exited FROM workflow_summary",
    "workflow_daily": "SELECT sum(actions) AS actions, sum(failed_deliveries) AS failed_deliveries "
                      "FROM workflow_daily",
    "milestone_history": "SELECT count(*) FILTER (WHERE status = 'overdue') AS overdue, "
                         "count(*) FILTER (WHERE status IN ('ahead', 'on_time')) "
                         "AS on_time_or_ahead FROM milestone_history",
}


def trend_numbers(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, dg.MetadataValue]:
    """A report's plottable totals (`dagster/row_count` aside), as of the run's last tick."""
    if name not in TRENDS:
        return {}
    row = con.sql(TRENDS[name]).pl().row(0, named=True)
    return {key: dg.MetadataValue.int(int(value or 0)) for key, value in row.items()}


def build_assets(
    settings: Settings, partitions: dg.TimeWindowPartitionsDefinition
) -> list[dg.AssetsDefinition]:
    return [landing_snapshots, *build_tick_assets(partitions, settings.shards),
            *build_report_assets(settings)]
