"""`cswf`: start a project, validate specs, run ticks, preview matches, deploy, deliver, report.

Every command runs in one typer group (`clitools.errors.OneLineErrors`): a time option reads
times one way, and whatever goes wrong is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections import Counter
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import duckdb
import polars as pl
import typer
import yaml
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cswf import project
from cswf.clitools.config import no_ticks, project_settings, require_landing, shown
from cswf.clitools.errors import OUT_OF_MEMORY, CliError, OneLineErrors, did_you_mean, one_line
from cswf.engine.failures import EvaluationFailed
from cswf.engine.tick import TickResult
from cswf.facts.models import FACT_MODELS, fact_schema
from cswf.ingest.checks import existing_tables
from cswf.project.guards import held_line, open_hold, reasons, tick_text
from cswf.reports.reader import BICopy, NoCopy
from cswf.scaffold import SCHEMA_FILE, ProjectExists, init_project
from cswf.settings import CONFIG_FILE, Settings, find_root
from cswf.specs.common import too_deep
from cswf.specs.conditions import GROUP_TAGS, Condition, leaves, nesting_problem, segment_refs
from cswf.specs.loader import NESTING_TODO, LoadedWorkflow, SpecSet, check_leaf
from cswf.specs.schema import referenced_schema, write_json_schema
from cswf.specs.segments import expand, unknown_segment, wrong_object
from cswf.specs.workflow import WorkflowState
from cswf.store import compaction, warehouse
from cswf.store.history import FLAG
from cswf.store.private import private_umask
from cswf.store.warehouse import WriteOutcome, last_tick

if TYPE_CHECKING:
    import dagster as dg

app = typer.Typer(cls=OneLineErrors, help="cswf: customer-success workflows in your own warehouse.",
                  no_args_is_help=True, add_completion=False)
# Reports are tables: at least 120 columns wide, so logs and narrow terminals show whole names.
console = Console(width=max(shutil.get_terminal_size().columns, 120))

# Accepted by every time option (read by `clitools.times.parse_time`, whatever a command
# declares): a date, a time with or without seconds, `Z` or a UTC offset (converted to UTC).
TIME_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d-%H:%M"]
AsOf = Annotated[datetime, typer.Option("--as-of", formats=TIME_FORMATS,
                                        help="The tick's logical time (UTC).")]
Root = Annotated[Path | None, typer.Option("--root", help="Project folder (has cswf.yaml).")]
RewriteDelivered = Annotated[bool, typer.Option(
    "--rewrite-delivered", help="Let a re-run rewrite ticks whose actions were delivered; "
    "those actions are kept as superseded, never deleted.")]
WHERE_EXAMPLE = "'{field: tier, op: eq, value: enterprise}'"


def _print_version(asked: bool) -> None:
    if asked:
        try:
            typer.echo(f"cswf {version('cswf')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            typer.echo("cswf (not installed: no version)")
        raise typer.Exit()


class _Options:
    """Options of `cswf` itself, before the command: `cswf --wait 60 tick ...`."""

    wait: float = 0.0
    memory_limit: str | None = None  # the project's, once its settings are read


@app.callback()
def main(
    show_version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit.")] = False,
    wait: Annotated[float, typer.Option(
        "--wait", metavar="SECONDS", min=0, envvar="CSWF_WAIT",
        help="If another process holds the working database, wait up to SECONDS for it "
             "(default: fail at once, saying which process holds it).")] = 0.0,
) -> None:
    """cswf: customer-success workflows in your own warehouse."""
    _Options.wait = wait
    private_umask()  # what the pipeline writes is not world-readable (store/private.py)


def connect(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """The working database, waiting for it as --wait says (held by another process: one line
    naming it and what to do, from the error wrapper)."""
    def waiting(message: str) -> None:
        typer.echo(message, err=True)

    return warehouse.connect(path, read_only=read_only, wait=_Options.wait, on_wait=waiting,
                             memory_limit=_Options.memory_limit)


def _settings(root: Path | None) -> Settings:
    settings = project_settings(root)
    _Options.memory_limit = settings.memory_limit
    return settings


def _fail(message: str, *, where: str | None = None, todo: str | None = None) -> CliError:
    """The error a command raises: one line, `error: where: message — todo`."""
    return CliError(where, message, todo)


def _guarded(action: object) -> None:
    """Runs `action`; its errors are reported like every command's (see OneLineErrors)."""
    action()  # type: ignore[operator]


