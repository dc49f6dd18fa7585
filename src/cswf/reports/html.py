"""`cswf report --html`: one self-contained page of the BI copy, to open or mail as a file.

Plotly's JavaScript is inlined once, so the page works offline and asks no server for anything.
Beside the charts it indexes the dry run's would-be emails (subject, recipient, a link to each
.eml), which otherwise are thousands of loose files.
"""

from __future__ import annotations

import email.policy
import os
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesHeaderParser
from pathlib import Path
from urllib.parse import quote, unquote

import duckdb
import jinja2
import plotly.offline
import polars as pl

from cswf.reports.charts import CHARTS, Chart
from cswf.reports.reader import BICopy

TEMPLATE = "page.html.j2"
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
SUMMARY = """
SELECT workflow, category, auto_deploy, deployed, active, completed, exited,
       avg_days_to_complete, objective_met_rate FROM workflow_summary
"""


@dataclass(frozen=True)
class Email:
    action_id: str
    to: str
    subject: str
    href: str  # the .eml, relative to the page


@dataclass(frozen=True)
class Section:
    chart: Chart
    html: str  # the figure's div and script; empty when there is no data
    why_empty: str = ""


@dataclass(frozen=True)
class Page:
    path: Path
    as_of: datetime | None
    drawn: list[str]
    empty: dict[str, str] = field(default_factory=dict)
    emails: int = 0

    def summary(self) -> str:
        empty = f"; no data yet for {', '.join(self.empty)}" if self.empty else ""
        return (f"wrote {self.path}: {len(self.drawn)} charts{empty}; {self.emails:,} would-be "
                "emails indexed. Open it in a browser (it works offline).")


def write_page(copy: BICopy, out: Path, dry_run_dir: Path | None) -> Page:
    """Render the page from `copy` (and the .eml files in `dry_run_dir`) to `out`."""
    with copy.connect() as con:
        sections = [_section(chart, con) for chart in CHARTS]
        summary = _optional(con, SUMMARY)
    as_of = copy.as_of
    emails = email_index(dry_run_dir, out.parent) if dry_run_dir is not None else []
    others = len(list(dry_run_dir.glob("*.json"))) if dry_run_dir and dry_run_dir.is_dir() else 0
    text = _environment().get_template(TEMPLATE).render(
        as_of=as_of, copy=_shown(copy.database), sections=sections, summary=summary, emails=emails,
        others=others, dry_run_dir=_shown(dry_run_dir) if dry_run_dir else None,
        plotly_js=plotly.offline.get_plotlyjs(),
    )
    _write_private(out, text)
    return Page(out, as_of, [s.chart.key for s in sections if s.html],
                {s.chart.key: s.why_empty for s in sections if not s.html}, len(emails))


def _section(chart: Chart, con: duckdb.DuckDBPyConnection) -> Section:
    frame, why = chart.frame(con)
    if frame is None:
        return Section(chart, "", why)
    figure = chart.draw(frame)
    html = figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{chart.key}",
                          config=PLOT_CONFIG, default_width="100%", default_height="auto")
    return Section(chart, html)


def _shown(path: Path) -> str:
    """A path as the reader typed it: relative to the working folder when inside it."""
    relative = os.path.relpath(path.resolve(), Path.cwd())
    return str(path) if relative.startswith("..") else relative


def _optional(con: duckdb.DuckDBPyConnection, query: str) -> pl.DataFrame | None:
    try:
        return con.sql(query).pl()
    except (duckdb.CatalogException, duckdb.BinderException):
        return None


def email_index(folder: Path, page_dir: Path) -> list[Email]:
    """Every .eml of a dry run, by action id, with its recipient and subject (headers only)."""
    if not folder.is_dir():
        return []
    parser = BytesHeaderParser(policy=email.policy.default)
    found = []
    for path in sorted(folder.glob("*.eml")):
        with path.open("rb") as handle:
            headers = parser.parse(handle)
        href = quote(os.path.relpath(path.resolve(), page_dir.resolve()))
        found.append(Email(unquote(path.stem), str(headers.get("To", "")),
                           str(headers.get("Subject", "")), href))
    return found


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        autoescape=jinja2.select_autoescape(default=True), trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def _write_private(path: Path, text: str) -> None:
    """Whole or not at all, readable by its owner only (it lists customers' addresses)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)
