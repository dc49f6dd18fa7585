"""Time `ingest_landing` on the demo book: first load, then a second run with nothing changed.

    .venv/bin/python bench/ingest_bench.py [--accounts 2000] [--days 120] [--repeat 3]
    .venv/bin/python bench/ingest_bench.py --module /path/to/other_ingest.py   # A/B a copy

The book is generated once into a temp dir (4 objects, one Parquet file per object per day);
each repeat ingests it into a fresh in-memory DuckDB. The best of the repeats is reported,
since other work on the machine only ever makes a run slower.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cswf.demo import generate_book  # noqa: E402


def _module(path: str | None) -> ModuleType:
    if path is None:
        from cswf.ingest import ingest

        return ingest
    spec = importlib.util.spec_from_file_location("ingest_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--fmt", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--module", help="an ingest.py to time instead of the installed one")
    args = parser.parse_args()
    ingest = _module(args.module)
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp) / "landing"
        book = generate_book(landing, accounts=args.accounts, days=args.days, fmt=args.fmt)
        files = len(book.files_written)
        first, again = [], []
        for _ in range(args.repeat):
            con = duckdb.connect(":memory:")
            started = time.perf_counter()
            report = ingest.ingest_landing(con, landing)
            first.append(time.perf_counter() - started)
            started = time.perf_counter()
            ingest.ingest_landing(con, landing)
            again.append(time.perf_counter() - started)
            rows = sum(report.rows_loaded.values())
            assert len(report.files_loaded) == files and not report.files_rejected
            con.close()
    best = min(first)
    print(f"{args.module or 'cswf/facts/ingest.py'}: {files} files, {rows} rows")
    print(f"first ingest: best {best:.2f} s of {[round(t, 2) for t in first]} "
          f"({1000 * best / files:.1f} ms/file); unchanged re-run: best {min(again):.3f} s")


if __name__ == "__main__":
    main()
