"""A tick's inputs cut by shard inside DuckDB: each input written by one `COPY … PARTITION_BY`
as a Parquet file per shard, so the tick's prepare step streams the book rather than holding it
(DuckDB spills to disk past its memory limit) and a shard step reads only its own files.

Every query handed to `Cut.copy` names each row's shard in a column `__shard` (the documented
bucket SQL, store/slices.py). Parquet keeps fewer types than DuckDB hands Polars, so each
frame's DuckDB column types travel with the files (`Cut.types`, in the slice's manifest), UUIDs
and 128-bit integers are written as the text and decimals `.pl()` gives, and `read_frame`
(with `schemas_of`) gives back the frame `.pl()` of the same query would have given
(tests/test_cut.py).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import polars as pl

from cswf.engine.shards import ACCOUNT, SHARD
from cswf.facts.overlay import field_updates_sql
from cswf.ingest.checks import existing_tables
from cswf.store.slices import shard_of
from cswf.store.tables import HISTORY

_PARTITION = re.compile(rf"{SHARD}=(\d+)")
# DuckDB types whose Parquet form Polars reads as another type than `.pl()` gives: written as
# that type instead (a UUID is text in Polars; a HUGEINT a 38-digit decimal)
_PORTABLE = {"UUID": "VARCHAR", "HUGEINT": "DECIMAL(38,0)", "UHUGEINT": "DECIMAL(38,0)"}
# Types Parquet cannot carry as `.pl()` gives them, anywhere else in a column's type (inside a
# list or a struct) or at all (a time with a zone comes back shifted to UTC)
_UNCARRIED = re.compile(r"\b(UUID|HUGEINT|UHUGEINT|BIT|VARINT|BIGNUM|TIME WITH TIME ZONE|NULL)\b")


class UncarriedType(ValueError):
    """A fact column of a type a shard's Parquet input cannot carry: one line naming it."""


def timestamp(moment: datetime) -> str:
    """A tick's time as a DuckDB literal (COPY takes no parameters); ticks are naive UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return f"TIMESTAMP '{moment:%Y-%m-%d %H:%M:%S.%f}'"


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Cut:
    """The inputs of one tick cut into `shards` parts under `folder`: `files[name][k]` is
    shard k's Parquet file of input `name` (absent: no rows), `types[name]` its columns' DuckDB
    types."""

    folder: Path
    shards: int
    files: dict[str, dict[int, Path]] = field(default_factory=dict)
    types: dict[str, list[list[str]]] = field(default_factory=dict)

    def copy(self, con: duckdb.DuckDBPyConnection, name: str, query: str,
             label: str = "") -> None:
        """The rows of `query` (which has a `__shard` column) as input `name` (`label`: what
        it is, for a column it cannot carry), one file per shard with rows; in one pass by
        DuckDB."""
        columns = con.sql(f"SELECT * EXCLUDE ({SHARD}) FROM ({query}) LIMIT 0")
        kinds = [str(kind) for kind in columns.types]
        self.types[name] = [[column, kind] for column, kind in zip(columns.columns, kinds,
                                                                   strict=True)]
        for column, kind in self.types[name]:
            if kind not in _PORTABLE and not kind.startswith("ENUM(") and \
                    _UNCARRIED.search(kind):
                raise UncarriedType(
                    f"{label or name}: column '{column}' is {kind}, which a shard's input "
                    "cannot carry as it is — cast it in its fact model (to VARCHAR, say), or "
                    "run with shards: 1")
        select = ", ".join(
            f"CAST({quoted(column)} AS {_PORTABLE[kind]}) AS {quoted(column)}"
            if kind in _PORTABLE else quoted(column)
            for column, kind in self.types[name])
        target = self.folder / name
        self.folder.mkdir(parents=True, exist_ok=True)
        con.execute(f"COPY (SELECT {select}{', ' if select else ''}{SHARD} FROM ({query})) "
                    f"TO '{sql_path(target)}' (FORMAT parquet, PARTITION_BY ({SHARD}))"
                    ).fetchall()
        self.files[name] = {}
        for part in sorted(target.glob(f"{SHARD}=*")) if target.exists() else []:
            k = int(_PARTITION.fullmatch(part.name)[1])  # type: ignore[index]
            self.files[name][k] = _one_file(con, part)

    def of(self, k: int) -> dict[str, Path]:
        """Shard k's files, by input name (inputs without rows in it left out)."""
        return {name: by[k] for name, by in self.files.items() if k in by}

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _one_file(con: duckdb.DuckDBPyConnection, part: Path) -> Path:
    """A partition's rows as one file: DuckDB writes several when it closes and reopens files
    (more partitions than `partitioned_write_max_open_files`)."""
    files = sorted(part.glob("*.parquet"))
    if len(files) == 1:
        return files[0]
    merged = part / "merged.parquet"
    listed = ", ".join(f"'{sql_path(f)}'" for f in files)
    con.execute(f"COPY (SELECT * FROM read_parquet([{listed}], hive_partitioning = false)) "
                f"TO '{sql_path(merged)}' "
                "(FORMAT parquet)").fetchall()
    for file in files:
        file.unlink()
    return merged


def sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def schemas_of(types: dict[str, list[list[str]]], time_zone: str
               ) -> dict[str, dict[str, pl.DataType]]:
    """The Polars types `.pl()` gives columns of these DuckDB types, for every input (asked of
    one in-memory DuckDB, with the time zone the prepare step's connection had). The types
    come from a slice's manifest, so each must be one DuckDB renders exactly so and the zone a
    known one: anything else is refused, never run."""
    _known_zone(time_zone)
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"SET TimeZone = '{time_zone}'").fetchall()
        return {name: dict(con.sql("SELECT " + ", ".join(
            f"CAST(NULL AS {_known_type(kind)}) AS {quoted(column)}" for column, kind in columns
        ) + " LIMIT 0").pl().schema) if columns else {} for name, columns in types.items()}
    finally:
        con.close()


def _known_type(kind: str) -> str:
    try:
        if str(duckdb.type(kind)) == kind:
            return kind
    except duckdb.Error:
        pass
    raise ValueError(f"an input slice names the column type {kind!r}, which is not one DuckDB "
                     "writes — not a slice cswf made; run the whole tick again")


def _known_zone(zone: str) -> None:
    try:
        ZoneInfo(zone)
    except (ValueError, ZoneInfoNotFoundError):
        raise ValueError(f"an input slice names the time zone {zone!r}, which is not one — "
                         "not a slice cswf made; run the whole tick again") from None


