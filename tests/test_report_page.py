"""`cswf report --html`: one self-contained page, opened in a real headless Chromium: every chart
with data drew, the console logged no error, and nothing was fetched from anywhere."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import duckdb
import pytest
from bi_project import built, cli
from browser import Browser, chromium

from cswf.reports.html import write_page
from cswf.reports.reader import BICopy

EVERY_DRAWN_CHART_HAS_SVG = (
    "Array.from(document.querySelectorAll('section[data-state=drawn]'))"
    ".every(s => s.querySelector('.plotly-graph-div svg.main-svg'))"
)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = built(tmp_path_factory)
    out = tmp_path_factory.mktemp("page") / "report.html"
    said = cli("report", "--html", "--out", str(out), "--root", str(root))
    assert said.startswith(f"wrote {out}: ")
    return out


def test_the_page_is_self_contained_and_private(page: Path) -> None:
    text = page.read_text()
    assert os.stat(page).st_mode & 0o777 == 0o600
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=\"?https?:", text)
    assert "Plotly.newPlot" in text and text.count("<section data-chart=") == 5


def test_the_email_index_lists_the_dry_run(page: Path, tmp_path_factory: pytest.TempPathFactory
                                           ) -> None:
    outbox = built(tmp_path_factory) / "outbox"
    emails = sorted(outbox.glob("*.eml"))
    assert emails
    text = page.read_text()
    assert f"Would-be emails of the dry run ({len(emails)})" in text
    first = emails[0]
    assert os.path.relpath(first, page.parent).replace("%", "%25") in text  # a link to the .eml


def test_a_missing_report_is_no_data_or_a_fallback(tmp_path: Path,
                                                  tmp_path_factory: pytest.TempPathFactory
                                                  ) -> None:
    """Reports arrive over time: without objective_trend that chart says so; without
    step_funnel the funnel is counted from transitions."""
    bi = tmp_path / "bi"
    shutil.copytree(built(tmp_path_factory) / "bi", bi, symlinks=True)
    with duckdb.connect(str(bi / "cswf.duckdb")) as con:
        for name in ("objective_trend", "step_funnel"):
            con.execute(f"DROP TABLE IF EXISTS {name}")
    made = write_page(BICopy(bi), tmp_path / "p.html", None)
    assert made.empty["objective"] == "the report objective_trend is not published yet"
    assert {"funnel", "actions", "overdue"} <= set(made.drawn)
    assert made.emails == 0


def test_every_chart_renders_in_a_real_browser(page: Path) -> None:
    binary = chromium()
    if binary is None:
        pytest.skip("no Chromium: `make test` installs Debian's chromium (apt-get) and could "
                    "not here; this test needs it")
    with Browser(binary) as browser:
        visit = browser.visit(page.as_uri(), EVERY_DRAWN_CHART_HAS_SVG, timeout=45)
        states = browser.evaluate(
            "Array.from(document.querySelectorAll('section[data-chart]'))"
            ".map(s => [s.dataset.chart, s.dataset.state, "
            "s.querySelectorAll('svg.main-svg').length])")
        rows = browser.evaluate("document.querySelectorAll('#email-index tbody tr').length")
        browser.evaluate("(() => { const box = document.getElementById('email-filter');"
                         "box.value = 'zzz-nobody'; box.dispatchEvent(new Event('input')); })()")
        shown = browser.evaluate(
            "Array.from(document.querySelectorAll('#email-index tbody tr'))"
            ".filter(r => !r.hidden).length")
    assert visit.errors == []
    assert {url.split(":")[0] for url in visit.requests} <= {"file", "data", "blob", "about"}
    drawn = [key for key, state, svgs in states if state == "drawn"]
    assert len(drawn) >= 3 and all(svgs > 0 for _, state, svgs in states if state == "drawn")
    assert rows > 0 and shown == 0
