"""Asset checks: on the landed snapshots, the facts, the outbox and the reports.

Each check runs a query (`ingest/checks.py` for the snapshots, `defs/quality.py` for the rest)
and reports what it found. Blocking checks stop everything downstream in their run when they
fail: the landing and facts checks stop the engine (no tick is evaluated from bad data), the
outbox checks stop delivery (the delivery job runs them before it sends anything).

Checks on the tick-partitioned assets are not partitioned themselves: partitioned checks are a
preview in Dagster 1.13 and record no partition in a run over a range of ticks. They run once per
run, after their asset, and check exactly the ticks of that run (`context.partition_keys`); in a
run without ticks (the delivery job, or a check launched alone) they check the whole table.
"""

from datetime import date, datetime

import dagster as dg
from dagster_duckdb import DuckDBResource

from cswf import project
from cswf.calendar import as_of_of, key_of
from cswf.defs import quality
from cswf.defs.resources import CswfProject, open_warehouse
from cswf.ingest.checks import (
    REJECTED_TODO,
    Finding,
    account_rows,
    all_duplicates,
    duplicate_findings,
    duplicate_sentences,
    flagged_rows,
    incomplete_snapshots,
    rejected_files,
    stale_snapshots,
)
from cswf.project.guards import held_line, open_hold, reasons
from cswf.reports.build import report_files
from cswf.settings import Settings

LANDING = dg.AssetKey("landing_snapshots")
FACTS = dg.AssetKey("account_facts")
OUTBOX = dg.AssetKey("actions_outbox")
ENROLLMENTS = dg.AssetKey("enrollments")
SUMMARY = dg.AssetKey("workflow_summary")
# The run tags that name a run's tick (one) or last tick (a range): Dagster's own names.
PARTITION_TAG = "dagster/partition"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def _result(
    finding: Finding, what: str, ticks: list[datetime] | None = None
) -> dg.AssetCheckResult:
    listed = "\n".join(f"- {example}" for example in finding.examples)
    scope = {}
    if ticks is not None:
        scope = {"ticks_checked": len(ticks), "first_tick": key_of(ticks[0]),
                 "last_tick": key_of(ticks[-1])}
    return dg.AssetCheckResult(
        passed=finding.count == 0,
        description=f"{finding.count} {what}" if finding.count else f"no {what}",
        metadata={
            "offending": finding.count,
            "examples": dg.MetadataValue.md(listed or "none"),
            "scope": "the run's ticks" if ticks is not None else "the whole table",
            **scope,
        },
    )


def ticks_of_run(context: dg.AssetCheckExecutionContext) -> list[datetime] | None:
    """The ticks the run computed (one, or a range); None for a run without partitions."""
    op = context.op_execution_context
    if not (op.has_partition_key or op.has_partition_key_range):
        return None
    return sorted(as_of_of(key) for key in op.partition_keys)


# -- landing ---------------------------------------------------------------------------------


def last_day_of_run(context: dg.AssetCheckExecutionContext) -> date | None:
    """The day of the run's last tick, from the run's partition tags (the landing asset is not
    partitioned itself); None for a run without ticks (then the whole table is checked)."""
    tags = context.run.tags
    key = tags.get(RANGE_END_TAG) or tags.get(PARTITION_TAG)
    return as_of_of(key).date() if key else None


@dg.asset_check(
    asset=LANDING,
    blocking=True,
    description="No duplicate (snapshot_date, account_id), (usage_date, account_id), ... keys "
    "dated on or before the run's last tick (a tick never sees later snapshots).",
)
def unique_ids(context: dg.AssetCheckExecutionContext,
               warehouse: DuckDBResource) -> dg.AssetCheckResult:
    until = last_day_of_run(context)
    with open_warehouse(warehouse) as con:
        found = duplicate_findings(con, until)
    result = _result(all_duplicates(found), "duplicate keys")
    problems = duplicate_sentences(found)
    return dg.AssetCheckResult(  # what the CLI prints: the keys, their files, what to do
        passed=result.passed, description="; ".join(problems) or result.description,
        metadata={**result.metadata, "scope": _scope(until)})


