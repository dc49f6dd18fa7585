"""Facts are built and held a chunk of days at a time: the chunks change nothing in the output."""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path

import pytest

from cswf import project
from cswf.demo.delivering import QuarterDelivery
from cswf.demo.generate import generate_book
from cswf.demo.responses import SimulatedAudience
from cswf.project import ticks as ticks_module
from cswf.project.ticks import tick_chunks
from cswf.settings import Settings, load_settings
from cswf.store.warehouse import connect

REPO = Path(__file__).resolve().parents[1]
TABLES = {"enrollment_history": "workflow, participant_id, valid_from",
          "transitions": "ALL", "actions_outbox": "action_id", "account_facts": "ALL",
          "action_events": "ALL"}


def test_chunks_hold_whole_dates_in_order() -> None:
    ticks = [datetime(2026, 6, d, h) for d in range(1, 11) for h in (0, 12)]
    chunks = tick_chunks(ticks, days=3)
    assert [len(c) for c in chunks] == [6, 6, 6, 2]
    assert [t for c in chunks for t in c] == ticks
    assert all(len({t.date() for t in c}) <= 3 for c in chunks)
    assert tick_chunks([]) == []


def _quarter(root: Path, chunk_days: int, asked: list[int]) -> dict[str, list]:
    """Run ten days of ticks in two runs; `asked` gets the ticks of every fact read or build."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ticks_module, "CHUNK_DAYS", chunk_days)
        for name in ("build_facts", "load_facts_range"):
            real = getattr(ticks_module, name)

            def counted(con: object, ticks: list, *args: object, _real=real, **kwargs: object
                        ) -> object:
                asked.append(len(ticks))
                return _real(con, ticks, *args, **kwargs)
            patch.setattr(ticks_module, name, counted)
        return _run(load_settings(root))


def _run(settings: Settings) -> dict[str, list]:
    ticks = project.ticks_in(settings, datetime(2026, 5, 31), datetime(2026, 6, 9, 21))
    with connect(settings.database_path) as con:
        project.ingest(con, settings, ticks[-1])
        stored = project.store_facts(con, settings, ticks)
        assert stored.rows == con.sql("SELECT count(*) FROM account_facts").fetchall()[0][0]
        assert stored.latest["as_of"].unique().to_list() == [ticks[-1]]
        # Two runs, so the second starts from a stored state in the middle of a chunk.
        for part in (ticks[:37], ticks[37:]):
            project.run_ticks(con, settings, project.load_workflows(settings), part,
                              respond=SimulatedAudience(
                                  QuarterDelivery(settings.delivery_config())))
        return {t: con.sql(f"SELECT * EXCLUDE (recorded_at, detail) FROM {t} ORDER BY {o}")
                .fetchall()
                if t == "action_events" else con.sql(f"FROM {t} ORDER BY {o}").fetchall()
                for t, o in TABLES.items()}


def test_a_run_in_chunks_of_one_day_equals_one_chunk(tmp_path: Path) -> None:
    results, asked = [], {1: [], 100: []}
    for chunk_days in (1, 100):
        root = tmp_path / f"chunks{chunk_days}"
        shutil.copytree(REPO / "workflow_specs", root / "workflow_specs")
        (root / "cswf.yaml").write_text(
            f"database: {root / 'cswf.duckdb'}\nlanding_dir: {tmp_path / 'land'}\n"
            "tick_start: '2026-05-31 00:00'\n")
        results.append(_quarter(root, chunk_days, asked[chunk_days]))
    # The memory guard: one day of facts at a time (8 ticks, plus the tick before a run).
    assert max(asked[1]) <= 9 < max(asked[100])
    assert results[0]["actions_outbox"], "the book should make the workflows act"
    for table in TABLES:
        assert results[0][table] == results[1][table], table


@pytest.fixture(autouse=True)
def _book(tmp_path: Path) -> None:
    generate_book(tmp_path / "land", accounts=80, days=45, start=date(2026, 5, 1))
