"""Materialize the report tables: one SQL file in `sql/reports/` per table, for BI tools."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

REPORTS_FOLDER = "reports"


def report_files(sql_dir: Path) -> list[Path]:
    return sorted((sql_dir / REPORTS_FOLDER).glob("*.sql"))


def build_reports(con: duckdb.DuckDBPyConnection, sql_dir: Path) -> dict[str, int]:
    """(Re)create every report table; returns its row count by name.

    Reports may read each other: a file that names another report is built after it.
    """
    files = {f.stem: f for f in report_files(sql_dir)}
    texts = {name: f.read_text() for name, f in files.items()}
    done: dict[str, int] = {}

    def build(name: str, seen: tuple[str, ...] = ()) -> None:
        if name in done:
            return
        if name in seen:
            raise ValueError(f"{files[name]}: reports refer to each other in a cycle: {seen}")
        for other in texts:
            if other != name and re.search(rf"\b{other}\b", texts[name]):
                build(other, (*seen, name))
        try:
            con.execute(f"CREATE OR REPLACE TABLE {name} AS {texts[name]}").fetchall()
        except duckdb.Error as exc:
            raise ValueError(f"{files[name]}: {exc}") from exc
        done[name] = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]

    for name in files:
        build(name)
    return done
