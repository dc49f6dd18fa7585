"""The engine's tables in DuckDB, written replace-by-tick.

Enrollment state is kept as versions (`enrollment_history`, valid over [valid_from, valid_to)),
so the state just before any tick can be read back, and a tick writes only the rows it changed.
A tick that is run again with the same inputs produces the same rows and writes nothing; if its
output differs (the facts or specs changed), that tick and every later one are rewound first,
since they were computed from a history that no longer holds. Actions already delivered are
never deleted by that: see store/history.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from cswf.engine.assign import WORKLOAD_SCHEMA
from cswf.engine.frames import ENROLLMENT_SCHEMA, conform, empty
from cswf.engine.guard import ACTIVE_SCHEMA
from cswf.engine.phases import Phases, collecting, phase
from cswf.engine.tick import EVENT_SCHEMA, TickResult
from cswf.ingest.checks import existing_tables
from cswf.specs.loader import LoadedWorkflow
from cswf.store.compaction import defer_merges
from cswf.store.history import (
    DeliveredHistory,
    Rewrite,
    plan_rewrite,
    reclaim,
    supersede_delivered,
)
from cswf.store.lock import OnWait, retry_while_locked
from cswf.store.lock import WarehouseLocked as WarehouseLocked  # raised by connect
from cswf.store.private import new_folders, private_file, private_umask
from cswf.store.tables import HISTORY
from cswf.store.transaction import transaction

KEY = ("workflow", "participant_id")
CHANGED = "cswf_changed_enrollments"  # the tick's changed rows, registered while written
NEW_ACTIONS, NEW_TRANSITIONS = "cswf_new_actions", "cswf_new_transitions"  # (likewise)
# Rows from which a tick's write is a bulk write (_bulk_write): one of DuckDB's row groups.
BULK_ROWS = 122_880

__all__ = ["DeliveredHistory", "Rewrite"]  # re-exported: what a refused re-run raises


def connect(
    path: Path | str, *, read_only: bool = False, wait: float = 0.0, on_wait: OnWait | None = None,
    memory_limit: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the working database. If another process holds it, wait up to `wait` seconds
    (`on_wait` hears that we wait: a Dagster step passes its logger), then WarehouseLocked, whose
    message names the holder and what to do. `memory_limit` (settings' `memory_limit`) is set
    for DuckDB in this process."""
    if str(path) == ":memory:":
        return duckdb.connect(":memory:", read_only=read_only)
    private_umask()  # DuckDB creates the file and its .wal itself (store/private.py)
    new_folders(Path(path).parent)
    con = retry_while_locked(Path(path), lambda: duckdb.connect(str(path), read_only=read_only),
                             wait=wait, on_wait=on_wait)
    for made in (Path(path), Path(f"{path}.wal")):  # also those an older version left readable
        if made.exists() and not read_only:
            private_file(made)
    if not read_only:
        defer_merges(con)
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit.replace(chr(39), '')}'").fetchall()
    return con


def load_state(con: duckdb.DuckDBPyConnection, before: datetime) -> pl.DataFrame:
    """The working state just before the tick at `before`. A column added to enrollments after
    the warehouse was made (`cohort`) reads as null until the next tick adds it: readers that
    open the warehouse read-only (explain, preview, backtest) cannot add it themselves."""
    return _enrollments(con.sql(
        f"SELECT * EXCLUDE (valid_from, valid_to) FROM {HISTORY} "
        "WHERE valid_from < $t AND (valid_to IS NULL OR valid_to >= $t)",
        params={"t": before},
    ).pl())


def load_changed(con: duckdb.DuckDBPyConnection, as_of: datetime) -> pl.DataFrame:
    """The enrollment rows the tick at `as_of` wrote: its `changed_state`, read back."""
    return _enrollments(con.sql(
        f"SELECT * EXCLUDE (valid_from, valid_to) FROM {HISTORY} WHERE valid_from = $t",
        params={"t": as_of},
    ).pl())