def read_frame(found: pl.DataFrame | None, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """A cut input as `.pl()` would have given it: `found` (read from its Parquet; None: the
    shard has no rows of it) cast to `schema`."""
    if found is None:
        return pl.DataFrame(schema=schema)
    return found.select(pl.col(column).cast(dtype) if found.schema[column] != dtype
                        else pl.col(column) for column, dtype in schema.items())


BUILT = "cswf_cut_built"  # a feed's built facts (contacts, opportunities), while it is cut
OWNERS = "cswf_cut_owners"
STATE = "cswf_cut_state"
ORDER = "__order"  # requests' order (oldest first), which a partitioned write does not keep


def cut_feed(con: duckdb.DuckDBPyConnection, cut: Cut, prefix: str, facts: str,
             prev: str | None, workflows: list[str], as_of: datetime,
             before: datetime | None, participant: str = "") -> None:
    """One participant type's inputs of the tick at `as_of`, cut by shard as engine/shards.py's
    `split_tick` cuts them, each written as `<prefix>-<input>`: the facts (`facts`, `prev`:
    queries of this tick's and the previous tick's), the state of `workflows`, the events
    of their enrollments, the deploy and removal requests of the tick, and the field updates
    visible at it and at the tick before (laid over the facts by each shard).

    A participant's shard is its account's where its facts name one (`account_id`: this
    tick's facts, else the previous tick's), else its own id's: every input is joined to the
    participants' keys (no join where everyone is their own key)."""
    keyed = _owners(con, facts, prev, cut.shards)
    try:
        _cut_feed(con, cut, prefix, facts, prev, workflows, as_of, before, keyed,
                  participant)
    finally:
        con.execute(f"DROP TABLE IF EXISTS temp.{OWNERS}").fetchall()


def _cut_feed(con: duckdb.DuckDBPyConnection, cut: Cut, prefix: str, facts: str,
              prev: str | None, workflows: list[str], as_of: datetime,
              before: datetime | None, keyed: bool, participant: str) -> None:
    at = timestamp(as_of)
    earlier = None if before is None else timestamp(before)

    def copy(name: str, query: str) -> None:
        cut.copy(con, f"{prefix}-{name}", _with_shard(query, keyed, cut.shards),
                 f"{participant} {name}".strip())

    copy("facts", facts)  # a participant's rows together, should it have two (the tick fails)
    if prev is not None:
        copy("prev", prev)
    names = ", ".join("'" + name.replace("'", "''") + "'" for name in workflows) or "NULL"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {STATE} AS " + _with_shard(
        f"SELECT * EXCLUDE (valid_from, valid_to) FROM {HISTORY} WHERE valid_from < {at} "
        f"AND (valid_to IS NULL OR valid_to >= {at}) AND workflow IN ({names})",
        keyed, cut.shards)).fetchall()
    try:
        cut.copy(con, f"{prefix}-state", f"SELECT * FROM {STATE}")
        # an event answers the action `<enrollment id>/<key>`: it goes with that enrollment
        if "action_events" in existing_tables(con):
            cut.copy(con, f"{prefix}-events",
                     f"SELECT e.action_id, e.event_type, e.occurred_at, s.{SHARD} "
                     f"FROM action_events AS e JOIN {STATE} AS s ON regexp_replace("
                     f"e.action_id, '/[^/]*$', '') = s.enrollment_id "
                     f"WHERE e.occurred_at <= {at}")
    finally:
        con.execute(f"DROP TABLE IF EXISTS temp.{STATE}").fetchall()
    window = f"requested_at <= {at}" + (f" AND requested_at > {earlier}" if earlier else "")
    order = f"row_number() OVER (ORDER BY requested_at, request_id) AS {ORDER}"
    copy("deploys", "SELECT workflow, participant_id, requested_by, requested_at, "
         f"{order} FROM deploy_requests WHERE {window}")
    copy("removals", "SELECT workflow, participant_id, requested_by, reason, requested_at, "
         f"{order} FROM removal_requests WHERE {window}")
    if "actions_outbox" in existing_tables(con):
        copy("updates", field_updates_sql(at))
        if earlier is not None and prev is not None:
            copy("earlier", field_updates_sql(earlier))


def _key(con: duckdb.DuckDBPyConnection, facts: str) -> str:
    """What a facts row's shard is the bucket of: its account, if these facts name one."""
    columns = con.sql(f"SELECT * FROM ({facts}) LIMIT 0").columns
    return f'"{ACCOUNT}"' if ACCOUNT in columns else "participant_id"


def _owners(con: duckdb.DuckDBPyConnection, facts: str, prev: str | None,
            shards: int) -> bool:
    """The key of every participant of the facts (first this tick's, then the previous
    tick's), as temp table `cswf_cut_owners`; False (and no table) when the facts name no
    account, so everyone's key is their own id."""
    queries = [q for q in (facts, prev) if q is not None]
    keys = [_key(con, q) for q in queries]
    if all(key == "participant_id" for key in keys):
        return False
    union = " UNION ALL ".join(
        f"SELECT participant_id, CAST({key} AS VARCHAR) AS key, {i} AS src FROM ({q})"
        for i, (q, key) in enumerate(zip(queries, keys, strict=True)))
    con.execute(f"CREATE OR REPLACE TEMP TABLE {OWNERS} AS SELECT participant_id, "
                f"{shard_of('key', shards)} AS {SHARD} FROM ({union}) "
                "QUALIFY row_number() OVER (PARTITION BY participant_id ORDER BY src) = 1"
                ).fetchall()
    return True


def _with_shard(query: str, keyed: bool, shards: int) -> str:
    """`query`'s rows with the shard of their participant: its key's, or its own id's when it
    has none (its state row, a request or an update outlived its facts)."""
    own = shard_of("q.participant_id", shards)
    if not keyed:
        return f"SELECT q.*, {own} AS {SHARD} FROM ({query}) AS q"
    return (f"SELECT q.*, coalesce(o.{SHARD}, {own}) AS {SHARD} FROM ({query}) AS q "
            f"LEFT JOIN {OWNERS} AS o ON q.participant_id IS NOT DISTINCT FROM o.participant_id")
