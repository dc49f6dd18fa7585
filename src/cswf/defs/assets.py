"""The assets: ingest → facts → engine → reports. Each body opens DuckDB, calls one function of
`cswf.project` / `reports.build`, and reports what it did as metadata; no workflow
logic lives here.

Tick assets are partitioned by the tick calendar (`ticks.tick_partitions`) with a single-run
backfill policy, so a range of partitions (a backfill, or `launch.run_tick_range`) is one run that
computes all its facts in one SQL query and runs the ticks in order.
"""

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from cswf import project
from cswf.calendar import as_of_of, key_of
from cswf.defs.resources import Audience, CswfProject, open_warehouse
from cswf.engine.tick import TickResult
from cswf.reports.build import build_reports, report_files
from cswf.settings import Settings
from cswf.store.warehouse import WriteOutcome

LANDING = "landing_snapshots"
FACTS = "account_facts"
ENGINE = ("enrollments", "transitions", "actions_outbox")
PREVIEW_ROWS = 10
INFO_EVERY = 50


# -- metadata helpers ------------------------------------------------------------------------


def _cell(value: Any, width: int) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:.6g}" if abs(value) < 1e6 else f"{value:.0f}"
    elif isinstance(value, datetime):
        text = value.isoformat(sep=" ", timespec="minutes")
    elif isinstance(value, date):
        text = value.isoformat()
    else:
        text = str(value)
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def markdown_table(frame: pl.DataFrame, limit: int = PREVIEW_ROWS, width: int = 40) -> str:
    """A GitHub-flavoured markdown table of the first `limit` rows (no pandas needed)."""
    if not frame.columns:
        return "_no columns_"
    head = frame.head(limit)
    lines = [
        "| " + " | ".join(_cell(c, width) for c in head.columns) + " |",
        "|" + "---|" * len(head.columns),
    ]
    lines += ["| " + " | ".join(_cell(v, width) for v in row) + " |" for row in head.iter_rows()]
    if frame.height > limit:
        lines.append(f"\n_{limit} of {frame.height} rows_")
    elif not frame.height:
        lines.append("\n_no rows_")
    return "\n".join(lines)


def _bullets(items: list[str], limit: int = 20) -> dg.MetadataValue:
    shown = [f"- {item}" for item in items[:limit]]
    if len(items) > limit:
        shown.append(f"- … and {len(items) - limit} more")
    return dg.MetadataValue.md("\n".join(shown) or "none")


def _column_schema(frame: pl.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()]
    )


def _ticks(context: dg.AssetExecutionContext) -> list[datetime]:
    return sorted(as_of_of(key) for key in context.partition_keys)


# -- ingest ----------------------------------------------------------------------------------


@dg.asset(
    name=LANDING,
    group_name="ingest",
    kinds={"duckdb", "polars"},
    description=(
        "Daily snapshot files from the landing folder, loaded into raw_accounts / raw_usage. "
        "New and changed files load whole or are rejected with a reason (ingest_rejections); "
        "unchanged files are skipped."
    ),
)
def landing_snapshots(
    context: dg.AssetExecutionContext, cswf: CswfProject, warehouse: DuckDBResource
) -> dg.MaterializeResult:
    settings = cswf.settings()
    known = project.workflow_names(settings)
    with open_warehouse(warehouse) as con:  # deploy requests without a time arrive now
        report = project.ingest(con, settings, datetime.now(UTC).replace(tzinfo=None), known)
    snapshots = report.snapshots
    rejected_files = sorted({name for name, _ in report.rejected})
    for line in report.lines():
        (context.log.warning if line.startswith("rejected") else context.log.info)(line)
    return dg.MaterializeResult(
        metadata={
            "landing_dir": dg.MetadataValue.path(str(settings.landing_path)),
            "files_loaded": len(snapshots.files_loaded),
            "files_skipped": len(snapshots.files_skipped_unchanged),
            "files_rejected": len(rejected_files),
            "events_inserted": report.events.inserted,
            "deploy_requests_stored": report.deploys.requests_stored,
            **{f"rows_{name}": rows for name, rows in snapshots.rows_loaded.items()},
            "loaded": _bullets(snapshots.files_loaded),
            "rejections": _bullets([reason for _, reason in report.rejected]),
        }
    )


# -- facts and engine (partitioned by tick) --------------------------------------------------


