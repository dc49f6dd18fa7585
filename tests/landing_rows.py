"""Snapshot files written from the landing contract: every column filled with a value of its
type (the first allowed value where the contract lists them), overridden per row.

The columns come in as plain (name, type, allowed) tuples, so the install test can pass the
contract of the installed package rather than this source tree's.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import date

ColumnSpec = tuple[str, str, Sequence[str] | None]


def contract_columns(obj: object) -> list[ColumnSpec]:
    """(name, type, allowed) of a `LandingObject`'s columns."""
    return [(c.name, c.dtype, c.allowed) for c in obj.columns]  # type: ignore[attr-defined]


def snapshot_csv(columns: Iterable[ColumnSpec], day: date,
                 rows: Iterable[Mapping[str, str]]) -> str:
    """CSV text: one line per row, each column the row's value or a default of its type."""
    columns = list(columns)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([name for name, _, _ in columns])
    for i, row in enumerate(rows):
        writer.writerow([row.get(name, _default(name, dtype, allowed, day, i))
                         for name, dtype, allowed in columns])
    return out.getvalue()


def _default(name: str, dtype: str, allowed: Sequence[str] | None, day: date, i: int) -> str:
    if allowed:
        return allowed[0]
    if dtype == "DATE":
        return day.isoformat()
    if dtype == "INTEGER":
        return "10"
    if dtype == "DOUBLE":
        return "1000.0"
    if dtype == "BOOLEAN":
        return "true"
    if name == "time_zone":
        return "UTC"
    if name.endswith("email"):
        return f"{name.removesuffix('_email')}.{i}@example.com"
    return f"{name} {i}"