def _workflow(settings: Settings, name: str) -> LoadedWorkflow:
    """The workflow called `name`, or an error with the closest name."""
    workflows = {w.name: w for w in project.load_workflows(settings)}
    if name in workflows:
        return workflows[name]
    hint = did_you_mean(name, sorted(workflows)) or (
        f"workflows: {', '.join(sorted(workflows))}" if workflows else "add a spec first")
    raise _fail(f"no workflow '{name}'", where=shown(settings.specs_path), todo=hint)


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(
        help="Where the new project goes (created if missing).")],
    force: Annotated[bool, typer.Option(help="Overwrite files that exist.")] = False,
    tick_start: Annotated[datetime | None, typer.Option(
        formats=TIME_FORMATS, help="The first tick's day (UTC): the day of your first "
                                   "snapshot, to replay history; default: today.")] = None,
) -> None:
    """Start a new project in FOLDER, ready for `cswf run`.

    Writes cswf.yaml, an example workflow spec with its email template, user_groups.yaml, the
    landing folder with the data contract in its README.md, dagster.yaml and .gitignore.
    """
    if folder.exists() and not folder.is_dir():
        raise _fail("is a file, not a folder", where=str(folder), todo="choose another path")
    try:
        written = init_project(folder, force=force, today=tick_start)
    except ProjectExists as exc:
        raise _fail(f"{len(exc.paths)} file(s) would be overwritten: {', '.join(exc.paths)}",
                    where=str(folder), todo="choose an empty folder, or add --force to "
                    "overwrite them") from exc
    for rel in sorted([*written.created, *written.replaced]):
        note = " (replaced)" if rel in written.replaced else ""
        typer.echo(f"wrote {folder / rel}{note}")
    first = (tick_start or datetime.now(UTC)).strftime("%Y-%m-%d")
    typer.echo(f"next: drop snapshot files in {folder / 'data/landing'} (its README.md says "
               f"which), then `cd {folder} && cswf run --start DATE --end DATE` (ticks start at "
               f"tick_start, {first} 00:00 in cswf.yaml: move it back to replay older "
               "snapshots); for the Dagster UI: `pip install --no-deps -e .` once, then "
               "`DAGSTER_HOME=$PWD dg dev`")


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
    for segment in result.segments.values():
        typer.echo(f"ok  {segment.file.parent.name}/{segment.file.name}: segment "
                   f"{segment.name} ({segment.object})")


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option(
        help="Where to write the JSON Schema (default: the file the project's specs reference "
             "in their `$schema` comment, else workflow-spec.schema.json at its root).")] = None,
    root: Root = None,
) -> None:
    """Export the JSON Schema of workflow specs, for editors."""
    if out is None and root is None and not (find_root() / CONFIG_FILE).is_file() \
            and not os.environ.get("CSWF_ROOT"):
        out = Path(SCHEMA_FILE)  # no project here: this folder, as `cswf init` lays it out
    if out is None:
        settings = _settings(root)
        out = referenced_schema(settings.specs_path) or settings.root / SCHEMA_FILE
    write_json_schema(out)
    console.print(f"wrote {shown(out)}", soft_wrap=True, markup=False)


@app.command()
def ingest(root: Root = None) -> None:
    """Load new or changed snapshot files from the landing folder."""
    settings = _settings(root)
    require_landing(settings)
    known = project.workflow_names(settings)
    with connect(settings.database_path) as con:  # deploy requests arrive now
        report = project.ingest(con, settings, datetime.now(UTC).replace(tzinfo=None), known)
    console.print(f"landing folder {shown(settings.landing_path)}", markup=False, soft_wrap=True)
    for line in report.lines():
        console.print(f"  {line}", markup=False, soft_wrap=True)


def _run(settings: Settings, ticks: list[datetime], *, progress: bool,
         rewrite_delivered: bool = False) -> None:
    """Run the ticks as one run of Dagster's tick job, in this process (what the schedule, the
    sensor and `cswf demo` run): recorded in the DAGSTER_HOME instance when it is set, so the UI
    shows these ticks as materialized partitions. Dagster's log lines stay in the run's event
    log; the terminal gets a progress bar and a summary."""
    from cswf.defs.launch import run_tick_range

    # The run's steps wait minutes for a database another process holds; a person at the
    # terminal hears about it at once instead (or waits as --wait says).
    connect(settings.database_path).close()
    _refuse_past_a_hold(settings)
    tally = RunTally()
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]ticks"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.description}"), console=console, disable=not progress,
    ) as bar:
        task = bar.add_task("", total=len(ticks))

        def advance(outcome: WriteOutcome, result: TickResult) -> None:
            tally.add(outcome, result)
            if outcome.rewrite is not None:  # what --rewrite-delivered changed, said at once
                bar.console.print(outcome.rewrite.line(), soft_wrap=True, markup=False)
            bar.update(task, advance=1, description=f"{outcome.as_of:%Y-%m-%d %H:%M} "
                       f"{result.actions.height} actions ({outcome.status})")

        try:  # deploy requests without a time count as arriving by the last tick
            run = run_tick_range(settings, ticks[0], ticks[-1], on_tick=advance,
                                 ingest_now=ticks[-1], quiet=True, raise_on_error=False,
                                 rewrite_delivered=rewrite_delivered)
        except ValueError as exc:  # no such tick: one line, never wrapped
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
    elapsed = time.perf_counter() - started
    _stop_at_a_new_hold(settings, ticks)
    problems = run_problems(run)
    refused = [p for p in problems if p.startswith("tick ") and FLAG in p]
    if refused:  # a re-run that would rewrite delivered actions: that line says it all
        typer.echo(f"error: {refused[0]}", err=True)
        raise typer.Exit(1)
    if problems:  # one line each, never wrapped: scripts and CI read them
        for problem in problems:
            typer.echo(f"error: {problem} — run {run.run_id} stopped; "
                       f"{event_log(settings, run.run_id)}", err=True)
        raise typer.Exit(1)
    console.print(
        f"{tally.ticks} ticks in {elapsed:.1f}s"
        f"{f' ({settings.shards} shards each)' if settings.shards > 1 else ''}: "
        f"{tally.statuses['written']} written, "
        f"{tally.statuses['unchanged']} unchanged, {tally.statuses['rewritten']} rewritten; "
        f"{tally.actions} actions, {tally.transitions} transitions", soft_wrap=True
    )
    home = os.environ.get("DAGSTER_HOME")
    console.print(f"Dagster run {run.run_id} " + (f"recorded in {home}" if home else
                  f"not recorded ({_keep_it(settings)})"), soft_wrap=True, markup=False)
    copy = BICopy(settings.bi_path)  # the run's reports step published it
    if copy.database.exists():
        when = f"as of {copy.as_of:%Y-%m-%d %H:%M}" if copy.as_of else "before any tick"
        console.print(f"BI copy {when}: {len(copy.tables())} tables in "
                      f"{copy.database}", soft_wrap=True, markup=False)
    with connect(settings.database_path, read_only=True) as con:
        _print_summary(con)


