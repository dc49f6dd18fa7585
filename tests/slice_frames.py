"""A shard slice's frames for the slice-store tests (tests/test_pgslices.py,
tests/test_s3slices.py): types every store must give back exactly."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import polars as pl

TICK = datetime(2026, 6, 1, 3)


def frames(shard: int) -> dict[str, pl.DataFrame]:
    """A slice's frames, with types Parquet must keep exactly (time zones, precisions,
    enums, nested lists and structs, nulls)."""
    return {
        "0-state": pl.DataFrame({
            "participant_id": [f"ACC-{shard}", None],
            "entered_at": pl.Series([datetime(2026, 5, 31, 21), None],
                                    dtype=pl.Datetime("ms", "Europe/Paris")),
            "steps": pl.Series([[1, 2], []], dtype=pl.List(pl.Int32)),
            "score": pl.Series([0.5, None], dtype=pl.Float32),
            "amount": pl.Series([Decimal("12.50"), None], dtype=pl.Decimal(10, 2)),
            "status": pl.Series(["active", None], dtype=pl.Enum(["active", "exited"])),
            "wait": [timedelta(hours=3), None],
            "day": [date(2026, 6, 1), None],
            "owner": [{"group": "csm", "rank": 1}, None],
            "count": pl.Series([1, 2], dtype=pl.UInt32),
        }),
        "0-actions": pl.DataFrame(schema={"action_id": pl.String, "due_at": pl.Datetime("us")}),
    }
