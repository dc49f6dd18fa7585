"""Dump the demo quarter's tables to Parquet, or compare two dumps row for row.

    python bench/dump_tables.py dump data/cswf.duckdb /tmp/before
    python bench/dump_tables.py compare /tmp/before /tmp/after

Used to show that a change leaves behaviour alone: the same rows, each as many times, in
any order.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import polars as pl

TABLES = ("enrollment_history", "transitions", "actions_outbox", "tick_log", "deliveries",
          "action_events", "workflow_summary", "workflow_dashboard", "action_insights")
VOLATILE = {"deliveries": ("created_at", "updated_at", "sent_at"),  # wall-clock bookkeeping
            "action_events": ("recorded_at",)}


def dump(database: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    project = database.resolve().parent.parent  # data/cswf.duckdb in the project's folder
    with duckdb.connect(str(database), read_only=True) as con:
        names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        for table in TABLES:
            if table in names:
                frame = con.sql(f"FROM {table}").pl().drop(VOLATILE.get(table, ()), strict=False)
                if "detail" in frame.columns:  # dry-run previews name the project's folder
                    frame = frame.with_columns(pl.col("detail").str.replace_all(
                        f"{project}/", "<project>/", literal=True))
                frame.write_parquet(out / f"{table}.parquet")
                print(f"{table}: {frame.height} rows")


def compare(before: Path, after: Path) -> int:
    differ = 0
    for path in sorted(before.glob("*.parquet")):
        other = after / path.name
        if not other.exists():
            print(f"{path.stem}: missing after")
            differ += 1
            continue
        a, b = pl.read_parquet(path), pl.read_parquet(other)
        common = [c for c in a.columns if c in b.columns]
        extra = sorted(set(a.columns) ^ set(b.columns))
        a, b = a.select(common), b.select(common).cast(dict(a.select(common).schema))
        only_a = a.join(b, on=common, how="anti", nulls_equal=True)
        only_b = b.join(a, on=common, how="anti", nulls_equal=True)
        # the same rows as many times each (a row twice before, once after, is a difference)
        same = (a.height == b.height and only_a.is_empty() and only_b.is_empty()
                and a.hash_rows().sort().equals(b.hash_rows().sort()))
        note = f" (columns only on one side: {extra})" if extra else ""
        print(f"{path.stem}: {'identical' if same else 'DIFFERENT'} "
              f"({a.height} vs {b.height} rows; {only_a.height} only before, "
              f"{only_b.height} only after){note}")
        differ += not same
    return differ


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("dump", "compare"):
        sys.exit(__doc__)
    verb, *args = sys.argv[1:]
    if verb == "dump":
        dump(Path(args[0]), Path(args[1]))
    else:
        sys.exit(1 if compare(Path(args[0]), Path(args[1])) else 0)