def load_tick(con: duckdb.DuckDBPyConnection, as_of: datetime) -> TickResult:
    """The tick at `as_of` as stored, for an observer of a tick whose rows were never held
    (a sharded tick's): `state` holds the enrollments it changed, never the book."""
    t = {"t": as_of}
    actions = con.sql("FROM actions_outbox WHERE tick = $t", params=t).pl()
    transitions = con.sql("FROM transitions WHERE tick = $t", params=t).pl()
    logged = con.execute("SELECT participants, workflows FROM tick_log WHERE as_of = $t",
                         t).fetchall()
    participants, workflows = logged[0] if logged else (0, 0)
    return TickResult(as_of, participants, workflows, load_changed(con, as_of), actions,
                      transitions)


def _enrollments(frame: pl.DataFrame) -> pl.DataFrame:
    added = [pl.lit(None, dtype).alias(name) for name, dtype in ENROLLMENT_SCHEMA.items()
             if name not in frame.columns]
    return frame.with_columns(added).select(list(ENROLLMENT_SCHEMA)).cast(
        ENROLLMENT_SCHEMA)  # type: ignore[arg-type]


def active_before(con: duckdb.DuckDBPyConnection, before: datetime) -> pl.DataFrame:
    """Each workflow's active participants just before the tick at `before` (ACTIVE_SCHEMA),
    counted by DuckDB: what `load_state` would give the guards, without reading the book."""
    return con.sql(
        f"SELECT workflow, count(*) AS active FROM {HISTORY} "
        "WHERE valid_from < $t AND (valid_to IS NULL OR valid_to >= $t) AND status = 'active' "
        "GROUP BY workflow",
        params={"t": before},
    ).pl().cast(ACTIVE_SCHEMA)  # type: ignore[arg-type]


def save_facts(con: duckdb.DuckDBPyConnection, facts: pl.DataFrame) -> None:
    """Replace the facts of the ticks in `facts` (table account_facts, one row per tick and
    participant). A field the facts gain (an extra field declared later) adds its column; a
    field they lose stays a column, NULL in the ticks without it."""
    if not _has_facts(con):
        con.execute("CREATE TABLE account_facts AS SELECT * FROM facts LIMIT 0").fetchall()
    fact_ticks = facts.select(pl.col("as_of").unique())  # noqa: F841 (read by DuckDB)
    with transaction(con):
        _add_new_columns(con, "account_facts", facts)
        con.execute(
            "DELETE FROM account_facts WHERE as_of IN (SELECT as_of FROM fact_ticks)"
        ).fetchall()
        con.execute("INSERT INTO account_facts BY NAME SELECT * FROM facts").fetchall()


def _add_new_columns(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    """Add to `table` the columns of `frame` it lacks, with the types DuckDB reads them as."""
    stored = {row[0] for row in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $t",
        {"t": table}).fetchall()}
    relation = con.from_arrow(frame.head(0).to_arrow())
    for name, kind in zip(relation.columns, relation.types, strict=True):
        if name not in stored:
            column = '"' + name.replace('"', '""') + '"'
            con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}").fetchall()


def _has_facts(con: duckdb.DuckDBPyConnection) -> bool:
    return con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'account_facts'"
    ).fetchall()[0][0] > 0


def fact_projection(columns: Iterable[str] | None) -> str:
    """Only the columns a tick reads: participant_id, as_of and the given fields."""
    if columns is None:
        return "*"
    names = ["participant_id", "as_of", *sorted(set(columns) - {"participant_id", "as_of"})]
    return ", ".join(f'"{c}"' for c in names)


def load_facts(
    con: duckdb.DuckDBPyConnection, as_of: datetime, columns: Iterable[str] | None = None,
) -> pl.DataFrame | None:
    """The stored facts of one tick (only `columns`, if given: `fact_projection`)."""
    if not _has_facts(con):
        return None
    frame = con.sql(f"SELECT {fact_projection(columns)} FROM account_facts "
                    "WHERE as_of = $t", params={"t": as_of}).pl()
    return frame if frame.height else None


