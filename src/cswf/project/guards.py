"""Held ticks, as a person or a scheduler meets them: the limits that apply to each workflow,
the check that a tick may run, and the decisions `cswf approve` / `cswf reject` record.

The comparison itself is pure (`engine.guard`); the holds and norms live in the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import polars as pl

from cswf.engine.guard import EXITS, GUARDS, LIMIT_SCHEMA, describe
from cswf.ingest.checks import existing_tables
from cswf.settings import Settings
from cswf.specs.loader import LoadedWorkflow
from cswf.store.holds import APPROVED, HELD, REJECTED, decide, holds, sent_since


class TickHeld(RuntimeError):
    """A guard held a tick: nothing of it is delivered and no later tick runs until a person
    approves or rejects it. The message is the one line the CLI prints."""

    def __init__(self, as_of: datetime, message: str) -> None:
        super().__init__(message)
        self.as_of = as_of


def guard_limits(settings: Settings, workflows: Sequence[LoadedWorkflow]) -> pl.DataFrame:
    """workflow, guard, factor, minimum for every guard that applies: cswf.yaml's `guards:`,
    overridden field by field by each spec's own `guards:` block."""
    rows = []
    defaults = settings.guards
    for workflow in workflows:
        own = workflow.spec.guards
        enabled = own.enabled if own is not None and own.enabled is not None else defaults.enabled
        if not enabled:
            continue
        for guard in GUARDS:
            base = getattr(defaults, guard)
            over = getattr(own, guard) if own is not None else None
            factor_name = "share" if guard == EXITS else "ratio"
            factor = getattr(over, factor_name, None) if over is not None else None
            minimum = getattr(over, "min", None) if over is not None else None
            rows.append({"workflow": workflow.name, "guard": guard,
                         "factor": factor if factor is not None else getattr(base, factor_name),
                         "minimum": minimum if minimum is not None else base.min})
    return pl.DataFrame(rows, schema=LIMIT_SCHEMA)


def tick_text(as_of: datetime) -> str:
    """How a tick is named on the command line (`cswf approve 2026-06-10T03:00`)."""
    return f"{as_of:%Y-%m-%dT%H:%M}"


def reasons(found: pl.DataFrame) -> list[str]:
    """Each held guard in words (rows of tick_holds or of engine.guard.tripped)."""
    return [describe(r["workflow"], r["guard"], r["observed"], r["norm"], r["threshold"],
                     r["minimum"]) for r in found.iter_rows(named=True)]


def held_line(as_of: datetime, found: pl.DataFrame, *, refused: bool = False) -> str:
    """The one line that says a tick is held: which tick, workflow and guard, observed against
    the norm, and the commands that decide it."""
    said = reasons(found)
    more = f" (and {len(said) - 1} more, see `cswf holds`)" if len(said) > 1 else ""
    first = found.row(0, named=True)
    what = "no later tick runs until it is decided" if refused else \
        "nothing of it is delivered and later ticks wait"
    tick = tick_text(as_of)
    return (f"tick {as_of:%Y-%m-%d %H:%M} is held by the {first['guard']} guard: {said[0]}{more}"
            f" — {what}: `cswf approve {tick}` releases it, `cswf reject {tick}` discards it "
            "and the ticks after it")


def open_hold(con: duckdb.DuckDBPyConnection) -> tuple[datetime, pl.DataFrame] | None:
    """The earliest undecided held tick and its holds, or None."""
    if "tick_holds" not in existing_tables(con):
        return None
    waiting = holds(con, HELD)
    if waiting.is_empty():
        return None
    first = waiting["as_of"][0]
    return first, waiting.filter(pl.col("as_of") == first)


def require_no_hold(con: duckdb.DuckDBPyConnection) -> None:
    """Refuse to tick past a held tick: TickHeld with the line that says what to do."""
    found = open_hold(con)
    if found is not None:
        as_of, rows = found
        raise TickHeld(as_of, held_line(as_of, rows, refused=True))


def _held(con: duckdb.DuckDBPyConnection, as_of: datetime) -> pl.DataFrame:
    found = open_hold(con)
    waiting = holds(con, HELD) if found is not None else None
    if waiting is None or waiting.filter(pl.col("as_of") == as_of).is_empty():
        held = ", ".join(sorted({tick_text(t) for t in waiting["as_of"]})) \
            if waiting is not None else ""
        raise LookupError(f"tick {tick_text(as_of)} is not held" +
                          (f" (held: {held})" if held else " (no tick is held)"))
    return waiting.filter(pl.col("as_of") == as_of)


def approve(con: duckdb.DuckDBPyConnection, as_of: datetime, by: str, reason: str | None,
            at: datetime) -> pl.DataFrame:
    """Release a held tick: delivery may send it, later ticks may run. Returns its holds."""
    rows = _held(con, as_of)
    decide(con, as_of, APPROVED, by, reason, at)
    return rows


def reject(con: duckdb.DuckDBPyConnection, as_of: datetime, by: str, reason: str | None,
           at: datetime) -> int:
    """Discard a held tick and every later one (kept: the holds, now `rejected`), so it runs
    again once the snapshot is fixed. Returns how many ticks went."""
    _held(con, as_of)
    sent = sent_since(con, as_of)
    if sent:  # delivery never sends from a held tick: this would be a bug, never papered over
        raise RuntimeError(f"{sent} action(s) of tick {tick_text(as_of)} or later were handed "
                           "to a sender; not rewinding them")
    return decide(con, as_of, REJECTED, by, reason, at)