def _hold(settings: Settings) -> tuple[datetime, pl.DataFrame] | None:
    """The earliest undecided held tick of the project's database, if any."""
    if not settings.database_path.exists():
        return None
    with connect(settings.database_path, read_only=True) as con:
        return open_hold(con)


def _refuse_past_a_hold(settings: Settings) -> None:
    """No tick runs while a held tick waits for `cswf approve` or `cswf reject`."""
    found = _hold(settings)
    if found is not None:
        raise _fail(held_line(*found, refused=True))


def _stop_at_a_new_hold(settings: Settings, ticks: list[datetime]) -> None:
    """The run stopped at a tick a guard held: say so in one line (the failed hold check and
    the steps after it are that same news)."""
    found = _hold(settings)
    if found is not None and ticks[0] <= found[0] <= ticks[-1]:
        raise _fail(held_line(*found))


def event_log(settings: Settings, run_id: str) -> str:
    """Where a run's event log is: in the DAGSTER_HOME instance when one is set; else it was
    not kept, and how to keep it (`make ui` only where this repository's Makefile is)."""
    home = os.environ.get("DAGSTER_HOME")
    if home:
        return f"its event log is in the Dagster instance at {home} (`dg dev` shows run {run_id})"
    return f"its event log was not kept: {_keep_it(settings, 'and run again to keep it')}"


def _keep_it(settings: Settings, then: str = "to keep it") -> str:
    """Where to keep runs: this repository's `make ui` reads data/dagster; a project of its
    own, its folder."""
    if (settings.root / "Makefile").is_file():
        home = settings.root.resolve() / "data" / "dagster"
        return f"set DAGSTER_HOME={home} {then}, as `make ui` does"
    return f"set DAGSTER_HOME={settings.root.resolve()} {then}"


class RunTally:
    """What the ticks of a run did, counted as they are stored (the summary line)."""

    def __init__(self) -> None:
        self.ticks = self.actions = self.transitions = 0
        self.statuses: Counter[str] = Counter()

    def add(self, outcome: WriteOutcome, result: TickResult) -> None:
        self.ticks += 1
        self.statuses[outcome.status] += 1
        self.actions += result.actions.height
        self.transitions += result.transitions.height


def run_problems(run: dg.ExecuteInProcessResult) -> list[str]:
    """Why a run failed, one line each: the blocking checks that failed, and the errors of
    the steps that failed for another reason (the innermost cause, without its traceback)."""
    import dagster as dg  # here: most commands never start Dagster (0.6 s of import)

    problems = []
    for event in run.all_events:
        evaluation = event.asset_check_evaluation_data \
            if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION else None
        if evaluation is not None and not evaluation.passed and \
                evaluation.severity != dg.AssetCheckSeverity.WARN:  # a warning stops nothing
            key = evaluation.asset_check_key
            problems.append(f"check {key.name} on {key.asset_key.to_user_string()} failed: "
                            f"{evaluation.description}")
    for event in run.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None and error.cause is not None and \
                error.cls_name != EvaluationFailed.__name__:  # it names the workflow: keep it
            error = error.cause
        if error is None or error.cls_name == "DagsterAssetCheckFailedError":
            continue  # explained by the check lines above
        if error.cls_name == "ChildProcessCrashException":  # its process died without a word
            problems.append(_killed(run, event.step_key or "?"))
            continue
        prefix, _, message = error.message.partition(": ")
        line = one_line(message if " " not in prefix else error.message)
        memory = error.cls_name == "OutOfMemoryException"  # a step's DuckDB, past its limit
        problems.append(f"{line} — {OUT_OF_MEMORY}" if memory else line)
    if not run.success and not problems:
        problems.append("the run failed")
    return problems


def _killed(run: dg.ExecuteInProcessResult, step: str) -> str:
    """A step whose process died without a word (the system's out-of-memory killer, a
    person's kill, a crash): what Dagster saw of it, and what to do."""
    said = next((event.message or "" for event in run.all_events if event.step_key == step
                 and "child process for step" in (event.message or "")), "")
    found = re.search(r"terminated by signal (\d+) \((\w+)\)", said)
    if found and found[2] == "SIGKILL":
        return (f"step {step}'s process was killed by signal {found[1]} (SIGKILL), as the "
                "system does when memory runs out: run it again (with more memory, or more "
                "shards, if memory ran out)")
    if found:
        return f"step {step}'s process was killed by signal {found[1]} ({found[2]}): run it again"
    exited = re.search(r"exited with code (-?\d+)", said)
    how = f"exited with code {exited[1]}" if exited else "died"
    return f"step {step}'s process {how} without saying why: run it again"


