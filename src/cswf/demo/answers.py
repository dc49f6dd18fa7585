"""What simulated customers do with an action, fixed by its id.

Outcomes are drawn from a hash of the action id (md5 in DuckDB), not from a random generator, so
they are the same whatever ran before, in whatever order: of the emails, 97% are delivered and
2% bounce (the rest vanish); of the delivered, 45% are opened 1 to 48 hours later, 10% clicked
and 4% replied to after that; 70% of the tasks are completed before they are due (the rest go
overdue). Each answer is an offset from the moment the action reached its audience (an email's
send, a task's tick), so the caller decides that moment: DuckDB draws the numbers in one cheap
query, Polars turns them into answers.
"""

from __future__ import annotations

import duckdb
import polars as pl

from cswf.store.query import query_frame

DELIVERED, BOUNCED = 0.97, 0.02  # of the emails
OPENED, CLICKED, REPLIED = 0.45, 0.10, 0.04  # of the delivered emails (clicks, replies: opened)
COMPLETED = 0.70  # of the tasks, before their due time
DEFAULT_DUE_DAYS = 3  # a task without a due time
EMAIL_SPAN_DAYS = 4  # every answer to an email comes within 3 days of its send
_SALTS = ("fate", "arrival", "open", "click", "reply", "open_time", "click_time", "reply_time",
          "done", "done_time")
ANSWER_SCHEMA = {"action_id": pl.String, "action_type": pl.String, "tick": pl.Datetime("us"),
                 "event_type": pl.String, "offset": pl.Duration("us")}


def draws(con: duckdb.DuckDBPyConnection, actions: pl.DataFrame | str, where: str = "TRUE",
          params: dict[str, object] | None = None) -> pl.DataFrame:
    """The uniform numbers in [0, 1) of the emails and tasks in `actions` (outbox rows, or the
    name of an outbox-shaped table) that `where` keeps, one column per salt; `span` is the
    seconds a task has to be answered in."""
    numbers = ", ".join(f"md5_number_lower(action_id || ':{salt}') / 18446744073709551616.0 "
                        f"AS {salt}" for salt in _SALTS)
    due = f"coalesce(due_at, tick + INTERVAL {DEFAULT_DUE_DAYS} DAY)"
    source = actions if isinstance(actions, str) else "_cswf_demo_actions"
    query = (f"SELECT action_id, action_type, tick, greatest(epoch({due} - tick), 3600) AS span, "
             f"{numbers} FROM {source} WHERE status = 'pending' "
             f"AND action_type IN ('email', 'task') AND ({where})")
    if isinstance(actions, str):
        return query_frame(con, query, params or {})
    con.register(source, actions)
    try:
        return query_frame(con, query, params or {})
    finally:
        con.unregister(source)


def _seconds(low: int, high: int | pl.Expr, salt: str) -> pl.Expr:
    """Whole seconds drawn uniformly in [low, high), as DuckDB would compute them."""
    span = pl.lit(high - low) if isinstance(high, int) else high - low
    return (pl.lit(low) + span * pl.col(salt)).floor().cast(pl.Int64)


def answers(drawn: pl.DataFrame) -> pl.DataFrame:
    """Every answer of the drawn actions: action_id, action_type, tick, event_type and its
    offset from the moment the action reached its audience."""
    seconds = pl.duration(seconds=pl.col("s"))
    emails = drawn.filter(pl.col("action_type") == "email").with_columns(
        arrival=_seconds(60, 600, "arrival"),
        delivered=pl.col("fate") < DELIVERED,
        bounced=(pl.col("fate") >= DELIVERED) & (pl.col("fate") < DELIVERED + BOUNCED),
        opened=(pl.col("fate") < DELIVERED) & (pl.col("open") < OPENED),
    ).with_columns(opened_at=pl.col("arrival") + _seconds(3600, 48 * 3600, "open_time"))
    parts = [
        _event(emails.filter("delivered"), "delivered", pl.col("arrival")),
        _event(emails.filter("bounced"), "bounced", pl.col("arrival")),
        _event(emails.filter("opened"), "opened", pl.col("opened_at")),
        _event(emails.filter(pl.col("opened") & (pl.col("click") < CLICKED / OPENED)), "clicked",
               pl.col("opened_at") + _seconds(60, 1800, "click_time")),
        _event(emails.filter(pl.col("opened") & (pl.col("reply") < REPLIED / OPENED)), "replied",
               pl.col("opened_at") + _seconds(600, 24 * 3600, "reply_time")),
        _event(drawn.filter((pl.col("action_type") == "task") & (pl.col("done") < COMPLETED)),
               "completed", _seconds(60, pl.col("span"), "done_time")),
    ]
    return pl.concat(parts).with_columns(seconds.alias("offset")).select(list(ANSWER_SCHEMA))


def _event(rows: pl.DataFrame, kind: str, seconds: pl.Expr) -> pl.DataFrame:
    return rows.select("action_id", "action_type", "tick", pl.lit(kind).alias("event_type"),
                       seconds.alias("s"))