@dg.asset_check(
    asset=LANDING,
    blocking=True,
    description="No landing file was rejected (missing required column, bad value, unreadable).",
)
def required_columns(warehouse: DuckDBResource) -> dg.AssetCheckResult:
    with open_warehouse(warehouse) as con:
        found = rejected_files(con)
    result = _result(found, "rejected landing files")
    if result.passed:
        return result
    return dg.AssetCheckResult(  # what the CLI prints: the files, why, what to do
        passed=False, metadata=result.metadata,
        description=f"{result.description}: {'; '.join(found.examples)}: {REJECTED_TODO}")


@dg.asset_check(
    asset=LANDING,
    blocking=False,
    description="No landing row was flagged (a value outside its column's allowed values, an "
                "extra field that does not convert); flagged rows are loaded, ticks go on.",
)
def no_flagged_rows(warehouse: DuckDBResource) -> dg.AssetCheckResult:
    with open_warehouse(warehouse) as con:
        found = flagged_rows(con)
    result = _result(found, "flagged landing rows")
    return dg.AssetCheckResult(passed=result.passed, description=result.description,
                               metadata=result.metadata, severity=dg.AssetCheckSeverity.WARN)


def _scope(until: date | None) -> str:
    return f"snapshots dated on or before {until} (the run's last tick)" if until else \
        "the whole table"


def _problems(problems: list[str], passed: str) -> dg.AssetCheckResult:
    """A check of sentences: its description is them, one line (what the CLI prints)."""
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) if problems else passed,
        metadata={"problems": len(problems),
                  "examples": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems)
                                                  or "none")},
    )


@dg.asset_check(
    asset=LANDING,
    blocking=True,
    description="The account snapshots are whole: some rows, no header-only file, no day losing "
    "more than snapshots.max_drop of the day before's rows, no day missing between the first and "
    "the last (days in snapshots.accept pass).",
)
def snapshots_complete(context: dg.AssetCheckExecutionContext, cswf: CswfProject,
                       warehouse: DuckDBResource) -> dg.AssetCheckResult:
    until = last_day_of_run(context)
    with open_warehouse(warehouse) as con:
        rows = account_rows(con)
        empty = [] if rows else ["raw_accounts is empty: no account snapshot has been ingested"]
        problems = empty + incomplete_snapshots(con, cswf.settings().snapshots, until)
    return _problems(problems, f"{rows} account snapshot rows, every day whole")


LANDING_CHECKS = [unique_ids, required_columns, snapshots_complete, no_flagged_rows]


# -- facts and outbox (tick-partitioned assets) ----------------------------------------------


@dg.asset_check(
    asset=FACTS,
    blocking=True,
    description="One row per participant and tick, for the ticks of the run: a second row would "
    "make the engine evaluate a participant twice.",
)
def one_row_per_participant_and_tick(
    context: dg.AssetCheckExecutionContext, warehouse: DuckDBResource
) -> dg.AssetCheckResult:
    ticks = ticks_of_run(context)
    with open_warehouse(warehouse) as con:
        return _result(quality.duplicate_facts(con, ticks), "duplicate (tick, participant) rows",
                       ticks)


@dg.asset_check(
    asset=FACTS,
    blocking=True,
    description="At each tick of the run, the newest account snapshot is at most "
    "snapshots.max_age_days old (a tick's day in snapshots.accept passes).",
)
def snapshots_fresh(
    context: dg.AssetCheckExecutionContext, cswf: CswfProject, warehouse: DuckDBResource
) -> dg.AssetCheckResult:
    ticks = ticks_of_run(context)
    if ticks is None:
        return dg.AssetCheckResult(passed=True, description="no ticks in this run to check")
    with open_warehouse(warehouse) as con:
        problems = stale_snapshots(con, ticks, cswf.settings().snapshots)
    return _problems(problems, f"fresh at each of {len(ticks)} tick(s)")