@app.command()
def tick(as_of: AsOf, root: Root = None, rewrite_delivered: RewriteDelivered = False) -> None:
    """Run one tick through Dagster: ingest, facts, evaluate, advance, store, reports."""
    settings = _settings(root)
    require_landing(settings)
    if project.ticks_in(settings, as_of, as_of) != [as_of]:
        raise no_ticks(settings, "--as-of", as_of, as_of)
    _run(settings, [as_of], progress=False, rewrite_delivered=rewrite_delivered)


RUN_HELP = (
    "Run every tick from start to end, in order, as one Dagster run with a progress bar.\n\n"
    "The landing folder is ingested once, when the run starts. An action event "
    "(action_events/) for an action this run emits cannot load then: it stays in the folder, "
    "and the next ingest (cswf ingest, cswf tick, the next cswf run) loads it; the first tick "
    "run after that sees it, so a wait or branch acts on it then. To have a range act on such "
    "events as they happen, run it in shorter pieces with an ingest between them.")


@app.command(help=RUN_HELP)
def run(
    start: Annotated[datetime, typer.Option(formats=TIME_FORMATS, help="First tick (UTC).")],
    end: Annotated[datetime, typer.Option(formats=TIME_FORMATS, help="Last tick (UTC).")],
    root: Root = None,
    rewrite_delivered: RewriteDelivered = False,
) -> None:
    """Run every tick from start to end, in order, as one Dagster run with a progress bar
    (`RUN_HELP` says when action events are picked up)."""
    settings = _settings(root)
    require_landing(settings)
    ticks = project.ticks_in(settings, start, end)
    if not ticks:
        raise no_ticks(settings, "--start/--end", start, end)
    _run(settings, ticks, progress=True, rewrite_delivered=rewrite_delivered)


@app.command()
def preview(
    as_of: AsOf,
    workflow: Annotated[str | None, typer.Argument(
        help="Workflow name (or a segment's, when no workflow has it).")] = None,
    segment: Annotated[str | None, typer.Option(
        help="Preview this segment (segments/NAME.yaml): who matches now.")] = None,
    sample: Annotated[int, typer.Option(help="How many matches to show.")] = 10,
    root: Root = None,
) -> None:
    """How many participants meet a workflow's entry conditions (or a segment) at as_of, with
    a sample (any state)."""
    settings = _settings(root)
    require_landing(settings)
    if segment is None and workflow is None:
        raise _fail("name a workflow or a segment", where="cswf preview",
                    todo="cswf preview WORKFLOW --as-of T, or cswf preview --segment NAME")
    checked = project.check_specs(settings)
    if segment is not None or (workflow not in {w.name for w in checked.workflows}
                               and workflow in checked.segments):
        _preview_segment(settings, checked, segment or workflow or "", as_of, sample)
        return
    chosen = _workflow(settings, workflow or "")
    with connect(settings.database_path) as con:
        project.ingest(con, settings)
        result = project.preview(con, settings, chosen, as_of, sample)
    console.print(f"[bold]{workflow}[/bold] as of {as_of:%Y-%m-%d %H:%M}: "
                  f"{result.matching} of {result.participants} participants meet the entry "
                  f"conditions; {result.already_inside} already inside, "
                  f"{result.would_enter} would enter at this tick"
                  f"{'' if chosen.spec.state is WorkflowState.enabled else ' if enabled'}.",
                  soft_wrap=True)
    if _no_facts_hint(settings, chosen.spec.object, as_of, result.participants):
        _print_frame(result.sample, title="sample of matches")


def _no_facts_hint(settings: Settings, participant: str, as_of: datetime, count: int) -> bool:
    """`0 of 0` is no answer: say that nothing was ingested for that tick, and what to do
    (instead of an empty sample). Whether there were facts."""
    if count == 0:
        console.print(f"no {participant} facts at {as_of:%Y-%m-%d %H:%M}: no snapshot dated on "
                      f"or before {as_of:%Y-%m-%d} is ingested — land snapshot files in "
                      f"{shown(settings.landing_path)} (its README.md says which) and run "
                      "`cswf ingest`, or preview a later tick", soft_wrap=True)
    return count > 0


def _preview_segment(settings: Settings, checked: SpecSet, name: str, as_of: datetime,
                     sample: int) -> None:
    """`cswf preview --segment NAME`: who matches the segment at as_of."""
    if name not in checked.segments:
        where = shown(settings.segments_path)
        errors = [e for e in checked.errors if e.file.endswith(f"/{name}.yaml")]
        if errors:
            raise _fail(str(errors[0]), where=where, todo="fix the segment, then preview it")
        raise _fail(unknown_segment(name, checked.segments), where=where,
                    todo=f"write {shown(settings.segments_path)}/{name}.yaml")
    chosen = checked.segments[name]
    with connect(settings.database_path) as con:
        project.ingest(con, settings)
        result = project.preview_segment(con, settings, chosen, as_of, sample)
    about = f" ({chosen.segment.description})" if chosen.segment.description else ""
    console.print(f"[bold]segment {name}[/bold] as of {as_of:%Y-%m-%d %H:%M}: "
                  f"{result.matching} of {result.participants} {chosen.object}s match{about}.",
                  soft_wrap=True)
    if _no_facts_hint(settings, chosen.object, as_of, result.participants):
        _print_frame(result.sample, title="sample of matches")