def build_tick_assets(
    partitions: dg.TimeWindowPartitionsDefinition,
) -> list[dg.AssetsDefinition]:
    """account_facts and the engine's multi-asset, partitioned by tick.

    A run over many ticks records one materialization per tick and asset: each gets that tick's
    own numbers; run totals, previews and schemas go on the run's last tick only, to keep a
    720-tick run's event log small.
    """

    @dg.asset(
        name=FACTS,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[LANDING],
        group_name="facts",
        kinds={"duckdb", "sql", "polars"},
        description=(
            "One row per tick and account: the latest snapshot as of the tick plus the features "
            "defined in sql/facts/. All ticks of a run are computed in one SQL query."
        ),
    )
    def account_facts(
        context: dg.AssetExecutionContext, cswf: CswfProject, warehouse: DuckDBResource
    ) -> dg.MaterializeResult:
        settings = cswf.settings()
        ticks = _ticks(context)
        with open_warehouse(warehouse) as con:
            stored = project.store_facts(con, settings, ticks)
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
        latest = stored.latest
        context.add_asset_metadata(
            {
                "dagster/column_schema": _column_schema(latest),
                "run_rows": stored.rows,
                **_run_span(ticks),
                "preview": dg.MetadataValue.md(
                    f"Tick {key_of(ticks[-1])}:\n\n{markdown_table(latest)}"
                ),
            },
            partition_key=key_of(ticks[-1]),
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
        context: dg.AssetExecutionContext, cswf: CswfProject, warehouse: DuckDBResource,
        audience: Audience,
    ) -> Iterator[dg.MaterializeResult]:
        settings = cswf.settings()
        ticks = _ticks(context)
        workflows = project.load_workflows(settings)
        tally = _TickTally(context, len(ticks))
        with open_warehouse(warehouse) as con:
            summary = project.run_ticks(con, settings, workflows, ticks, on_tick=tally,
                                         respond=audience.responder())
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
        }
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
                "preview": dg.MetadataValue.md(
                    f"Tick {key_of(ticks[-1])}:\n\n{markdown_table(last.transitions)}"
                ),
            },
            "actions_outbox": {
                "run_actions": summary.actions,
                "run_by_type": dg.MetadataValue.json(dict(tally.action_types)),
                "preview": dg.MetadataValue.md(
                    f"Tick {key_of(ticks[-1])}:\n\n"
                    f"{markdown_table(last.actions.drop('body', 'payload', strict=False))}"
                ),
            },
        }
        for asset in ENGINE:
            context.add_asset_metadata(
                {**run, **extra[asset]}, asset_key=asset, partition_key=key_of(ticks[-1])
            )
            yield dg.MaterializeResult(asset_key=asset)

    return [account_facts, workflow_engine]


def _run_span(ticks: list[datetime]) -> dict[str, Any]:
    return {"run_ticks": len(ticks), "first_tick": key_of(ticks[0]), "last_tick": key_of(ticks[-1])}


class _TickTally:
    """The `on_tick` callback: logs each tick (debug; every 50th at info), keeps each tick's
    numbers for its partition's metadata, and run totals."""

    def __init__(self, context: dg.AssetExecutionContext, total: int) -> None:
        self.context, self.total = context, total
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
        self.per_tick[key] = {
            "enrollments": {
                **status,
                "participants": result.participants,
                "active_enrollments": active,
                "changed_enrollments": changed,
            },
            "transitions": {**status, "transitions": result.transitions.height},
            "actions_outbox": {**status, "actions_emitted": result.actions.height},
        }
        line = (
            f"tick {key} {outcome.status}: {result.participants} participants, "
            f"{active} active, {changed} enrollments changed, "
            f"{result.transitions.height} transitions, {result.actions.height} actions"
        )
        self.context.log.debug(line)
        done = len(self.per_tick)
        if done % INFO_EVERY == 0 or done == self.total:
            self.context.log.info(f"{done}/{self.total} ticks: {line}")


# -- reports ---------------------------------------------------------------------------------


def build_report_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """One asset per report file in sql/reports/ (workflow_summary, workflow_dashboard, ...)."""
    names = [path.stem for path in report_files(settings.sql_path)]
    if not names:
        return []

    @dg.multi_asset(
        name="reports",
        specs=[
            dg.AssetSpec(
                name,
                deps=list(ENGINE),
                group_name="reports",
                kinds={"duckdb", "sql"},
                description=f"Report table built from sql/reports/{name}.sql, for BI tools.",
            )
            for name in names
        ],
        can_subset=False,
    )
    def reports(
        context: dg.AssetExecutionContext, cswf: CswfProject, warehouse: DuckDBResource
    ) -> Iterator[dg.MaterializeResult]:
        settings = cswf.settings()
        with open_warehouse(warehouse) as con:
            counts = build_reports(con, settings.sql_path)
            previews = {
                name: con.sql(f"SELECT * FROM {name} LIMIT {PREVIEW_ROWS}").pl()
                for name in names
                if name in counts
            }
        context.log.info(f"reports: {counts}")
        for name in names:
            if name not in counts:
                raise RuntimeError(f"report {name} was not built (sql/reports changed?)")
            yield dg.MaterializeResult(
                asset_key=name,
                metadata={
                    "dagster/row_count": counts[name],
                    "preview": dg.MetadataValue.md(markdown_table(previews[name])),
                },
            )

    return [reports]


def build_assets(
    settings: Settings, partitions: dg.TimeWindowPartitionsDefinition
) -> list[dg.AssetsDefinition]:
    return [landing_snapshots, *build_tick_assets(partitions), *build_report_assets(settings)]
