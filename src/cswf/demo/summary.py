"""The demo's closing summary: workflows, what delivery did along the quarter, what came of it,
and where to look next."""

from __future__ import annotations

import os
from datetime import datetime

from rich.console import Console
from rich.table import Table

from cswf.reports.publish import DATABASE_FILE
from cswf.settings import Settings
from cswf.store.warehouse import connect

_SUMMARY_COLUMNS = ("workflow", "category", "deployed", "active", "completed", "exited",
                    "avg days", "objective rate")
# One row of totals: the emails' fate at delivery and what the customers did with them. A dry
# run's emails are `previewed` (they stay due for a real run): counted as sent, and named so.
_EMAILS = """
SELECT count(*) FILTER (d.status IN ('sent', 'previewed')) AS sent,
       count(*) FILTER (d.status IN ('sent', 'previewed') AND d.sent_at > o.tick) AS waited,
       count(*) FILTER (d.status = 'deferred') AS deferred,
       count(*) FILTER (d.status = 'capped') AS capped,
       count(*) FILTER (d.status = 'suppressed') AS suppressed,
       count(*) FILTER (d.status IN ('failed', 'unknown')) AS failed
FROM deliveries AS d JOIN actions_outbox AS o USING (action_id)
WHERE d.action_type = 'email'
"""
_INSIGHTS = """
SELECT sum(emails_delivered), sum(emails_opened), sum(emails_clicked), sum(emails_replied),
       sum(emails_bounced), sum(tasks_created), sum(tasks_completed), sum(tasks_overdue)
FROM action_insights
"""


def _pct(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def print_outcome(settings: Settings, closing: datetime, delivery_runs: int,
                  console: Console) -> None:
    with connect(settings.database_path, read_only=True) as con:
        summary = con.sql(
            "SELECT workflow, category, deployed, active, completed, exited, "
            "avg_days_to_complete, objective_met_rate FROM workflow_summary"
        ).fetchall()
        actions = con.sql(
            "SELECT action_type, count(*) FROM actions_outbox GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        sent, waited, deferred, capped, suppressed, failed = con.sql(_EMAILS).fetchall()[0]
        delivered, opened, clicked, replied, bounced, tasks, completed, overdue = (
            int(v or 0) for v in con.sql(_INSIGHTS).fetchall()[0])
    table = Table(title="workflow_summary")
    for column in _SUMMARY_COLUMNS:
        table.add_column(column)
    for row in summary:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)
    console.print("actions emitted: " + ", ".join(f"{kind} {n:,}" for kind, n in actions))
    delivery = settings.delivery_config()
    mode = "dry run, nothing left the machine" if delivery.dry_run else "sent for real"
    console.print(
        f"delivery ({mode}; {delivery_runs:,} runs along the quarter, then one at "
        f"{closing:%Y-%m-%d %H:%M}):\n"
        f"  emails: {sent:,} {'previewed' if delivery.dry_run else 'sent'} ({waited:,} of them "
        f"after waiting for quiet hours to end), "
        f"{capped:,} capped at {delivery.cap_per_day} a day per address, {suppressed:,} "
        f"suppressed, {failed:,} failed, {deferred:,} still waiting for quiet hours to end\n"
        f"  customers: {delivered:,} delivered, {opened:,} opened ({_pct(opened, delivered)}), "
        f"{clicked:,} clicked, {replied:,} replied, {bounced:,} bounced\n"
        f"  tasks: {tasks:,} created, {completed:,} completed, {overdue:,} overdue"
    )
    if delivery.dry_run:
        console.print(f"  would-be emails (.eml) and other actions (.json): "
                      f"{delivery.dry_run_dir}")
    console.print(
        f"\nBI copy: {settings.bi_path / DATABASE_FILE} (workflow_summary, workflow_dashboard, "
        "enrollments, transitions, actions_outbox, deliveries, action_insights): read reports "
        "there (`cswf report NAME`, `cswf.open()`), never from the pipeline's own "
        f"{settings.database_path.name}\n{_dagster_ui(settings)}"
    )


def _dagster_ui(settings: Settings) -> str:
    """How to look at the quarter's runs: `make ui` in this repository; in a project of its
    own (`cswf init`), `dg dev` on the instance the demo recorded in, if it recorded in one."""
    shown = ("then open http://localhost:3000 (Assets shows every tick of the quarter as a "
             "materialized partition; Runs has the run's full event log).")
    if (settings.root / "Makefile").is_file():
        return f"Dagster UI: `make ui`, {shown}"
    root = settings.root.resolve()
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return (f"Dagster UI: this demo's runs were not kept (DAGSTER_HOME is not set): run it "
                f"again with DAGSTER_HOME={root}, then `DAGSTER_HOME={root} dg dev` in {root} "
                "(after `pip install --no-deps -e .` there once) shows them on "
                "http://localhost:3000.")
    return (f"Dagster UI: `DAGSTER_HOME={home} dg dev` in {root} (after `pip install --no-deps "
            f"-e .` there once), {shown}")
