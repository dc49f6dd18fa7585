"""Keys a load just doubled: said at once, by file and row, rather than only by the check that
later blocks a tick.

A duplicate (date, id) key loads (the file is otherwise good) but blocks every tick on or after
its date (`checks.duplicate_keys`); the way out is a corrected file under the same name, which
replaces the rows of the first one. The rows of the files just loaded are numbered (data rows
from 1); a file loaded earlier is named without rows.
"""

from __future__ import annotations

import duckdb

from cswf.ingest.contract import LandingObject
from cswf.ingest.validate import FILE, ROW, typed

MAX_LINES = 5  # duplicate keys described one by one; the rest are counted
TODO = "land a corrected file under the same name (deleting a file leaves its rows in place)"
_SEP = chr(31)  # between a key's date and id in one text value


def doubled_keys(
    con: duckdb.DuckDBPyConnection, obj: LandingObject, files: list[str],
    relations: list[tuple[list[str], str]], skip: list[str],
) -> list[str]:
    """One line per key that `files` (just loaded) hold more than once in the raw table:
    the key, where it is (files and rows), which ticks it blocks and what to do.

    `relations` are the batch's registered frames (`validate.tagged`), `skip` the files of
    them that were not loaded. One aggregate over the raw table; rows only for a found key."""
    if not files:
        return []
    day, ident = obj.key
    found = con.execute(
        f"""
        SELECT r.{day}, r.{ident}, list(DISTINCT r.source_file ORDER BY r.source_file),
               count(*) OVER ()
        FROM {obj.table} AS r
        SEMI JOIN (SELECT {day}, {ident} FROM {obj.table}
                   WHERE list_contains($files, source_file)) AS k USING ({day}, {ident})
        GROUP BY ALL HAVING count(*) > 1
        ORDER BY 1, 2 LIMIT {MAX_LINES}
        """,
        {"files": files},
    ).fetchall()
    if not found:
        return []
    keys = [f"{d}{_SEP}{i}" for d, i, _, _ in found]
    rows = _rows(con, obj, relations, keys, skip)
    lines = []
    for (d, i, where, _), key in zip(found, keys, strict=True):
        parts = []
        for rel in where:
            numbers = rows.get((rel, key))
            shown = f" row{'s' if numbers and len(numbers) > 1 else ''} " \
                    f"{', '.join(map(str, numbers))}" if numbers else ""
            parts.append(f"{rel}{shown}")
        lines.append(f"({day}, {ident}) = ({d}, {i}) is in {' and '.join(parts)}: ticks on or "
                     f"after {d} are blocked until you {TODO}")
    total = found[0][3]
    if total > len(found):
        lines.append(f"{total - len(found)} more duplicate keys in {obj.table} (the check "
                     "that blocks a tick lists them)")
    return lines


def _rows(
    con: duckdb.DuckDBPyConnection, obj: LandingObject, relations: list[tuple[list[str], str]],
    keys: list[str], skip: list[str],
) -> dict[tuple[str, str], list[int]]:
    """(file, key) → the rows of the just-loaded files that hold one of `keys`."""
    columns = {c.name: c for c in obj.columns}
    day, ident = (typed(columns[name]) for name in obj.key)
    out: dict[tuple[str, str], list[int]] = {}
    for _, relation in relations:
        found = con.execute(
            f"""
            SELECT {FILE}, key, list({ROW} ORDER BY {ROW}) FROM (
                SELECT {FILE}, {ROW}, CAST({day} AS VARCHAR) || chr(31)
                                      || CAST({ident} AS VARCHAR) AS key
                FROM {relation} WHERE NOT list_contains($skip, {FILE}))
            WHERE list_contains($keys, key) GROUP BY ALL
            """,
            {"skip": skip, "keys": keys},
        ).fetchall()
        out |= {(rel, key): rows for rel, key, rows in found}
    return out
