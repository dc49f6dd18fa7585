"""`cswf demo`: a simulated quarter of customer-success activity, run through Dagster.

The terminal shows a few lines of context, one progress bar over the quarter's ticks and the
summary; Dagster's own events (one per tick and asset) go to the run's event log only, where
the UI shows them. Delivery runs along the quarter as its schedule would (demo/delivering.py).
"""

from __future__ import annotations

import gc
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from datetime import time as clock
from typing import TYPE_CHECKING

from rich.console import Console

from cswf import project
from cswf.demo.generate import generate_book
from cswf.demo.progress import QuarterProgress
from cswf.demo.summary import print_outcome
from cswf.reports.html import write_page
from cswf.reports.reader import BICopy
from cswf.settings import Settings
from cswf.store.private import private_umask

if TYPE_CHECKING:
    import dagster as dg

BOOK_START = date(2026, 5, 1)
BOOK_DAYS = 120  # 30 days of history, then the quarter of ticks


HISTORY_DAYS = 30  # the book's days before its first tick (the facts' 30-day windows)


class OutsideTheBook(ValueError):
    """tick_start is not a day of the demo's book: one line saying what to set."""


def quarter(settings: Settings, days: int = BOOK_DAYS) -> tuple[datetime, datetime]:
    """The demo's ticks: from the configured first tick to the last tick of the book's days
    (OutsideTheBook when the first tick is not a day of the book after its history: a project
    made by `cswf init` starts ticking on the day it was made)."""
    first = BOOK_START + timedelta(days=HISTORY_DAYS)
    last_day = BOOK_START + timedelta(days=days - 1)
    if not first <= settings.tick_start.date() <= last_day:
        raise OutsideTheBook(
            f"tick_start is {settings.tick_start:%Y-%m-%d %H:%M}, outside the demo's book "
            f"({BOOK_START} to {last_day}, ticks from its day {HISTORY_DAYS + 1}): set "
            f'tick_start: "{first} 00:00" in {settings.root}/cswf.yaml (or CSWF_TICK_START), '
            "then run cswf demo again")
    return settings.tick_start, datetime.combine(last_day, clock(21, 0))


@contextmanager
def settled_heap() -> Iterator[None]:
    """Every object made so far (Dagster's and cswf's modules) out of the garbage collector's
    reach while the quarter runs: they live as long as the process, and the collector would walk
    them again at every full collection (3.5 s of a 50-day demo's 57 s). Undone on the way out,
    so they are finalized at exit as usual."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class DemoRunFailed(RuntimeError):
    """The quarter's run stopped (a held tick, a failed check or step): the CLI says why."""

    def __init__(self, run: dg.ExecuteInProcessResult, ticks: list[datetime]) -> None:
        super().__init__("the demo's run stopped")
        self.run = run
        self.ticks = ticks


def run_demo(settings: Settings, *, accounts: int, fresh: bool, console: Console,
             days: int = BOOK_DAYS) -> None:
    from cswf.defs.fanout import fans_out
    from cswf.defs.launch import run_delivery, run_tick_range
    from cswf.defs.resources import project_resource
    from cswf.demo.audience import SimulatedCustomers

    private_umask()  # the book, the warehouse, the previews: not world-readable
    began = time.perf_counter()
    start, end = quarter(settings, days)  # before anything is written
    landing = settings.landing_path
    if fresh:
        shutil.rmtree(landing, ignore_errors=True)
        settings.database_path.unlink(missing_ok=True)
    if any(landing.glob("*/*")):
        console.print(f"book of business: the files in {landing} (--fresh makes a new one)")
    else:
        with console.status(f"generating {accounts:,} accounts x {days} days of snapshots"):
            book = generate_book(landing, accounts=accounts, days=days, start=BOOK_START)
        console.print(
            f"book of business: {book.accounts:,} accounts ({book.new_accounts:,} arrive during "
            f"the period), {days} days of snapshots in {landing} "
            f"({book.account_rows:,} account and {book.usage_rows:,} usage rows)"
        )
    checked = project.check_specs(settings)
    for error in checked.errors:
        console.print(str(error), markup=False)
    checked.require_valid()

    ticks = project.ticks_in(settings, start, end)
    closing = settings.calendar.next(end)  # the quarter ends where its last tick's span does
    home = os.environ.get("DAGSTER_HOME")
    runs = f"a Dagster run per tick ({settings.shards} shard steps each)" \
        if fans_out(settings) else "one Dagster run"
    console.print(
        f"{len(checked.workflows)} workflows; {len(ticks)} ticks from {start:%Y-%m-%d %H:%M} to "
        f"{end:%Y-%m-%d %H:%M} (cron '{settings.tick_cron}') as "
        f"{runs}"
        f"{f' recorded in {home}' if home else ''}.\n"
        "After each tick delivery runs at the tick and wherever a held email comes due before "
        "the next (every 15 minutes in production), then simulated customers answer what was "
        "sent."
    )
    progress = QuarterProgress(console, len(ticks))
    audience = SimulatedCustomers(project=project_resource(settings), last_tick=end.isoformat())
    with progress.showing(), settled_heap():
        run = run_tick_range(settings, start, end, audience=audience, quiet=True,
                             raise_on_error=False)
        if not run.success:  # a guard held a tick, a check failed: the CLI says which
            raise DemoRunFailed(run, ticks)
        progress.stage("delivery run at the quarter's end", f"as of {closing:%Y-%m-%d %H:%M}")
        delivery = run_delivery(settings, closing, quiet=True)
        progress.stage("quarter done")
    # on the multiprocess executor each tick was a run of its own; `run` is the last, reports'
    ran = (f"Dagster runs (ingest and facts, {len(ticks)} tick runs, then the reports' run "
           f"{run.run_id})" if fans_out(settings) else f"Dagster run {run.run_id}")
    console.print(
        f"{ran} {'succeeded' if run.success else 'FAILED'}, delivery run "
        f"{delivery.run_id} {'succeeded' if delivery.success else 'FAILED'}; "
        f"{time.perf_counter() - began:.0f}s in all"
    )
    print_outcome(settings, closing, progress.delivery_runs, console)
    # The delivery run at the quarter's end published the BI copy; the page is drawn from it.
    copy = BICopy(settings.bi_path)
    console.print(f"BI copy as of {copy.as_of:%Y-%m-%d %H:%M}: {copy.database} and "
                  f"{settings.bi_path / 'parquet' / 'current'}/", soft_wrap=True, markup=False)
    page = write_page(copy, settings.bi_path / "report.html",
                      settings.delivery_config().dry_run_dir)
    console.print(page.summary(), soft_wrap=True, markup=False)
