"""The house rules, read from the source: stages import only earlier stages, the engine only
the spec models, production code neither the demo nor the tests, and nobody Dagster's privates."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import cswf

PACKAGE = Path(cswf.__file__).parent
# The flow, earliest first. A stage may import the ones before it, never one after it.
STAGES = ("specs", "ingest", "sqlmodels", "facts", "engine", "store", "delivery", "reports")
BASE = {"calendar", "settings"}  # plain helpers every stage may use
# The warehouse's definitions (every table, the transaction helper) depend on nothing and
# serve every stage that writes; the rest of `store` comes after the engine.
SHARED = {"cswf.store.tables", "cswf.store.transaction"}
# Orchestration and tooling on top: may import any stage.
ON_TOP = {"project", "cli", "defs", "demo", "quality", "clitools", "scaffold"}


def _imports(*, top_level: bool = False) -> dict[str, set[str]]:
    """Each module of the package (dotted, below `cswf`) → the modules it imports; with
    `top_level`, only the imports made when the module loads (not inside functions)."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        rel = path.relative_to(PACKAGE).with_suffix("").as_posix().replace("/", ".")
        for node in (tree.body if top_level else ast.walk(tree)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found[rel].update(names)
    return found


def _top(module: str) -> str:
    return module.split(".")[1] if module.startswith("cswf.") else ""


def test_stages_import_only_earlier_stages() -> None:
    wrong = []
    for module, names in _imports().items():
        here = module.split(".")[0]
        if here not in STAGES:
            continue
        for name in names:
            there = _top(name)
            if name in SHARED:
                continue
            if there in STAGES and STAGES.index(there) > STAGES.index(here):
                wrong.append(f"{module} imports {name}")
            if there in ON_TOP:
                wrong.append(f"{module} imports the orchestration layer {name}")
    assert wrong == []


def test_the_engine_imports_only_the_spec_models() -> None:
    wrong = [f"{module} imports {name}" for module, names in _imports().items()
             if module.startswith("engine.") for name in names
             if name.startswith("cswf.") and _top(name) not in {"engine", "specs"}]
    assert wrong == []


def test_the_shared_store_modules_depend_on_nothing() -> None:
    wrong = [f"{module} imports {name}" for module, names in _imports().items()
             if f"cswf.{module}" in SHARED for name in names if name.startswith("cswf.")]
    assert wrong == []


def test_production_code_imports_neither_the_demo_nor_the_tests() -> None:
    """Only `cswf demo` (the CLI command, inside its function) reaches the demo package."""
    wrong = [f"{module} imports {name}" for module, names in _imports(top_level=True).items()
             if not module.startswith("demo.") for name in names
             if _top(name) == "demo" or name.split(".")[0] in {"tests", "reference"}]
    assert wrong == []


def test_nothing_imports_dagster_privates() -> None:
    wrong = [f"{module} imports {name}" for module, names in _imports().items()
             for name in names if name.startswith("dagster._") or ".dagster._" in name]
    assert wrong == []
