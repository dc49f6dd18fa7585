"""Tables the models read but do not build, named with `{{ source('<source>', '<table>') }}`.

`landing` is the raw tables of the landing data contract (`ingest/contract.py`): their columns,
types and data tests come from the contract, never from YAML. `cswf` is the engine's and
delivery's tables (`enrollments`, `tick_log`, the stored `account_facts`, ...), declared in the
shipped `sql/sources.yml` in dbt's `sources:` format; a project's `sources.yml` adds its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cswf.ingest.contract import EVENTS, OBJECTS, LandingObject
from cswf.sqlmodels.errors import ModelError
from cswf.sqlmodels.layers import root_folders
from cswf.sqlmodels.properties import ModelDecl, parse_model, read_yaml

LANDING = "landing"
SOURCES_FILE = "sources.yml"


@dataclass(frozen=True)
class SourceTable:
    source: str
    name: str
    description: str
    landing: LandingObject | None = None  # the contract object of a landing table
    decl: ModelDecl | None = None  # its YAML entry (columns, tests), for declared tables


Sources = Mapping[tuple[str, str], SourceTable]


def landing_tables() -> dict[tuple[str, str], SourceTable]:
    return {
        (LANDING, obj.table): SourceTable(
            LANDING, obj.table, f"Landing {obj.name} files, typed by the data contract: "
            f"one row per ({', '.join(obj.key)}), plus the file each row came from.", obj)
        for obj in (*OBJECTS.values(), EVENTS)
    }


def load_sources(sql_dir: Path | None) -> dict[tuple[str, str], SourceTable]:
    """Every declared source table: the landing contract's, then each layer's sources.yml."""
    tables = landing_tables()
    for root in root_folders(sql_dir):
        path = root / SOURCES_FILE
        if path.is_file():
            tables |= _declared(path)
    return tables


def _declared(path: Path) -> dict[tuple[str, str], SourceTable]:
    data = read_yaml(path)
    if not isinstance(data, Mapping) or not isinstance(data.get("sources"), list):
        raise ModelError(f"{path}: expected a mapping with a 'sources' list")
    tables = {}
    for i, source in enumerate(data["sources"]):
        key = f"sources[{i}]"
        if not isinstance(source, Mapping) or not isinstance(source.get("name"), str):
            raise ModelError(f"{path}: {key}.name: expected the source's name")
        if source["name"] == LANDING:
            raise ModelError(f"{path}: {key}.name: '{LANDING}' comes from the landing data "
                             "contract (ingest/contract.py) and cannot be declared here")
        for j, table in enumerate(source.get("tables") or []):
            where = f"{key}.tables[{j}]"
            if not isinstance(table, Mapping) or not isinstance(table.get("name"), str):
                raise ModelError(f"{path}: {where}.name: expected the table's name")
            decl = parse_model(table, path, where)
            tables[(source["name"], table["name"])] = SourceTable(
                source["name"], table["name"], decl.description, decl=decl)
    return tables
