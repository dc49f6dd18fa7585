"""`cswf init`: a new project that runs with the installed package alone.

The files are package data (`scaffold/files/`) plus what is generated from code: the landing
folder's README from the data contract, and the JSON Schema editors use to check specs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

from cswf.scaffold.landing_readme import landing_readme
from cswf.settings import CONFIG_FILE
from cswf.specs.schema import json_schema

TEMPLATES = files("cswf.scaffold") / "files"
LANDING_README = "data/landing/README.md"
SCHEMA_FILE = "workflow-spec.schema.json"
# Package-data names that differ from the file written (a dot file does not ship well).
RENAMED = {"gitignore": ".gitignore"}


@dataclass(frozen=True)
class Written:
    """What `init_project` wrote and what it replaced (with --force)."""

    created: list[str]
    replaced: list[str]


class ProjectExists(FileExistsError):
    """Files `cswf init` would write are there already; `paths` are relative to the project."""

    def __init__(self, root: Path, paths: list[str]) -> None:
        self.root, self.paths = root, paths
        super().__init__(f"{root}: {', '.join(paths)} exist")


def project_files(root: Path, today: datetime | None = None) -> dict[str, str]:
    """Every file of a new project, by path relative to `root`, with its text."""
    start = (today or datetime.now(UTC)).strftime("%Y-%m-%d 00:00")
    out = {RENAMED.get(rel, rel): text for rel, text in _templates(TEMPLATES, "")}
    out[CONFIG_FILE] = Template(out[CONFIG_FILE]).substitute(tick_start=start)
    out[LANDING_README] = landing_readme()
    out[SCHEMA_FILE] = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    out.update(dagster_files(root))
    return dict(sorted(out.items()))


def dagster_files(root: Path) -> dict[str, str]:
    """The project's `dg` entry files, by path relative to `root`: `dg dev` in the project folder
    loads `src/<module>/definitions.py`, whose defs folder calls cswf's `build_defs` for the
    project whose cswf.yaml is found from there upwards (docs/dagster.md)."""
    module = re.sub(r"[^0-9a-z_]", "_", root.resolve().name.lower()).strip("_") or "project"
    module = module if module[0].isalpha() else f"p_{module}"
    return {
        "pyproject.toml": (
            f'[project]\nname = "{module.replace("_", "-")}"\nversion = "0.1.0"\n'
            'requires-python = ">=3.11"\ndependencies = ["cswf"]\n\n'
            '[tool.dg]\ndirectory_type = "project"\n\n'
            f'[tool.dg.project]\nroot_module = "{module}"\ncode_location_name = "{module}"\n'
        ),
        f"src/{module}/__init__.py": "",
        f"src/{module}/definitions.py": (
            '"""Dagster\'s entry point, as `create-dagster project` scaffolds it."""\n\n'
            "from pathlib import Path\n\nimport dagster as dg\n\n\n@dg.definitions\n"
            "def defs() -> dg.Definitions:\n"
            "    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)\n"
        ),
        f"src/{module}/defs/__init__.py": "",
        f"src/{module}/defs/cswf_defs.py": (
            '"""cswf\'s assets, checks, jobs, schedules and sensor for this project."""\n\n'
            "from pathlib import Path\n\nimport dagster as dg\n\n"
            "from cswf.defs import build_defs, project_settings\n\n\n@dg.definitions\n"
            "def defs() -> dg.Definitions:\n"
            "    return build_defs(project_settings(Path(__file__).parent))\n"
        ),
    }


def init_project(root: Path, *, force: bool = False, today: datetime | None = None) -> Written:
    """Write a new project at `root` (created if missing). Refuses, writing nothing, when any
    of its files exists, unless `force`."""
    wanted = project_files(root, today)
    existing = [rel for rel in wanted if (root / rel).exists()]
    if existing and not force:
        raise ProjectExists(root, existing)
    for rel, text in wanted.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return Written([r for r in wanted if r not in existing], existing)


def _templates(folder: Traversable, prefix: str) -> list[tuple[str, str]]:
    out = []
    for item in folder.iterdir():
        rel = f"{prefix}{item.name}"
        if item.is_dir():
            out += _templates(item, f"{rel}/")
        elif not item.name.startswith((".", "__")) and not item.name.endswith(".pyc"):
            out.append((rel, item.read_text()))
    return out
