"""Polars' panic exception class (`pyo3_runtime.PanicException`): made at run time, so it is
found by causing one (a datetime past chrono's range, converted to Python)."""

from __future__ import annotations

import os
from datetime import datetime
from functools import cache

import polars as pl


@cache
def panic_class() -> type[BaseException]:
    os.environ.setdefault("RUST_BACKTRACE", "0")  # (Rust still prints the panic's first line)
    far = pl.DataFrame({"t": [datetime(2026, 1, 1)]}).select(
        pl.col("t") + pl.duration(days=100_000_000))
    try:
        far.to_dicts()
    except BaseException as exc:
        if type(exc).__name__ == "PanicException":
            return type(exc)
        raise
    raise AssertionError("Polars no longer panics on an out-of-range datetime")