@app.command()
def backtest(
    workflow: Annotated[str, typer.Argument(help="Workflow name.")],
    start: Annotated[datetime, typer.Option("--from", formats=TIME_FORMATS,
                                            help="The first tick (UTC).")],
    end: Annotated[datetime, typer.Option("--to", formats=TIME_FORMATS,
                                          help="The last tick (UTC).")],
    sample: Annotated[int, typer.Option(help="How many entries to show.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
    root: Root = None,
) -> None:
    """Run a workflow as its spec file is now over past ticks, in a scratch copy: who would have
    entered, what it would have sent, exits, the objective (nothing is stored or sent)."""
    settings = _settings(root)
    require_landing(settings)
    chosen = _workflow(settings, workflow)
    if end < start:
        raise _fail(f"{end:%Y-%m-%d %H:%M} is before --from {start:%Y-%m-%d %H:%M}",
                    where="--to", todo="give a --to at or after --from")
    ticks = project.ticks_in(settings, start, end)
    if not ticks:
        raise no_ticks(settings, "--from/--to", start, end)
    workflows = project.load_workflows(settings)
    database = settings.database_path
    with (connect(database, read_only=True) if database.exists()
          else duckdb.connect(":memory:")) as con:
        result = project.backtest(con, settings, workflows, chosen.name, ticks, sample)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    _print_backtest(result)


def _print_backtest(result: project.Backtest) -> None:
    console.print(f"[bold]{result.workflow}[/bold] backtest from {result.start:%Y-%m-%d %H:%M} "
                  f"to {result.end:%Y-%m-%d %H:%M} ({len(result.ticks)} ticks), run in a scratch "
                  "copy: nothing was stored or sent.", soft_wrap=True)
    if result.held is not None:
        console.print(f"a guard held the tick at {result.held:%Y-%m-%d %H:%M} (docs/safety.md): "
                      "the backtest stopped after it.", soft_wrap=True)
    per_tick = result.entered_per_tick
    busy = per_tick.filter(pl.col("entered") > 0)
    held_out = f", {result.held_out} of them held out (control group)" if result.held_out else ""
    console.print(f"entered: {result.entered}{held_out} (at {busy.height} of {per_tick.height} "
                  "ticks); "
                  f"completed: {result.completed}; exited: {int(result.exits['exits'].sum())}",
                  soft_wrap=True)
    if not busy.is_empty():
        _print_frame(busy, title="entered per tick")
        _print_frame(result.sample, title="sample of entries")
    if not result.actions.is_empty():
        _print_frame(result.actions_by_step, title="actions by step")
    if not result.exits.is_empty():
        _print_frame(result.exits, title="exits by reason")
    if result.objective is not None:
        _print_frame(result.objective,
                     title=f"objective met rate ({result.objective_condition})")


@app.command()
def explain(
    workflow: Annotated[str, typer.Argument(help="Workflow name.")],
    participant: Annotated[str, typer.Argument(help="Participant id (account, contact, ...).")],
    at: Annotated[datetime | None, typer.Option(
        "--at", formats=TIME_FORMATS, help="The tick (UTC); default: the last computed tick.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
    root: Root = None,
) -> None:
    """Is a participant inside a workflow: at which step since when, what it received and why;
    if not, what keeps it out, with the fact values."""
    settings = _settings(root)
    chosen = _workflow(settings, workflow)
    database = settings.database_path
    if not database.exists():
        raise _fail("no working database yet", where=shown(database),
                    todo="run ticks first (`cswf run --start ... --end ...`)")
    with connect(database, read_only=True) as con:
        last = last_tick(con) if "tick_log" in existing_tables(con) else None
        if at is None and last is None:
            raise _fail("no tick has run yet", where="--at",
                        todo="run ticks first, or give the tick to judge with --at")
        moment = at or last
        assert moment is not None
        try:
            result = project.explain(con, settings, project.load_workflows(settings),
                                     chosen.name, participant, moment)
        except project.UnknownParticipant as exc:
            raise _fail(f"no participant '{participant}' in {workflow}'s facts at "
                        f"{moment:%Y-%m-%d %H:%M} nor in its history", where=participant,
                        todo=exc.hint or "give an id from the snapshots") from exc
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    _print_explanation(result, last)


def _print_explanation(result: project.Explanation, last: datetime | None) -> None:
    at = f"{result.at:%Y-%m-%d %H:%M}"
    head = f"[bold]{result.participant}[/bold] in [bold]{result.workflow}[/bold] ({result.state})"
    if last is not None and result.at > last:
        console.print(f"no tick ran after {last:%Y-%m-%d %H:%M}: the state is that tick's.",
                      soft_wrap=True)
    enrollment = result.enrollment
    if result.inside:
        assert enrollment is not None and result.since is not None
        wait = f", waiting until {enrollment['wait_until']:%Y-%m-%d %H:%M}" \
            if enrollment["wait_until"] else ""
        console.print(f"{head} at {at}: inside (enrollment {enrollment['enrollment_id']}, "
                      f"entered {enrollment['entered_at']:%Y-%m-%d %H:%M}), at step "
                      f"{enrollment['step_name']} since {result.since:%Y-%m-%d %H:%M}{wait}.",
                      soft_wrap=True)
    else:
        console.print(f"{head} at {at}: not inside.", soft_wrap=True)
        for reason in result.reasons:
            console.print(f"- {reason}", soft_wrap=True, markup=False)
    if result.entry is not None:
        shown_entry = result.entry.with_columns(
            pl.concat_str(pl.lit("  ").repeat_by("depth").list.join(""), "condition")
        ).select("condition", "value", "previous", "holds")
        _print_frame(shown_entry, title=f"entry conditions at {at}")
    if not result.actions.is_empty():
        _print_frame(result.actions, title="what it received")
    if not result.transitions.is_empty():
        _print_frame(result.transitions, title="why (transitions, with the fact values)")


@app.command()
def deliver(
    now: Annotated[datetime | None, typer.Option(
        formats=TIME_FORMATS, help="Deliver as of this time (UTC); default: now.")] = None,
    approve_spike: Annotated[bool, typer.Option(
        "--approve-spike", help="Approve the volume the breaker held (docs/delivery.md), "
                                "then deliver it, within the rate limits.")] = False,
    root: Root = None,
) -> None:
    """Send what the outbox holds, once (dry run unless cswf.yaml's delivery section says so)."""
    settings = _settings(root)
    moment = now or datetime.now(UTC).replace(tzinfo=None)
    with connect(settings.database_path) as con:
        if approve_spike:
            approved = project.approve_delivery_spike(con, moment)
            console.print(f"approved {approved} held delivery spike(s)" if approved else
                          "no delivery spike was held: nothing to approve", soft_wrap=True)
        report = project.deliver_outbox(con, settings, moment)
        if report.breaker is None:  # then what came of it, published, as the delivery job does
            project.store_action_insights(con, moment)
            published = project.publish_bi_copy(con, settings)
    if report.breaker is not None:
        raise _fail(report.breaker)
    console.print(f"delivery as of {moment:%Y-%m-%d %H:%M}: {report.summary()}", soft_wrap=True)
    console.print(published.summary(), soft_wrap=True, markup=False)


@app.command()
def deploy(
    workflow: Annotated[str, typer.Argument(help="Workflow name.")],
    participants: Annotated[str, typer.Option(
        help="Comma-separated participant ids.")] = "",
    where: Annotated[str, typer.Option(
        help=f"A condition in YAML, e.g. {WHERE_EXAMPLE}: every participant matching it at the "
             "last tick.")] = "",
    by: Annotated[str, typer.Option(help="Who asks (recorded with the request).")] = "cli",
    at: Annotated[datetime | None, typer.Option(
        formats=TIME_FORMATS, help="When the request is made (UTC); default: now.")] = None,
    root: Root = None,
) -> None:
    """Deploy a workflow by hand; the next tick enters each participant or records why not."""
    settings = _settings(root)
    chosen_workflow = _workflow(settings, workflow)
    if not participants and not where:
        raise _fail("no participants", where="--participants / --where",
                    todo=f"give --participants a,b or --where {WHERE_EXAMPLE}")
    condition = _condition(where, settings, chosen_workflow) if where else None
    moment = at or datetime.now(UTC).replace(tzinfo=None)
    chosen = [p.strip() for p in participants.split(",") if p.strip()]
    with connect(settings.database_path) as con:
        _refuse_the_past(con, moment, "--at" if at else "--at (default: now)")
        count, stored = project.deploy(con, settings, chosen_workflow, by, moment, chosen,
                                       condition)
    console.print(f"{stored} deploy request(s) for {count} participant(s) of {workflow}, "
                  f"made {moment:%Y-%m-%d %H:%M} by {by}; the next tick honours or refuses them "
                  "(see transitions: entered / deploy_refused).", soft_wrap=True)


@app.command()
def remove(
    workflow: Annotated[str, typer.Argument(help="Workflow name.")],
    participants: Annotated[str, typer.Option(
        help="Comma-separated participant ids.")] = "",
    reason: Annotated[str, typer.Option(help="Why they leave (recorded).")] = "",
    by: Annotated[str, typer.Option(help="Who asks (recorded with the request).")] = "cli",
    as_of: Annotated[datetime | None, typer.Option(
        "--as-of", formats=TIME_FORMATS,
        help="When the request is made (UTC); default: now.")] = None,
    root: Root = None,
) -> None:
    """Take participants out of a workflow by hand; the next tick exits each one, with the
    reason, and their pending actions are not sent."""
    settings = _settings(root)
    chosen_workflow = _workflow(settings, workflow)
    chosen = [p.strip() for p in participants.split(",") if p.strip()]
    if not chosen:
        raise _fail("no participants", where="--participants", todo="give --participants a,b")
    if not reason.strip():
        raise _fail("no reason", where="--reason",
                    todo="say why they leave, e.g. --reason 'churned'")
    moment = as_of or datetime.now(UTC).replace(tzinfo=None)
    with connect(settings.database_path) as con:
        _refuse_the_past(con, moment, "--as-of" if as_of else "--as-of (default: now)")
        stored = project.remove(con, chosen_workflow, chosen, reason.strip(), by, moment)
    console.print(f"{stored} removal request(s) for {len(set(chosen))} participant(s) of "
                  f"{workflow}, made {moment:%Y-%m-%d %H:%M} by {by}; the next tick exits them "
                  "(see transitions: exited / remove_refused).", soft_wrap=True)


def _condition(where: str, settings: Settings, workflow: LoadedWorkflow) -> Condition:
    """`--where` as a condition on the workflow's fact fields, or the error saying what's wrong."""
    try:
        raw = yaml.safe_load(where)
        if not isinstance(raw, dict):
            raise _fail("a condition is a YAML mapping", where="--where",
                        todo=f"write one such as {WHERE_EXAMPLE}")
        if too_deep(raw) is not None:
            raise RecursionError
        condition = TypeAdapter(Condition).validate_python(raw)
    except RecursionError as exc:
        raise _fail("nests too deep to read", where="--where", todo=NESTING_TODO) from exc
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _fail(f"not valid YAML: {problem}", where="--where",
                    todo=f"write a condition such as {WHERE_EXAMPLE}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"] if p not in GROUP_TAGS)
        message = first["msg"].removeprefix("Value error, ")
        raise _fail(f"{path}: {message}" if path else message, where="--where",
                    todo=f"write a condition such as {WHERE_EXAMPLE}") from exc
    deep = nesting_problem(condition)
    if deep is not None:
        raise _fail(deep, where="--where", todo=NESTING_TODO)
    if any(True for _ in segment_refs(condition)):  # {segment: name}: its condition, in place
        segments = project.check_specs(settings).segments
        for _, ref in segment_refs(condition):
            used = segments.get(ref.segment)
            if used is None:
                raise _fail(unknown_segment(ref.segment, segments), where="--where")
            if used.object != workflow.spec.object:
                raise _fail(wrong_object(ref.segment, used.object, workflow.spec.object,
                                         "this workflow"), where="--where")
        condition = expand(condition, {n: s.condition for n, s in segments.items()})
    schema = fact_schema(settings.facts_sql_path, FACT_MODELS[workflow.spec.object],
                         settings.landing_objects())
    problems = [m for _, leaf in leaves(condition) for _, m in check_leaf(leaf, schema)]
    if problems:
        raise _fail("; ".join(problems), where="--where")
    return condition


def _refuse_the_past(con: object, moment: datetime, option: str) -> None:
    """A request at or before the last computed tick falls in a window no tick will run again:
    it would never be honoured nor refused, so it is not stored."""
    last = last_tick(con) if "tick_log" in existing_tables(con) else None  # type: ignore[arg-type]
    if last is not None and moment <= last:
        raise _fail(f"{moment:%Y-%m-%d %H:%M} is not after the last computed tick "
                    f"({last:%Y-%m-%d %H:%M}), so no tick would ever honour or refuse it",
                    where=option, todo=f"give a time after {last:%Y-%m-%d %H:%M}")


def _require_a_tick(settings: Settings, con: duckdb.DuckDBPyConnection | None) -> None:
    """Reports read what ticks stored: before the first tick there is nothing to report."""
    if con is None or "tick_log" not in existing_tables(con) or last_tick(con) is None:
        raise _fail("nothing to report yet: no tick has run", where=shown(settings.database_path),
                    todo="run ticks first: `cswf run --start DAY --end DAY` or "
                         "`cswf tick --as-of TIME`")


@app.command()
def reports(root: Root = None) -> None:
    """Rebuild the report tables; print their row counts and the workflow summary."""
    settings = _settings(root)
    if not settings.database_path.exists():  # and connecting would create it
        _require_a_tick(settings, None)
    with connect(settings.database_path) as con:
        _require_a_tick(settings, con)
        refreshed = project.refresh_reports(con, settings)
        counts = refreshed.rows
        _print_frame(pl.DataFrame({"report": list(counts), "rows": list(counts.values())},
                                  schema={"report": pl.String, "rows": pl.Int64}),
                     title="reports rebuilt")
        console.print(refreshed.publication.summary(), soft_wrap=True)
        _print_summary(con)


@app.command()
def compact(root: Root = None) -> None:
    """Merge the row groups ticks leave partial, in every table (docs/tables.md, 'Compaction');
    Dagster's compact_job does it weekly."""
    settings = _settings(root)
    if not settings.database_path.exists():
        what, todo = compaction.NO_DATABASE
        raise _fail(what, where=shown(settings.database_path), todo=todo)
    with connect(settings.database_path) as con:
        done = compaction.compact(con, datetime.now(UTC).replace(tzinfo=None))
    console.print(done.line(), soft_wrap=True, markup=False)


@app.command()
def report(
    name: Annotated[str | None, typer.Argument(
        help="A report (or published table) to print; none: list what the copy holds.")] = None,
    html: Annotated[bool, typer.Option(
        "--html", help="Write one self-contained HTML page: charts and the dry run's emails.")
    ] = False,
    out: Annotated[Path | None, typer.Option(
        help="Where --html writes (default: report.html in the BI folder).")] = None,
    publish: Annotated[bool, typer.Option(
        "--publish", help="First publish the BI copy again from the working database.")] = False,
    rows: Annotated[int, typer.Option(help="How many rows of a report to print.")] = 20,
    root: Root = None,
) -> None:
    """Read the BI copy (never the working database): list it, print a report, or --html."""
    settings = _settings(root)
    if publish:
        with connect(settings.database_path) as con:
            console.print(project.publish_bi_copy(con, settings).summary(), soft_wrap=True)
    copy = BICopy(settings.bi_path)
    try:
        if html:
            from cswf.reports.html import write_page

            target = out or settings.bi_path / "report.html"
            page = write_page(copy, target, settings.delivery_config().dry_run_dir)
            console.print(page.summary(), soft_wrap=True)
        elif name:
            frame = copy.table(name)
            _print_frame(frame.head(rows), title=f"{name}: {frame.height} rows, as of "
                         f"{copy.as_of:%Y-%m-%d %H:%M}")
        else:
            manifest = copy.manifest()
            _print_frame(manifest, title=f"BI copy {copy.database}")
            console.print(f"Parquet: {settings.bi_path / 'parquet' / 'current'}/<table>.parquet",
                          soft_wrap=True)
    except (NoCopy, KeyError) as exc:
        raise _fail(str(exc.args[0])) from exc


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
    from cswf.demo.run import DemoRunFailed, OutsideTheBook, run_demo

    settings = _settings(root)
    try:
        run_demo(settings, accounts=accounts, days=days, fresh=fresh, console=console)
    except OutsideTheBook as outside:
        raise _fail(str(outside)) from outside
    except DemoRunFailed as failed:
        _stop_at_a_new_hold(settings, failed.ticks)
        for problem in run_problems(failed.run):
            typer.echo(f"error: {problem} — run {failed.run.run_id} stopped; "
                       f"{event_log(settings, failed.run.run_id)}", err=True)
        raise typer.Exit(1) from failed


Tick = Annotated[datetime, typer.Argument(
    formats=TIME_FORMATS, metavar="TICK", help="The held tick, e.g. 2026-06-10T03:00 (UTC).")]
By = Annotated[str, typer.Option("--by", help="Who decides (recorded with the decision).")]
Why = Annotated[str | None, typer.Option("--reason", help="Why (recorded with the decision).")]


@app.command()
def holds(root: Root = None) -> None:
    """Ticks a guard held (docs/safety.md): each guard, what it saw against the norm, a sample,
    and the decision taken."""
    settings = _settings(root)
    if not settings.database_path.exists():
        console.print("no tick has run yet: nothing held", soft_wrap=True)
        return
    with connect(settings.database_path, read_only=True) as con:
        found = project.holds(con) if "tick_holds" in existing_tables(con) else None
    if found is None or found.is_empty():
        console.print("no tick was ever held", soft_wrap=True)
        return
    for row, said in zip(found.iter_rows(named=True), reasons(found), strict=True):
        decided = (f", {row['status']} by {row['decided_by']} at "
                   f"{row['decided_at']:%Y-%m-%d %H:%M}" if row["decided_at"] else "")
        why = f" ({row['reason']})" if row["reason"] else ""
        console.print(f"{tick_text(row['as_of'])} {row['status']}: {row['guard']} guard, {said}"
                      f"{decided}{why}", soft_wrap=True, markup=False)
        console.print(f"  sample: {row['sample']}", soft_wrap=True, markup=False)
    waiting = found.filter(pl.col("status") == "held")
    if not waiting.is_empty():
        tick = tick_text(waiting["as_of"][0])
        console.print(f"decide: `cswf approve {tick}` releases it, `cswf reject {tick}` "
                      "discards it and the ticks after it", soft_wrap=True, markup=False)


@app.command()
def approve(tick: Tick, by: By = "cli", reason: Why = None, root: Root = None) -> None:
    """Release a held tick: delivery may send what it emitted, and later ticks run."""
    settings = _settings(root)
    with connect(settings.database_path) as con:
        project.approve(con, tick, by, reason, datetime.now(UTC).replace(tzinfo=None))
    console.print(f"tick {tick:%Y-%m-%d %H:%M} approved by {by}: delivery may send it, and "
                  "later ticks run", soft_wrap=True, markup=False)


@app.command()
def reject(tick: Tick, by: By = "cli", reason: Why = None, root: Root = None) -> None:
    """Discard a held tick and every later one (nothing of them was sent); the hold is kept as
    rejected. Fix the snapshot, then run the tick again."""
    settings = _settings(root)
    with connect(settings.database_path) as con:
        gone = project.reject(con, tick, by, reason, datetime.now(UTC).replace(tzinfo=None))
    console.print(f"tick {tick:%Y-%m-%d %H:%M} rejected by {by}: {gone} tick(s) removed, "
                  f"nothing of them was sent; fix the snapshot, then `cswf tick --as-of "
                  f"{tick_text(tick)}` runs it again", soft_wrap=True, markup=False)


def _print_summary(con: object) -> None:
    """workflow_summary as the demo's closing table heads it (demo/summary.py)."""
    frame = con.sql(  # type: ignore[attr-defined]
        "SELECT workflow, category, auto_deploy AS auto, deployed, active, completed, exited, "
        'avg_days_to_complete AS "avg days", objective_met_rate AS "objective rate" '
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
