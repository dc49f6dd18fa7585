"""`cswf demo`: a simulated quarter of customer-success activity, run through Dagster."""

from __future__ import annotations

import os
import shutil
import time
from datetime import date, datetime, timedelta
from datetime import time as clock

from rich.console import Console
from rich.table import Table

from cswf import project
from cswf.demo.generate import generate_book
from cswf.settings import Settings
from cswf.store.warehouse import connect

BOOK_START = date(2026, 5, 1)
BOOK_DAYS = 120  # 30 days of history, then the quarter of ticks


def quarter(settings: Settings) -> tuple[datetime, datetime]:
    """The demo's ticks: from the configured first tick to the last tick of the book's days."""
    last_day = BOOK_START + timedelta(days=BOOK_DAYS - 1)
    return settings.tick_start, datetime.combine(last_day, clock(21, 0))


def run_demo(settings: Settings, *, accounts: int, fresh: bool, console: Console) -> None:
    from cswf.defs.launch import run_delivery, run_tick_range
    from cswf.demo.audience import SimulatedCustomers

    landing = settings.landing_path
    if fresh:
        shutil.rmtree(landing, ignore_errors=True)
        settings.database_path.unlink(missing_ok=True)
    if not any(landing.glob("*/*")):
        console.print(f"generating {accounts:,} accounts x {BOOK_DAYS} days into {landing} ...")
        book = generate_book(landing, accounts=accounts, days=BOOK_DAYS, start=BOOK_START)
        console.print(
            f"{book.accounts:,} accounts ({book.new_accounts:,} arrive during the "
            f"period), {book.account_rows:,} snapshot rows, {book.usage_rows:,} usage "
            "rows"
        )
    checked = project.check_specs(settings)
    for error in checked.errors:
        console.print(str(error), markup=False)
    checked.require_valid()

    start, end = quarter(settings)
    ticks = len(project.ticks_in(settings, start, end))
    home = os.environ.get("DAGSTER_HOME")
    console.print(
        f"running {ticks} ticks ({start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}) "
        f"as one Dagster run{f' in {home}' if home else ''} ..."
    )
    started = time.perf_counter()
    # Simulated customers answer after every tick, so waits and branches see opens and
    # completed tasks (demo/responses.py).
    result = run_tick_range(settings, start, end, audience=SimulatedCustomers())
    console.print(
        f"run {result.run_id} {'succeeded' if result.success else 'FAILED'} "
        f"in {time.perf_counter() - started:.1f}s"
    )
    delivered_at = end + timedelta(hours=12)  # the next morning, outside quiet hours
    run_delivery(settings, delivered_at)
    _print_outcome(settings, delivered_at, console)


def _print_outcome(settings: Settings, delivered_at: datetime, console: Console) -> None:
    with connect(settings.database_path, read_only=True) as con:
        summary = con.sql(
            "SELECT workflow, category, deployed, active, completed, exited, "
            "avg_days_to_complete, objective_met_rate FROM workflow_summary"
        ).fetchall()
        actions = con.sql(
            "SELECT action_type, count(*), count(*) FILTER (WHERE status = 'render_failed') "
            "FROM actions_outbox GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        deliveries = con.sql(
            "SELECT status, count(*) FROM deliveries GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    table = Table(title="workflow_summary")
    for column in (
        "workflow",
        "category",
        "deployed",
        "active",
        "completed",
        "exited",
        "avg days",
        "objective rate",
    ):
        table.add_column(column)
    for row in summary:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)
    console.print(
        "actions_outbox: "
        + ", ".join(
            f"{kind} {count:,}" + (f" ({failed} failed to render)" if failed else "")
            for kind, count, failed in actions
        )
    )
    delivery = settings.delivery_config()
    mode = "dry run: nothing left the machine" if delivery.dry_run else "sent"
    console.print(
        f"delivery as of {delivered_at:%Y-%m-%d %H:%M} ({mode}): "
        + ", ".join(f"{status} {count:,}" for status, count in deliveries)
    )
    if delivery.dry_run:
        console.print(f"would-be emails (.eml) and other actions (.json): {delivery.dry_run_dir}")
    console.print(
        f"\nDuckDB: {settings.database_path} (workflow_summary, workflow_dashboard, enrollments, "
        "transitions, actions_outbox, deliveries, action_insights, account_facts)\n"
        "Dagster UI: run `make ui`, then open http://localhost:3000 "
        "(Assets shows every tick partition of the quarter)."
    )