def load_facts_range(
    con: duckdb.DuckDBPyConnection,
    ticks: Sequence[datetime],
    columns: Iterable[str] | None = None,
) -> pl.DataFrame:
    """The stored facts of these ticks, in one read (`columns`: as for load_facts)."""
    if not _has_facts(con):
        raise LookupError("no facts stored yet: run the facts stage (account_facts) first")
    wanted = pl.DataFrame({"as_of": list(ticks)}, schema={"as_of": pl.Datetime("us")})  # noqa: F841
    return con.sql(
        f"SELECT {fact_projection(columns)} FROM account_facts SEMI JOIN wanted USING (as_of) "
        "ORDER BY as_of, participant_id"
    ).pl()


def facts_stored(con: duckdb.DuckDBPyConnection, as_of: datetime) -> bool:
    """Whether the facts stage stored the accounts' facts of the tick at `as_of`."""
    return _has_facts(con) and con.execute(
        "SELECT count(*) > 0 FROM account_facts WHERE as_of = $t", {"t": as_of}
    ).fetchall()[0][0]


def running_versions(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, str, list[str]]]:
    """Each workflow's latest stored version: (version, state, structure)."""
    rows = con.execute(
        "SELECT workflow, version, state, structure FROM workflow_versions "
        "QUALIFY row_number() OVER (PARTITION BY workflow ORDER BY first_seen_tick DESC, "
        "version) = 1"
    ).fetchall()
    return {w: (v, state, list(parts or [])) for w, v, state, parts in rows}


@dataclass(frozen=True)
class StoredWorkflow:
    """What the lifecycle rules compare an edit with: the latest version run, and whether any
    version ever ran enabled or paused."""

    version: str
    state: str
    structure: list[str]
    object: str
    launch: str
    ever_running: bool


def stored_workflows(con: duckdb.DuckDBPyConnection) -> dict[str, StoredWorkflow]:
    """Each workflow's latest stored version, with its participant type and launch option."""
    rows = con.execute(
        "SELECT workflow, version, state, structure, "
        "coalesce(json_extract_string(spec_json, '$.object'), 'account'), "
        "coalesce(json_extract_string(spec_json, '$.launch'), 'everyone'), "
        "bool_or(state IN ('enabled', 'paused')) OVER (PARTITION BY workflow) "
        "FROM workflow_versions QUALIFY row_number() OVER (PARTITION BY workflow "
        "ORDER BY first_seen_tick DESC, version) = 1"
    ).fetchall()
    return {w: StoredWorkflow(v, state, list(parts or []), obj, launch, bool(ever))
            for w, v, state, parts, obj, launch, ever in rows}


