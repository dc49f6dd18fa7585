"""Participant events in: survey answers, tickets, product events, anything that happened to
an account, contact or opportunity at a moment.

Files in `<landing>/events/` hold one event a row: `event_type`, `participant_id`, `occurred_at`,
optionally `event_id`, and any other columns, which become the event's `properties` (a JSON
object). Events are appended, never replaced: a row is stored once per (event_type, event_id)
(without an event_id, a hash of the row stands for it), so re-landing a file, or the same answer
in two files, adds nothing. A bad row is reported in one line (file, row, column, what to do)
and the file's good rows still load.

Late events: a row whose `occurred_at` is at or before the latest tick already run could no
longer count at the tick it belongs to without changing a tick that ran. It is stored with
`counted_at` just after that tick, so it counts once, at the next tick, and a re-run of any tick
sees what the tick saw when it ran. Every other row counts at its `occurred_at`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from cswf.ingest.contract import EVENTS
from cswf.ingest.files import visible_files
from cswf.ingest.validate import missing_columns, one_line, read_landing
from cswf.store.transaction import transaction

FOLDER = EVENTS.name  # landing sub-folder
OWN = tuple(c.name for c in EVENTS.columns)  # columns with a meaning; the rest are properties
EVENT_TYPE = r"^[a-z][a-z0-9_]*$"  # usable as written in a spec: `event: nps_response`
_NEW = "_cswf_new_events"
_LATE = timedelta(microseconds=1)  # a late event counts just after the latest tick run
# The file rows with their ids (an md5 of the row where the file gives none), first one of a
# key kept; then those not stored yet are inserted, a late one counting just after the last tick.
_KEYED = f"""
CREATE OR REPLACE TEMP TABLE _cswf_keyed_events AS
SELECT * EXCLUDE (ord) FROM (
    SELECT * REPLACE (coalesce(nullif(event_id, ''), 'md5:' || md5(concat_ws(chr(31),
        event_type, participant_id, strftime(occurred_at, '%Y-%m-%dT%H:%M:%S.%f'),
        coalesce(properties, '')))) AS event_id)
    FROM {_NEW})
QUALIFY row_number() OVER (PARTITION BY event_type, event_id ORDER BY ord) = 1
"""
_FRESH = f"_cswf_keyed_events AS n ANTI JOIN {EVENTS.table} AS e USING (event_type, event_id)"
_INSERT = f"""
INSERT INTO {EVENTS.table} (event_type, event_id, participant_id, occurred_at, properties,
                            counted_at, source_file)
SELECT n.event_type, n.event_id, n.participant_id, n.occurred_at, n.properties,
       CASE WHEN n.occurred_at <= $last THEN $late ELSE n.occurred_at END, n.source_file