@dg.asset_check(
    asset=ENROLLMENTS,
    blocking=True,
    description="No tick is held by a guard (docs/safety.md): the run's reports do not go on "
    "from a held tick, and delivery sends nothing of it (nor of later ticks) until `cswf "
    "approve`. On the tick's state rather than the outbox, so the delivery job still sends "
    "what earlier ticks emitted.",
)
def tick_not_held(warehouse: DuckDBResource) -> dg.AssetCheckResult:
    with open_warehouse(warehouse) as con:
        found = open_hold(con)
    if found is None:
        return dg.AssetCheckResult(passed=True, description="no tick is held")
    as_of, rows = found
    return dg.AssetCheckResult(
        passed=False, description=held_line(as_of, rows),
        metadata={"tick": key_of(as_of), "holds": dg.MetadataValue.md(
            "\n".join(f"- {line}" for line in reasons(rows))),
            "samples": dg.MetadataValue.json({f"{w}/{g}": s for w, g, s in
                                              rows.select("workflow", "guard", "sample").rows()})},
    )


@dg.asset_check(
    asset=OUTBOX,
    blocking=True,
    description="Every action_id the run emitted is in the outbox once: delivery sends each "
    "action_id exactly once, so a duplicate hides an action. Blocks delivery.",
)
def unique_action_ids(
    context: dg.AssetCheckExecutionContext, warehouse: DuckDBResource
) -> dg.AssetCheckResult:
    ticks = ticks_of_run(context)
    with open_warehouse(warehouse) as con:
        return _result(quality.duplicate_action_ids(con, ticks), "duplicate action ids", ticks)


@dg.asset_check(
    asset=OUTBOX,
    blocking=True,
    description="At most one active enrollment per workflow and participant after each tick of "
    "the run (now, when run without ticks): the outbox's actions come from a consistent state. "
    "Blocks delivery.",
)
def one_active_enrollment(
    context: dg.AssetCheckExecutionContext, warehouse: DuckDBResource
) -> dg.AssetCheckResult:
    ticks = ticks_of_run(context)
    with open_warehouse(warehouse) as con:
        finding = quality.multiple_active_enrollments(con, ticks)
    return _result(finding, "(workflow, participant) pairs with several active enrollments", ticks)


TICK_CHECKS = [one_row_per_participant_and_tick, snapshots_fresh, tick_not_held,
               unique_action_ids, one_active_enrollment]
OUTBOX_CHECKS = [unique_action_ids, one_active_enrollment]


# -- reports ---------------------------------------------------------------------------------


@dg.asset_check(
    asset=SUMMARY,
    description="Counts are not negative, the objective rate is within [0, 1], and active + "
    "completed + exited = deployed.",
)
def summary_counts_add_up(warehouse: DuckDBResource) -> dg.AssetCheckResult:
    with open_warehouse(warehouse) as con:
        return _result(quality.bad_summary_counts(con), "workflow rows with impossible counts")


@dg.asset_check(
    asset=SUMMARY,
    description="Every workflow with a spec has a summary row (a new spec gets one at its "
    "first tick).",
)
def every_workflow_summarized(
    cswf: CswfProject, warehouse: DuckDBResource
) -> dg.AssetCheckResult:
    names = project.workflow_names(cswf.settings())
    with open_warehouse(warehouse) as con:
        finding = quality.workflows_missing_from_summary(con, names)
    return _result(finding, "workflows without a summary row")


def build_report_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    """The report checks whose report exists in this project's sql/reports/."""
    reports = {path.stem for path in report_files(settings.sql_path)}
    return [summary_counts_add_up, every_workflow_summarized] if SUMMARY.path[-1] in reports \
        else []
