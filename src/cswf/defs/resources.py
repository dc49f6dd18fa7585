"""Resources: the cswf project (its settings), the DuckDB warehouse, who answers actions, and
who watches ticks go by."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from cswf.engine.tick import TickResult
from cswf.project import OnTick, Respond
from cswf.settings import Settings, load_settings
from cswf.store.warehouse import WriteOutcome, connect

# How long a step waits for the working database before it fails (and says why).
LOCK_WAIT_SECONDS = 600.0


class CswfProject(dg.ConfigurableResource):
    """The cswf project folder; `settings()` reads its cswf.yaml (CSWF_* variables override).

    `overrides` holds settings that were given in code rather than in cswf.yaml (e.g. a CLI flag),
    so a run sees exactly the settings its definitions were built from.
    """

    root: str
    overrides: dict[str, Any] = Field(
        default={}, description="Settings given in code, over cswf.yaml and CSWF_* variables."
    )

    def settings(self) -> Settings:
        return load_settings(Path(self.root), **self.overrides)


class Audience(dg.ConfigurableResource):
    """Who answers the actions between ticks. In production nobody does here: results land as
    files (`action_events/`). A simulation (the demo) supplies its own subclass."""

    # A resource needs at least one field: Dagster reads a field-less one through pydantic's
    # deprecated `__fields__`, which warns on every instance.
    label: str = Field(
        default="",
        description="Who answers, as shown in the UI; empty: nobody (results arrive as files).",
    )

    def responder(self) -> Respond | None:
        return None


def ignore_tick(outcome: WriteOutcome, result: TickResult) -> None:
    """The `tick_observer` resource by default: nobody watches (the CLI's progress bar does)."""


TickObserver = dg.ResourceParam[OnTick]


def project_resource(settings: Settings) -> CswfProject:
    """A CswfProject that reproduces `settings` (only what differs from the files is stored)."""
    root = Path(settings.root).resolve()
    from_files = load_settings(root).model_dump(mode="json")
    wanted = settings.model_dump(mode="json")
    overrides = {k: v for k, v in wanted.items() if from_files.get(k) != v}
    return CswfProject(root=str(root), overrides=overrides)


def warehouse_resource(settings: Settings) -> DuckDBResource:
    config = {"memory_limit": settings.memory_limit} if settings.memory_limit else {}
    return DuckDBResource(database=str(settings.database_path.resolve()),
                          connection_config=config)


@contextmanager
def open_warehouse(duck: DuckDBResource) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection that is closed even when the body raises (one writer process at a time).

    If another process holds the file (a CLI command, a notebook on the working database), the
    step waits up to LOCK_WAIT_SECONDS and says so in the run's log, naming the holder; past
    that it fails with the same one line the CLI prints.
    """
    log = dg.get_dagster_logger()
    con = connect(duck.database, wait=LOCK_WAIT_SECONDS, on_wait=log.warning,
                  memory_limit=duck.connection_config.get("memory_limit"))
    try:
        yield con
    finally:
        con.close()
