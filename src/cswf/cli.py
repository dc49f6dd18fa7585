"""`cswf`: validate specs, run ticks, preview matches, run the demo."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
import yaml
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cswf import project
from cswf.engine.tick import TickResult
from cswf.reports.build import build_reports
from cswf.settings import Settings, load_settings
from cswf.specs.conditions import Condition
from cswf.specs.schema import write_json_schema
from cswf.store.warehouse import WriteOutcome, connect

app = typer.Typer(help="cswf: customer-success workflows in your own warehouse.",
                  no_args_is_help=True, add_completion=False)
# Reports are tables: at least 120 columns wide, so logs and narrow terminals show whole names.
console = Console(width=max(shutil.get_terminal_size().columns, 120))
err = Console(stderr=True)

TIME_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d-%H:%M"]
AsOf = Annotated[datetime, typer.Option("--as-of", formats=TIME_FORMATS,
                                        help="The tick's logical time (UTC).")]
Root = Annotated[Path | None, typer.Option("--root", help="Project folder (has cswf.yaml).")]


def _settings(root: Path | None) -> Settings:
    return load_settings(root)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


@app.command()
def validate(root: Root = None) -> None:
    """Check every workflow spec; print each problem as `file: path.to.field: message`."""
    settings = _settings(root)
    result = project.check_specs(settings)
    for error in result.errors:  # plain lines, never wrapped: editors and CI parse them
        typer.echo(str(error))
    if result.errors:
        typer.echo(f"{len(result.errors)} problem(s) in {settings.specs_path}", err=True)
        raise typer.Exit(1)
    for workflow in result.workflows:
        spec = workflow.spec
        typer.echo(f"ok  {workflow.file.name}: {spec.name} ({spec.state}, "
                   f"{len(spec.steps)} steps, version {workflow.version})")


@app.command()
def schema(
    out: Annotated[Path, typer.Option(help="Where to write the JSON Schema.")] = Path(
        "docs/workflow-spec.schema.json"
    ),
) -> None:
    """Export the JSON Schema of workflow specs, for editors."""
    write_json_schema(out)
    console.print(f"wrote {out}")


@app.command()
def ingest(root: Root = None) -> None:
    """Load new or changed snapshot files from the landing folder."""
    settings = _settings(root)
    known = project.workflow_names(settings)
    with connect(settings.database_path) as con:  # deploy requests arrive now
        report = project.ingest(con, settings, datetime.now(UTC).replace(tzinfo=None), known)
    for line in report.lines():
        console.print(line, markup=False, soft_wrap=True)


def _run(settings: Settings, ticks: list[datetime], *, progress: bool) -> None:
    workflows = project.load_workflows(settings)
    with connect(settings.database_path) as con:  # requests count as arriving by the last tick
        project.ingest(con, settings, ticks[-1], [w.name for w in workflows])
        started = time.perf_counter()
        facts = project.materialize_facts(con, settings, ticks)
        with Progress(
            TextColumn("[bold]ticks"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.description}"), console=console, disable=not progress,
        ) as bar:
            task = bar.add_task("", total=len(ticks))

            def advance(outcome: WriteOutcome, result: TickResult) -> None:
                bar.update(task, advance=1, description=f"{outcome.as_of:%Y-%m-%d %H:%M} "
                           f"{result.actions.height} actions ({outcome.status})")

            summary = project.run_ticks(con, settings, workflows, ticks, facts=facts,
                                         on_tick=advance)
        build_reports(con, settings.sql_path)
        elapsed = time.perf_counter() - started
        console.print(
            f"{summary.ticks} ticks in {elapsed:.1f}s: {summary.written} written, "
            f"{summary.unchanged} unchanged, {summary.rewritten} rewritten; "
            f"{summary.actions} actions, {summary.transitions} transitions"
        )
        _print_summary(con)


@app.command()
def tick(as_of: AsOf, root: Root = None) -> None:
    """Run one tick: ingest, facts, evaluate, advance, store, reports."""
    settings = _settings(root)
    if project.ticks_in(settings, as_of, as_of) != [as_of]:
        raise _fail(f"{as_of} is not a tick of the schedule '{settings.tick_cron}'")
    _guarded(lambda: _run(settings, [as_of], progress=False))


@app.command()
def run(
    start: Annotated[datetime, typer.Option(formats=TIME_FORMATS, help="First tick (UTC).")],
    end: Annotated[datetime, typer.Option(formats=TIME_FORMATS, help="Last tick (UTC).")],
    root: Root = None,
) -> None:
    """Run every tick from start to end, in order, with a progress bar."""
    settings = _settings(root)
    ticks = project.ticks_in(settings, start, end)
    if not ticks:
        raise _fail(f"no ticks of '{settings.tick_cron}' between {start} and {end}")
    _guarded(lambda: _run(settings, ticks, progress=True))


def _guarded(action: object) -> None:
    try:
        action()  # type: ignore[operator]
    except (project.BlockedTick, project.SpecErrors, LookupError) as exc:
        raise _fail(str(exc)) from exc


@app.command()
def preview(
    workflow: Annotated[str, typer.Argument(help="Workflow name.")],
    as_of: AsOf,
    sample: Annotated[int, typer.Option(help="How many matches to show.")] = 10,
    root: Root = None,
) -> None:
    """How many participants meet the entry conditions at as_of, with a sample (any state)."""
    settings = _settings(root)
    try:
        workflows = {w.name: w for w in project.load_workflows(settings)}
    except project.SpecErrors as exc:
        raise _fail(str(exc)) from exc
    if workflow not in workflows:
        raise _fail(f"no workflow '{workflow}'; workflows: {', '.join(sorted(workflows))}")
    with connect(settings.database_path) as con:
        project.ingest(con, settings)
        result = project.preview(con, settings, workflows[workflow], as_of, sample)
    console.print(f"[bold]{workflow}[/bold] as of {as_of:%Y-%m-%d %H:%M}: "
                  f"{result.matching} of {result.participants} participants meet the entry "
                  f"conditions; {result.already_inside} already inside, "
                  f"{result.would_enter} would enter at this tick if enabled.", soft_wrap=True)
    _print_frame(result.sample, title="sample of matches")


@app.command()
def deliver(
    now: Annotated[datetime | None, typer.Option(
        formats=TIME_FORMATS, help="Deliver as of this time (UTC); default: now.")] = None,
    root: Root = None,
) -> None:
    """Send what the outbox holds, once (dry run unless cswf.yaml's delivery section says so)."""
    settings = _settings(root)
    moment = now or datetime.now(UTC).replace(tzinfo=None)
    with connect(settings.database_path) as con:
        report = project.deliver_outbox(con, settings, moment)
    console.print(f"delivery as of {moment:%Y-%m-%d %H:%M}: {report.summary()}", soft_wrap=True)


@app.command()
def deploy(
    workflow: Annotated[str, typer.Argument(help="Workflow name.")],
    participants: Annotated[str, typer.Option(
        help="Comma-separated participant ids.")] = "",
    where: Annotated[str, typer.Option(
        help="A condition in YAML, e.g. '{field: tier, op: eq, value: enterprise}': every "
             "participant matching it at the last tick.")] = "",
    by: Annotated[str, typer.Option(help="Who asks (recorded with the request).")] = "cli",
    at: Annotated[datetime | None, typer.Option(
        formats=TIME_FORMATS, help="When the request is made (UTC); default: now.")] = None,
    root: Root = None,
) -> None:
    """Deploy a workflow by hand; the next tick enters each participant or records why not."""
    settings = _settings(root)
    workflows = {w.name: w for w in project.load_workflows(settings)}
    if workflow not in workflows:
        raise _fail(f"no workflow '{workflow}'; workflows: {', '.join(sorted(workflows))}")
    if not participants and not where:
        raise _fail("give --participants or --where")
    try:
        condition = TypeAdapter(Condition).validate_python(yaml.safe_load(where)) \
            if where else None
    except ValidationError as exc:
        raise _fail(f"--where: {exc.errors()[0]['msg']}") from exc
    moment = at or datetime.now(UTC).replace(tzinfo=None)
    chosen = [p.strip() for p in participants.split(",") if p.strip()]
    with connect(settings.database_path) as con:
        try:
            count, stored = project.deploy(con, settings, workflows[workflow], by, moment,
                                            chosen, condition)
        except ValueError as exc:
            raise _fail(str(exc)) from exc
    console.print(f"{stored} deploy request(s) for {count} participant(s) of {workflow}, "
                  f"made {moment:%Y-%m-%d %H:%M} by {by}; the next tick honours or refuses them "
                  "(see transitions: entered / deploy_refused).", soft_wrap=True)


@app.command()
def reports(root: Root = None) -> None:
    """Rebuild the report tables and print the workflow summary."""
    settings = _settings(root)
    with connect(settings.database_path) as con:
        counts = build_reports(con, settings.sql_path)
        console.print(json.dumps(counts))
        _print_summary(con)


@app.command()
def demo(
    accounts: Annotated[int, typer.Option(help="Accounts in the simulated book.")] = 2000,
    days: Annotated[int, typer.Option(
        min=32, help="Days of snapshots from 2026-05-01; ticks run from tick_start (day 31) "
                     "to the last day.")] = 120,
    fresh: Annotated[bool, typer.Option(help="Regenerate data and start over.")] = False,
    root: Root = None,
) -> None:
    """Simulate a quarter: generate a book of business, run all its ticks through Dagster,
    delivering along the way; a progress bar, then the summary."""
    from cswf.demo.run import run_demo

    run_demo(_settings(root), accounts=accounts, days=days, fresh=fresh, console=console)


def _print_summary(con: object) -> None:
    frame = con.sql(  # type: ignore[attr-defined]
        "SELECT workflow, category, auto_deploy AS auto, deployed, active, completed, exited, "
        "avg_days_to_complete AS avg_days, objective_met_rate AS objective_rate "
        "FROM workflow_summary"
    ).pl()
    _print_frame(frame, title="workflow_summary")


def _print_frame(frame: pl.DataFrame, title: str) -> None:
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(column)
    for row in frame.iter_rows():
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


if __name__ == "__main__":
    app()
