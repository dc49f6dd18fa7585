"""Results back in: action events (delivered, opened, bounced, task completed, ...).

Events are keyed by (action_id, event_type, occurred_at), so a file read twice or an event
reported twice lands once. Bounces, complaints and unsubscribes also suppress the action's
recipient (lower-cased): from then on that address receives nothing. For an email to several
contacts, the addresses the event's detail names, or else all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from cswf.calendar import utc_naive
from cswf.specs.action import OWN_EVENTS
from cswf.specs.actions import result_events
from cswf.store.tables import EVENT_TYPES, SUPPRESSING_EVENTS, ensure_delivery_tables
from cswf.store.transaction import transaction

log = logging.getLogger(__name__)

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "action_id": pl.String(),
    "event_type": pl.String(),
    "occurred_at": pl.Datetime("us"),
    "detail": pl.String(),
    "source": pl.String(),
}
REQUIRED = ("action_id", "event_type", "occurred_at")
EVENT_FILES = (".csv", ".parquet")
MAX_MESSAGES = 1000

# The addresses a suppressing event condemns: those of the action's recipients that its detail
# names (a bounce of one of several contacts), else all of them. The recipients are the
# delivery's resolved addresses, or the outbox recipient for an email addressed from a field.
_SUPPRESS_FROM_EVENTS = """
INSERT INTO suppressions BY NAME
SELECT address, reason, since, action_id FROM (
    SELECT unnest(CASE WHEN len(list_intersect(addresses, named)) > 0
                       THEN list_intersect(addresses, named) ELSE addresses END) AS address,
           event_type AS reason, occurred_at AS since, action_id
    FROM (
        SELECT e.action_id, e.event_type, e.occurred_at,
               list_filter(list_transform(coalesce(d.recipients, [o.recipient]),
                                          lambda x: lower(trim(x))),
                           lambda x: nullif(x, '') IS NOT NULL AND NOT starts_with(x, 'contacts:'))
                   AS addresses,
               list_transform(regexp_extract_all(lower(coalesce(e.detail, '')),
                                                 '[a-z0-9._%+''-]+@[a-z0-9.-]+'),
                              lambda x: rtrim(x, '.')) AS named
        FROM new_events AS e
        JOIN actions_outbox AS o USING (action_id)
        LEFT JOIN deliveries AS d USING (action_id)
        WHERE e.event_type IN (SELECT unnest($kinds))
    )
)
WHERE address IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY address ORDER BY since, action_id) = 1
ON CONFLICT DO NOTHING
"""


def event_types() -> tuple[str, ...]:
    """The accepted event types: delivery's own, and what the results of every registered
    action type are made of (a new type's results can arrive as events too), except those
    delivery alone records (`not_actioned`: the approval window closed)."""
    return tuple(e for e in dict.fromkeys((*EVENT_TYPES, *result_events()))
                 if e not in OWN_EVENTS)


def record_events(con: duckdb.DuckDBPyConnection, events: pl.DataFrame,
                  recorded_at: datetime) -> int:
    """Insert events not seen before and suppress the addresses they condemn; returns how many
    were new. Runs inside the caller's transaction, if any."""
    new_events = events.select(list(EVENT_SCHEMA)).cast(EVENT_SCHEMA)  # type: ignore[arg-type]
    inserted = con.execute(
        "INSERT INTO action_events BY NAME SELECT *, $at AS recorded_at FROM new_events "
        "ON CONFLICT DO NOTHING",
        {"at": utc_naive(recorded_at)},
    ).fetchall()[0][0]
    if new_events["event_type"].is_in(list(SUPPRESSING_EVENTS)).any():  # else it adds nothing
        con.execute(_SUPPRESS_FROM_EVENTS, {"kinds": list(SUPPRESSING_EVENTS)}).fetchall()
    return int(inserted)


def suppress(con: duckdb.DuckDBPyConnection, addresses: Iterable[str], reason: str,
             since: datetime) -> int:
    """Add addresses to the suppression list (an unsubscribe list, a CRM opt-out export)."""
    ensure_delivery_tables(con)
    wanted = pl.DataFrame(  # noqa: F841 (read by DuckDB)
        {"address": [a.strip().lower() for a in addresses if a and a.strip()]},
        schema={"address": pl.String},
    ).unique()
    return int(con.execute(
        "INSERT INTO suppressions (address, reason, since) SELECT address, $reason, $since "
        "FROM wanted ON CONFLICT DO NOTHING",
        {"reason": reason, "since": utc_naive(since)},
    ).fetchall()[0][0])


@dataclass
class EventIngestReport:
    files: int = 0
    rows: int = 0
    accepted: int = 0
    inserted: int = 0  # accepted rows that were new (the rest were already recorded)
    rejected: list[str] = field(default_factory=list)  # "<file> row <n>: column <c>: why"

    @property
    def duplicates(self) -> int:
        return self.accepted - self.inserted


def _read(path: Path) -> pl.DataFrame:
    if path.suffix.lower() == ".csv":
        return pl.read_csv(path, infer_schema=False, raise_if_empty=False)
    return pl.read_parquet(path)


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _occurred_at(column: pl.Series) -> pl.Series | None:
    """The column as naive UTC timestamps (null where unreadable); None: unusable type."""
    dtype = column.dtype
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return column.cast(pl.Datetime("us"))
    if isinstance(dtype, pl.Date):
        return column.cast(pl.Datetime("us"))
    if dtype != pl.String:
        return None
    values = column.drop_nulls().unique().to_list()
    parsed = {value: _parse_time(value) for value in values}
    return column.replace_strict(parsed, default=None, return_dtype=pl.Datetime("us"))


def _check_file(con: duckdb.DuckDBPyConnection, path: Path, name: str
                ) -> tuple[pl.DataFrame, list[str], int]:
    """(good rows, messages for the bad ones, rows read)."""
    try:
        raw = _read(path)
    except Exception as exc:  # an unreadable file is reported, the others still load
        return pl.DataFrame(schema=EVENT_SCHEMA), [f"{name}: cannot read: {exc}"], 0
    raw = raw.rename({c: c.strip().lower() for c in raw.columns})
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        return (pl.DataFrame(schema=EVENT_SCHEMA),
                [f"{name}: column {c}: missing (need {', '.join(REQUIRED)})" for c in missing],
                raw.height)
    occurred = _occurred_at(raw["occurred_at"])
    if occurred is None:
        return (pl.DataFrame(schema=EVENT_SCHEMA),
                [f"{name}: column occurred_at: type {raw['occurred_at'].dtype} is not a "
                 "timestamp (use ISO 8601 text or a timestamp column)"], raw.height)
    frame = raw.select(
        pl.int_range(1, pl.len() + 1).alias("row"),
        pl.col("action_id").cast(pl.String).str.strip_chars().alias("action_id"),
        pl.col("event_type").cast(pl.String).str.strip_chars().str.to_lowercase()
        .alias("event_type"),
        pl.col("occurred_at").cast(pl.String).alias("occurred_text"),
        (pl.col("detail").cast(pl.String) if "detail" in raw.columns
         else pl.lit(None, dtype=pl.String)).alias("detail"),
    ).with_columns(occurred.alias("occurred_at"))
    known = con.sql("SELECT DISTINCT action_id FROM actions_outbox").pl()
    frame = frame.with_columns(
        pl.col("action_id").is_in(known["action_id"].implode()).alias("known")
    )
    accepted = event_types()
    kinds = ", ".join(accepted)
    problems = [
        pl.when(pl.col("action_id").fill_null("") == "")
        .then(pl.lit("column action_id: missing"))
        .when(~pl.col("known"))
        .then(pl.format("column action_id: '{}' is not in actions_outbox", pl.col("action_id"))),
        pl.when(~pl.col("event_type").fill_null("").is_in(list(accepted)))
        .then(pl.format("column event_type: '{}' is not one of " + kinds,
                        pl.col("event_type").fill_null(""))),
        pl.when(pl.col("occurred_at").is_null())
        .then(pl.format("column occurred_at: '{}' is not an ISO 8601 timestamp",
                        pl.col("occurred_text").fill_null(""))),
    ]
    checked = frame.with_columns(
        pl.concat_list(problems).list.drop_nulls().list.join("; ").alias("problem")
    )
    bad = checked.filter(pl.col("problem") != "")
    messages = [f"{name} row {row}: {problem}" for row, problem in bad.select("row", "problem")
                .iter_rows()]
    good = checked.filter(pl.col("problem") == "").select(
        "action_id", "event_type", "occurred_at", "detail",
        pl.lit(f"file:{name}").alias("source"),
    )
    return good, messages, raw.height


def ingest_action_events(con: duckdb.DuckDBPyConnection, folder: Path,
                         now: datetime | None = None) -> EventIngestReport:
    """Load every *.csv / *.parquet under `folder` (columns action_id, event_type, occurred_at,
    detail). Bad rows are reported by file, row (1-based, header excluded) and column; the good
    rows of the same file still load. Safe to run again on the same files."""
    ensure_delivery_tables(con)
    report = EventIngestReport()
    files = sorted(p for p in Path(folder).rglob("*")
                   if p.is_file() and p.suffix.lower() in EVENT_FILES
                   and not p.name.startswith("."))
    good_frames = []
    for path in files:
        name = path.relative_to(folder).as_posix()
        good, messages, rows = _check_file(con, path, name)
        report.files += 1
        report.rows += rows
        report.accepted += good.height
        report.rejected += messages
        good_frames.append(good)
    for message in report.rejected[:MAX_MESSAGES]:
        log.warning("action events: %s", message)
    if good_frames:
        events = pl.concat(good_frames)
        with transaction(con):
            report.inserted = record_events(con, events, now or datetime.now(UTC))
    return report