def inside_by_workflow(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """How many participants are inside (active) each workflow, by the stored state."""
    exists = con.execute("SELECT count(*) FROM information_schema.tables "
                         "WHERE table_name = 'enrollments'").fetchall()[0][0]
    if not exists:
        return {}
    rows = con.execute("SELECT workflow, count(*) FROM enrollments WHERE status = 'active' "
                       "GROUP BY workflow").fetchall()
    return dict(rows)


def record_versions(
    con: duckdb.DuckDBPyConnection, workflows: list[LoadedWorkflow], as_of: datetime,
    default_category: str | None = None,
) -> None:
    """Keep every spec version ever run, with the first tick that ran it, and its effective
    category (the spec's, else `default_category`: what its actions carry)."""
    rows = pl.DataFrame(  # noqa: F841 (read by DuckDB)
        [
            {
                "workflow": w.name,
                "version": w.version,
                "state": w.spec.state.value,
                "category": w.spec.category or default_category,
                "priority": w.spec.priority,
                "auto_deploy": w.spec.entry is not None and w.spec.admits_new,
                "has_objective": w.spec.objective is not None,
                "spec_json": w.spec.model_dump_json(by_alias=True),
                "source_file": w.file.name,
                "first_seen_tick": as_of,
                "spec_text": w.text,
                "structure": w.structure(),
            }
            for w in workflows
        ],
        schema={"workflow": pl.String, "version": pl.String, "state": pl.String,
                "category": pl.String, "priority": pl.Int32, "auto_deploy": pl.Boolean,
                "has_objective": pl.Boolean,
                "spec_json": pl.String, "source_file": pl.String,
                "first_seen_tick": pl.Datetime("us"), "spec_text": pl.String,
                "structure": pl.List(pl.String)},
    )
    con.execute(
        "INSERT INTO workflow_versions SELECT * FROM rows ON CONFLICT (workflow, version) "
        "DO UPDATE SET first_seen_tick = least(first_seen_tick, excluded.first_seen_tick), "
        "category = coalesce(workflow_versions.category, excluded.category)"
    ).fetchall()


@dataclass(frozen=True)
class WriteOutcome:
    as_of: datetime
    status: str  # written | unchanged | rewritten
    rewound_ticks: int = 0
    rewrite: Rewrite | None = None  # the delivered actions a rewrite superseded
    phases: Phases = field(default_factory=dict, compare=False)  # seconds per table written


OnRewrite = Callable[[Rewrite], None]


@dataclass(frozen=True)
class TickRows:
    """A tick's rows where DuckDB reads them, and how many there are: frames this process
    registered (one process), or the shards' Parquet files (a sharded tick's global step,
    which streams them into the tables and never holds them). Each relation is SQL a FROM
    takes: a registered name or a parenthesized query."""

    as_of: datetime
    participants: int
    workflows: int
    changed: str
    actions: str
    transitions: str
    counts: dict[str, int]  # changed, actions, transitions and each of LOGGED_COUNTS


def write_tick(
    con: duckdb.DuckDBPyConnection, result: TickResult, *, rewrite_delivered: bool = False,
    on_rewrite: OnRewrite | None = None,
) -> WriteOutcome:
    """Store one tick's changed state, actions and transitions, replacing that tick.

    A tick stored before with other results is rewound with every later tick, in the same
    transaction as the new rows. If those ticks hold delivered actions, that needs
    `rewrite_delivered` (else DeliveredHistory); `on_rewrite` hears what will change first."""
    changed = result.changed_state
    # (three comparisons: grouping a busy tick's 1.9M transitions by their name took
    # 0.27 GiB, the busy tick's peak)
    logged = {} if result.transitions.is_empty() else result.transitions.select(
        (pl.col("transition") == kind).sum().alias(kind) for kind in LOGGED_COUNTS
    ).row(0, named=True)
    counts = {"changed": changed.height, "actions": result.actions.height,
              "transitions": result.transitions.height,
              **{kind: int(logged.get(kind, 0)) for kind in LOGGED_COUNTS}}
    # Local frames are read by DuckDB by name; these names must not be table names.
    frames = {CHANGED: changed, NEW_ACTIONS: result.actions,
              NEW_TRANSITIONS: result.transitions}
    try:
        for name, frame in frames.items():
            con.register(name, arrow(frame))
        return write_rows(con, TickRows(result.as_of, result.participants, result.workflows,
                                        CHANGED, NEW_ACTIONS, NEW_TRANSITIONS, counts),
                          rewrite_delivered=rewrite_delivered, on_rewrite=on_rewrite)
    finally:
        for name in frames:
            con.unregister(name)


def write_rows(
    con: duckdb.DuckDBPyConnection, rows: TickRows, *, rewrite_delivered: bool = False,
    on_rewrite: OnRewrite | None = None,
) -> WriteOutcome:
    """`write_tick` of rows DuckDB reads where they are (TickRows)."""
    phases: Phases = {}
    with collecting(phases), phase("write other"):
        outcome = _write_rows(con, rows, rewrite_delivered, on_rewrite)
    return WriteOutcome(outcome.as_of, outcome.status, outcome.rewound_ticks, outcome.rewrite,
                        phases)


def _write_rows(
    con: duckdb.DuckDBPyConnection, rows: TickRows, rewrite_delivered: bool,
    on_rewrite: OnRewrite | None,
) -> WriteOutcome:
    as_of, counts = rows.as_of, rows.counts
    rewrite = None
    if _tick_exists(con, as_of):
        if _same_as_stored(con, rows):
            return WriteOutcome(as_of, "unchanged")
        rewrite = plan_rewrite(con, as_of)
        if rewrite.actions and not rewrite_delivered:
            raise DeliveredHistory(rewrite)
        if rewrite.actions and on_rewrite is not None:
            on_rewrite(rewrite)
    large = counts["changed"] + counts["actions"] + counts["transitions"] >= BULK_ROWS
    # (the settings outside the transaction: restored after a rollback, not in an aborted one)
    with _bulk_write(con) if large else nullcontext(), transaction(con):
        if rewrite is not None:
            _rewind_rows(con, as_of)
        # A statement costs about a millisecond even with nothing to write: skip those.
        if counts["changed"]:
            with phase("write enrollment_history"):
                _write_history(con, rows.changed, as_of)
        if counts["actions"]:
            with phase("write actions_outbox"):
                con.execute(f"INSERT INTO actions_outbox SELECT * FROM {rows.actions}"
                            ).fetchall()
                if rewrite is not None or _any_superseded(con):
                    reclaim(con, rows.actions)
        if counts["transitions"]:
            with phase("write transitions"):
                con.execute(f"INSERT INTO transitions SELECT * FROM {rows.transitions}"
                            ).fetchall()
        con.execute(
            "INSERT INTO tick_log VALUES ($t, $p, $w, $e, $x, $c, $a, $n)",
            {
                "t": as_of,
                "p": rows.participants,
                "w": rows.workflows,
                "e": counts["entered"],
                "x": counts["exited"],
                "c": counts["completed"],
                "a": counts["actions"],
                "n": counts["changed"],
            },
        ).fetchall()
    if rewrite is None:
        return WriteOutcome(as_of, "written")
    return WriteOutcome(as_of, "rewritten", rewrite.ticks, rewrite if rewrite.actions else None)


LOGGED_COUNTS = ("entered", "exited", "completed")  # the transitions tick_log counts


@contextmanager
def _bulk_write(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """How DuckDB stores a tick's rows when they fill a row group or more (settings of the
    whole DuckDB instance, restored after; a small tick's write, the demo's, is left alone):
    - with all its threads, in whatever order they finish (a table's rows have no order a
      reader may rely on: every report sorts): half the time of an ordered insert for the
      transitions of a busy tick;
    - one row group a thread buffered before it goes to the file, not five: 0.2-0.4 GiB less
      at the peak of a busy or first tick at 1M participants, and no slower."""
    settings = {"preserve_insertion_order": "false", "write_buffer_row_group_count": "1"}
    before = con.execute(
        "SELECT " + ", ".join(f"current_setting('{name}')" for name in settings)).fetchall()[0]
    for name, value in settings.items():
        con.execute(f"SET {name} = {value}").fetchall()
    try:
        yield
    finally:
        for name, value in zip(settings, before, strict=True):
            con.execute(f"SET {name} = {value}").fetchall()


def arrow(frame: pl.DataFrame) -> pa.Table:
    """`frame` as Arrow for DuckDB to read, without copying its strings: Polars' own string
    views, which DuckDB reads as they are (the default conversion, to large strings, copies
    every string: for a busy tick's rows, seconds and a gibibyte)."""
    return frame.to_arrow(compat_level=pl.CompatLevel.newest())


def _write_history(con: duckdb.DuckDBPyConnection, changed: str, as_of: datetime) -> None:
    """Close the changed enrollments' current versions and add the new ones (`changed`: a
    relation of TickRows)."""
    con.execute(
        f"UPDATE {HISTORY} AS h SET valid_to = $t FROM {changed} AS c "
        "WHERE h.workflow = c.workflow AND h.participant_id = c.participant_id "
        "AND h.valid_to IS NULL",
        {"t": as_of},
    ).fetchall()
    con.execute(
        f"INSERT INTO {HISTORY} BY NAME SELECT *, $t AS valid_from, NULL AS valid_to "
        f"FROM {changed}",
        {"t": as_of},
    ).fetchall()


def _tick_exists(con: duckdb.DuckDBPyConnection, as_of: datetime) -> bool:
    rows = con.execute("SELECT count(*) FROM tick_log WHERE as_of = $t", {"t": as_of}).fetchall()
    return rows[0][0] > 0


def _same_as_stored(con: duckdb.DuckDBPyConnection, rows: TickRows) -> bool:
    """Whether the stored tick holds exactly these rows (as multisets: a table's rows have no
    order), compared by DuckDB where the rows are."""
    stored = {
        "changed": f"SELECT * EXCLUDE (valid_from, valid_to) FROM {HISTORY} WHERE valid_from = $t",
        "actions": "SELECT * FROM actions_outbox WHERE tick = $t",
        "transitions": "SELECT * FROM transitions WHERE tick = $t",
    }
    fresh = {"changed": rows.changed, "actions": rows.actions,
             "transitions": rows.transitions}
    t = {"t": rows.as_of}
    for name, query in stored.items():
        height = con.execute(f"SELECT count(*) FROM ({query})", t).fetchall()[0][0]
        if height != rows.counts[name]:
            return False
        columns = ", ".join(f'"{c}"' for c in con.sql(f"SELECT * FROM {fresh[name]} LIMIT 0"
                                                      ).columns)
        differ = con.execute(f"SELECT count(*) FROM (SELECT {columns} FROM ({query}) EXCEPT ALL "
                             f"SELECT {columns} FROM {fresh[name]})", t).fetchall()[0][0]
        if differ:
            return False
    return True


def rewind(con: duckdb.DuckDBPyConnection, from_tick: datetime) -> int:
    """Forget the tick at `from_tick` and every later one, keeping their delivered actions as
    superseded (store/history.py); returns how many ticks went."""
    t = {"t": from_tick}
    gone = con.execute("SELECT count(*) FROM tick_log WHERE as_of >= $t", t).fetchall()[0][0]
    with transaction(con):
        _rewind_rows(con, from_tick)
    return int(gone)


def _rewind_rows(con: duckdb.DuckDBPyConnection, from_tick: datetime) -> None:
    t = {"t": from_tick}
    supersede_delivered(con, from_tick)
    con.execute(f"DELETE FROM {HISTORY} WHERE valid_from >= $t", t).fetchall()
    con.execute(f"UPDATE {HISTORY} SET valid_to = NULL WHERE valid_to >= $t", t).fetchall()
    con.execute("DELETE FROM actions_outbox WHERE tick >= $t", t).fetchall()
    con.execute("DELETE FROM transitions WHERE tick >= $t", t).fetchall()
    con.execute("DELETE FROM tick_log WHERE as_of >= $t", t).fetchall()


def _any_superseded(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether any action is superseded: later ticks of a rewriting run may emit it again."""
    return bool(con.execute("SELECT EXISTS (FROM superseded_actions)").fetchall()[0][0])


def last_tick(con: duckdb.DuckDBPyConnection) -> datetime | None:
    return con.execute("SELECT max(as_of) FROM tick_log").fetchall()[0][0]


def load_workload(con: duckdb.DuckDBPyConnection, before: datetime) -> pl.DataFrame:
    """Group-owned tasks emitted before a tick: round robin goes on from them, least loaded
    counts the open ones."""
    return con.sql(
        "SELECT action_id, owner_group, assignee FROM actions_outbox "
        "WHERE tick < $t AND action_type = 'task' AND owner_group IS NOT NULL ORDER BY action_id",
        params={"t": before},
    ).pl().cast(WORKLOAD_SCHEMA)  # type: ignore[arg-type]


def load_completions(con: duckdb.DuckDBPyConnection, until: datetime) -> pl.DataFrame:
    """The `completed` events by `until`: of the action results, all that assigning group
    tasks reads (least loaded counts a task open until one)."""
    if "action_events" not in existing_tables(con):
        return empty(EVENT_SCHEMA)
    return conform(con.sql(
        "SELECT action_id, event_type, occurred_at FROM action_events "
        "WHERE event_type = 'completed' AND occurred_at <= $t",
        params={"t": until},
    ).pl(), EVENT_SCHEMA)


def load_events(con: duckdb.DuckDBPyConnection, until: datetime) -> pl.DataFrame | None:
    """Action results (opened, completed, ...) that happened by `until`, for waits and branches.

    A result that happened before a tick but arrived after it was run is seen by a re-run of
    that tick (which then rewrites it), never silently lost.
    """
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'action_events'"
    ).fetchall()[0][0]
    if not exists:
        return None
    return con.sql(
        "SELECT action_id, event_type, occurred_at FROM action_events WHERE occurred_at <= $t",
        params={"t": until},
    ).pl()
