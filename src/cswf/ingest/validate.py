"""Reading landing files and checking their values in SQL, for many files in one scan.

The rules are SQL predicates over the raw values, so one statement checks every row of every
file of a batch; details (first bad row, its value, how many more) are only computed for the
files that have a bad row. Messages name the file, the row (data rows from 1) and the column.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import duckdb
import polars as pl

from cswf.ingest.contract import Column

FILE = "__cswf_file"  # the file a row comes from (path relative to the landing dir)
ROW = "__cswf_row"  # the row's number in its file, data rows from 1
# Spellings a BOOLEAN column accepts (any case, surrounding spaces ignored); nothing else loads.
TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")


@dataclass(frozen=True)
class Rule:
    """A bad row of `column` is one where `bad` (SQL) holds; `message` may use {value}.

    A `flag` rule does not reject the file: the row loads and is recorded as flagged."""

    column: str
    bad: str
    message: str
    flag: bool = False


def read_landing(data: bytes, suffix: str) -> pl.DataFrame:
    """CSV is read as text so the contract, not a type guess, decides what parses.

    Column names are trimmed and lower-cased, as the contract matches them.
    """
    buffer = io.BytesIO(data)
    csv = suffix == ".csv"
    frame = pl.read_csv(buffer, infer_schema=False) if csv else pl.read_parquet(buffer)
    return frame.rename({c: c.strip().lower() for c in frame.columns})


def tagged(frame: pl.DataFrame, rel: str, columns: list[str]) -> pl.DataFrame:
    """The file's `columns` with its name and row numbers, ready to be checked with others."""
    return frame.select(
        pl.lit(rel, dtype=pl.String).alias(FILE),
        pl.int_range(1, pl.len() + 1, dtype=pl.UInt32).alias(ROW),
        *columns,
    )


def typed(column: Column) -> str:
    """SQL that converts the raw value to the column's type, NULL when it does not convert.

    BOOLEAN is parsed from a fixed word list rather than DuckDB's cast, which also takes
    't', 'y' and friends: the contract names exactly what a flag may look like.
    """
    raw = f'"{column.name}"'
    if column.dtype == "BOOLEAN":
        text = f"lower(trim(CAST({raw} AS VARCHAR)))"
        return (
            f"CASE WHEN {text} IN {sql_list(TRUE_WORDS)} THEN true "
            f"WHEN {text} IN {sql_list(FALSE_WORDS)} THEN false END"
        )
    return f"TRY_CAST({raw} AS {column.dtype})"


def sql_list(values: tuple[str, ...] | list[str]) -> str:
    """A SQL list of string literals (quotes doubled)."""
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def column_rules(column: Column) -> list[Rule]:
    """The contract's rules for one column: converts to its type, key not NULL, allowed value."""
    raw = f'"{column.name}"'
    value = typed(column)
    rules = []
    if column.dtype == "BOOLEAN":
        words = ", ".join((*TRUE_WORDS, *FALSE_WORDS))
        message = f"could not convert '{{value}}' to BOOLEAN (use one of {words}, any case)"
        rules.append(Rule(column.name, f"{raw} IS NOT NULL AND {value} IS NULL", message))
    elif column.dtype != "VARCHAR":
        loaded = "; the row is loaded with the field empty" if column.extra else ""
        rules.append(Rule(column.name, f"{raw} IS NOT NULL AND {value} IS NULL",
                          f"could not convert '{{value}}' to {column.dtype}{loaded}",
                          flag=column.extra))
    if column.key:
        rules.append(Rule(column.name, f"{raw} IS NULL", "required key value is NULL"))
    if column.allowed:
        rules.append(Rule(column.name,
                          f"{value} IS NOT NULL AND {value} NOT IN {sql_list(column.allowed)}",
                          f"'{{value}}' is not one of {', '.join(column.allowed)}; the row is "
                          "loaded and flagged (a legal value? add it to allowed_values in "
                          "cswf.yaml)", flag=True))
    return rules


def flagged_rows(
    con: duckdb.DuckDBPyConnection, relation: str, rules: list[Rule], skip: list[str]
) -> list[tuple[str, int, str, str | None, str]]:
    """(file, row, column, value, message) of every row a `flag` rule holds for, in one scan,
    files in `skip` (rejected whole) left out; sorted by file and row."""
    flags = [rule for rule in rules if rule.flag]
    if not flags:
        return []
    parts = [
        f"SELECT {FILE}, {ROW}, '{rule.column}', CAST(\"{rule.column}\" AS VARCHAR), "
        f"replace('{rule.message.replace(chr(39), chr(39) * 2)}', '{{value}}', "
        f"coalesce(CAST(\"{rule.column}\" AS VARCHAR), '')) "
        f"FROM {relation} WHERE ({rule.bad}) AND NOT list_contains(?, {FILE})"
        for rule in flags
    ]
    query = " UNION ALL ".join(parts) + " ORDER BY 1, 2, 3"
    return [tuple(row) for row in con.execute(query, [skip] * len(flags)).fetchall()]


def value_problems(
    con: duckdb.DuckDBPyConnection, relation: str, rules: list[Rule]
) -> dict[str, list[str]]:
    """File → its problems, one per broken rule, for a relation of `tagged` files.

    One cheap pass finds the files with a bad row (usually none); a second pass, over those
    files only, finds per rule the bad-row count, the first bad row and its value.
    """
    if not rules:
        return {}
    any_bad = " OR ".join(f"({rule.bad})" for rule in rules)
    (bad,) = con.execute(
        f"SELECT coalesce(list(DISTINCT {FILE}) FILTER (WHERE {any_bad}), []) FROM {relation}"
    ).fetchall()[0]
    if not bad:
        return {}
    selects = []
    for i, rule in enumerate(rules):
        selects += [
            f"count(*) FILTER (WHERE {rule.bad}) AS n{i}",
            f"min({ROW}) FILTER (WHERE {rule.bad}) AS r{i}",
            f'arg_min(CAST("{rule.column}" AS VARCHAR), {ROW}) FILTER (WHERE {rule.bad}) AS v{i}',
        ]
    rows = con.execute(
        f"SELECT {FILE}, {', '.join(selects)} FROM {relation} "
        f"WHERE list_contains(?, {FILE}) GROUP BY {FILE}",
        [bad],
    ).fetchall()
    problems = {}
    for rel, *found in rows:  # one row per bad file
        reasons = []
        for i, rule in enumerate(rules):
            count, first_row, value = found[3 * i : 3 * i + 3]
            if count:
                more = f" ({count - 1} more bad rows in this column)" if count > 1 else ""
                text = rule.message.replace("{value}", str(value))
                reasons.append(f"{rel}: row {first_row}: column '{rule.column}': {text}{more}")
        problems[rel] = reasons
    return problems


def missing_columns(rel: str, missing: list[str], header: list[str]) -> str:
    """One line for a file without some required columns: all of them, and when the header
    holds a `;` or a tab, that the file is not comma-separated (the usual cause)."""
    names = ", ".join(f"'{name}'" for name in missing)
    line = f"{rel}: missing required column{'s' if len(missing) > 1 else ''} {names}"
    found = [name for sep, name in ((";", "';'"), ("\t", "a tab"))
             if any(sep in column for column in header)]
    if found:
        line += (f" (the header holds {found[0]}: CSV files must be comma-separated; save it with "
                 "',' between fields)")
    return line


def one_line(err: BaseException) -> str:
    """An error as one line, for a rejection reason."""
    return " ".join(str(err).split())