FROM {_FRESH}
"""


@dataclass
class ParticipantEventReport:
    """What one ingest did with the event files."""

    files: int = 0  # read: every file of the folder, each time (rows already stored are skipped)
    files_rejected: int = 0  # unreadable, or without a required column
    rows: int = 0
    inserted: int = 0  # good rows that were new; the rest were stored before
    late: int = 0  # new rows that landed after their tick ran (they count at the next tick)
    rejected: list[str] = field(default_factory=list)  # "<file>: row <n>: column '<c>': ..."

    def line(self) -> str:
        late = f" ({self.late} late: counted at the next tick)" if self.late else ""
        rows = len(self.rejected) - self.files_rejected
        files = f", {self.files_rejected} file(s) rejected" if self.files_rejected else ""
        return (
            f"participant events: {self.files} file(s) read, {self.inserted:,} new event(s)"
            f"{late}, {rows} row(s) rejected{files}"
        )


def ensure_events_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(EVENTS.ddl()).fetchall()


def ingest_participant_events(
    con: duckdb.DuckDBPyConnection, landing_dir: Path
) -> ParticipantEventReport:
    """Append the new events of every file in `<landing_dir>/events/`; safe to run again."""
    ensure_events_table(con)
    report = ParticipantEventReport()
    frames = []
    for path in visible_files(landing_dir / FOLDER):
        rel = path.relative_to(landing_dir).as_posix()
        good, problems, rows = _check_file(path, rel)
        report.files += 1
        report.files_rejected += good is _EMPTY and bool(problems)
        report.rows += rows
        report.rejected += problems
        frames.append(good)
    new = pl.concat(frames).with_row_index("ord") if frames else None
    if new is None or new.is_empty():
        return report
    last = latest_tick(con) or datetime.min
    params = {"last": last, "late": last + _LATE}
    con.register(_NEW, new.to_arrow())
    try:
        with transaction(con):
            con.execute(_KEYED).fetchall()
            report.late = int(
                con.execute(
                    f"SELECT count(*) FROM {_FRESH} WHERE n.occurred_at <= $last", {"last": last}
                ).fetchall()[0][0]
            )
            report.inserted = int(con.execute(_INSERT, params).fetchall()[0][0])
            con.execute("DROP TABLE temp._cswf_keyed_events").fetchall()
    finally:
        con.unregister(_NEW)
    return report


def latest_tick(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The as_of of the latest tick run (tick_log), None before the first."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'tick_log' "
        "AND schema_name = current_schema()"
    ).fetchall()[0][0]
    if not exists:
        return None
    return con.execute("SELECT max(as_of) FROM tick_log").fetchall()[0][0]


def _check_file(path: Path, rel: str) -> tuple[pl.DataFrame, list[str], int]:
    """(good rows in table columns, one line per bad row, rows read)."""
    try:
        raw = read_landing(path.read_bytes(), path.suffix.lower())
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        return _EMPTY, [f"{rel}: could not read file: {one_line(err)}"], 0
    missing = [c.name for c in EVENTS.columns if c.required and c.name not in raw.columns]
    if missing:
        return (
            _EMPTY,
            [
                missing_columns(rel, missing, raw.columns)
                + " (an event file needs event_type, participant_id and occurred_at)"
            ],
            raw.height,
        )
    extra = [c for c in raw.columns if c not in OWN]
    text = pl.col("occurred_at").cast(pl.String)
    frame = raw.select(
        pl.int_range(1, pl.len() + 1).alias("row"),
        pl.col("event_type").cast(pl.String).str.strip_chars().str.to_lowercase(),
        (
            pl.col("event_id").cast(pl.String).str.strip_chars()
            if "event_id" in raw.columns
            else pl.lit(None, pl.String)
        ).alias("event_id"),
        pl.col("participant_id").cast(pl.String).str.strip_chars(),
        text.alias("occurred_text"),
        _timestamp(raw["occurred_at"]).alias("occurred_at"),
        (pl.struct(extra).struct.json_encode() if extra else pl.lit(None, pl.String)).alias(
            "properties"
        ),
    )
    problems = (
        pl.concat_list(
            pl.when(pl.col("event_type").fill_null("") == "")
            .then(pl.lit("column 'event_type': empty (name what happened, e.g. nps_response)"))
            .when(~pl.col("event_type").str.contains(EVENT_TYPE))
            .then(
                pl.format(
                    "column 'event_type': '{}' is not a name (letters, digits and _, "
                    "starting with a letter)",
                    "event_type",
                )
            ),
            pl.when(pl.col("participant_id").fill_null("") == "").then(
                pl.lit(
                    "column 'participant_id': empty (the account_id, contact_id or "
                    "opportunity_id the event happened to)"
                )
            ),
            pl.when(pl.col("occurred_at").is_null()).then(
                pl.format(
                    "column 'occurred_at': could not convert '{}' to TIMESTAMP (ISO 8601, e.g. "
                    "2026-07-01T14:30:00Z)",
                    pl.col("occurred_text").fill_null(""),
                )
            ),
        )
        .list.drop_nulls()
        .list.join("; ")
    )
    checked = frame.with_columns(problems.alias("problem"))
    bad = checked.filter(pl.col("problem") != "")
    messages = [
        f"{rel}: row {row}: {problem}; the row was not loaded: fix it and land the file again"
        for row, problem in bad.select("row", "problem").iter_rows()
    ]
    good = (
        checked.filter(pl.col("problem") == "")
        .with_columns(pl.lit(rel).alias("source_file"))
        .select(*_EMPTY.columns)
    )
    return good, messages, raw.height


_EMPTY = pl.DataFrame(
    schema={
        "event_type": pl.String,
        "event_id": pl.String,
        "participant_id": pl.String,
        "occurred_at": pl.Datetime("us"),
        "properties": pl.String,
        "source_file": pl.String,
    }
)


def _timestamp(column: pl.Series) -> pl.Series:
    """The column as naive UTC timestamps; null where it does not read as one."""
    dtype = column.dtype
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return column.cast(pl.Datetime("us"))
    if isinstance(dtype, pl.Date):
        return column.cast(pl.Datetime("us"))
    parsed = {text: _parse(text) for text in column.cast(pl.String).drop_nulls().unique()}
    return column.cast(pl.String).replace_strict(
        parsed, default=None, return_dtype=pl.Datetime("us")
    )


def _parse(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
