"""The models of one stage (`facts` or `reports`): found in the package and the project,
rendered, linked by their `ref()`s and checked as a whole.

Every file is checked whichever model is asked for (names, refs, YAML, cycles), so a bad file
is reported by the first build rather than by the first build that happens to need it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from types import MappingProxyType

from cswf.sqlmodels.errors import ModelError
from cswf.sqlmodels.layers import project_root, stage_folders
from cswf.sqlmodels.properties import ModelDecl, load_model_yaml
from cswf.sqlmodels.render import Renderer, quote
from cswf.sqlmodels.sources import LANDING, SOURCES_FILE, SourceTable, load_sources

TICKS_TABLE = "ticks"  # fact models read the ticks being built from this temp table
KEY = ("as_of", "participant_id")  # how a fact model's extensions join it
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KIND = {"facts": "fact", "reports": "report"}


@dataclass(frozen=True)
class Model:
    """One model: its rendered SELECT, the models it refs and the source tables it reads."""

    name: str
    path: Path
    sql: str
    depends_on: frozenset[str]
    sources: frozenset[tuple[str, str]]
    decl: ModelDecl | None  # its YAML (docs, types, tests); None without one
    extensions: tuple[str, ...] = ()  # models that add fields to this one (facts only)

    @property
    def reads(self) -> frozenset[str]:
        """The source tables it reads, by table name."""
        return frozenset(table for _, table in self.sources)


@dataclass(frozen=True)
class Catalog:
    stage: str
    folders: tuple[Path, ...]
    models: Mapping[str, Model]  # read-only: a catalog is cached and shared
    order: tuple[str, ...]  # every model after the ones it refs
    sources: Mapping[tuple[str, str], SourceTable]

    @property
    def kind(self) -> str:
        return _KIND.get(self.stage, self.stage)

    def get(self, name: str) -> Model:
        if name not in self.models:
            raise ModelError(f"{self.folders[-1]}: no {name}.sql model")
        return self.models[name]

    def chain(self, name: str) -> list[Model]:
        """`name` and the models it reads, directly or not, each after the ones it reads."""
        needed = {self.get(name).name}
        for other in reversed(self.order):  # dependants come later: walk backwards
            if other in needed:
                needed |= self.models[other].depends_on
        return [self.models[n] for n in self.order if n in needed]


def load_catalog(stage: str, folder: Path | None = None) -> Catalog:
    """The models of `stage`: the package's, with `folder` (the project's `<sql>/<stage>`)
    adding models and replacing same-named files.

    Loading renders every model and parses every YAML; it is cached by the content of every
    file it reads, so a build per tick pays it once and any edit is seen at the next call.
    """
    folders = stage_folders(stage, folder)
    roots = {project_root(f) for f in folders}
    files = [p for f in folders for p in sorted(f.glob("*.sql")) + sorted(f.glob("*.yml"))
             + sorted(f.glob("macros/**/*")) if p.is_file()]
    files += [r / SOURCES_FILE for r in sorted(roots) if (r / SOURCES_FILE).is_file()]
    return _load(stage, folder, tuple((str(p), p.read_text()) for p in files))


@lru_cache(maxsize=32)
def _load(stage: str, folder: Path | None, _contents: tuple[tuple[str, str], ...]) -> Catalog:
    folders = stage_folders(stage, folder)
    sources = load_sources(project_root(folder) if len(folders) > 1 else None)
    sql_files = _files(folders, "*.sql")
    yml_files = _files(folders, "*.yml")
    # fact models are temp views that live for one build: only what they read is off limits;
    # reports are tables beside the engine's, so no source table's name may be taken
    reserved = {TICKS_TABLE} | {t for s, t in sources if stage != "facts" or s == LANDING}
    for name, path in sql_files.items():
        if not _NAME.match(name) or name in reserved:
            raise ModelError(f"{path}: '{path.stem}' cannot be a model name")
    for name, path in yml_files.items():
        if name not in sql_files:
            raise ModelError(f"{path}: documents '{name}', but there is no {name}.sql model")
    kind = _KIND.get(stage, stage)
    renderer = Renderer(folders, sql_files, sources, kind)
    decls = {name: load_model_yaml(path, name) for name, path in yml_files.items()}
    models = {}
    for name, path in sql_files.items():
        rendered = renderer.render(path)
        models[name] = Model(name, path, rendered.sql, rendered.refs, rendered.sources,
                             decls.get(name))
    models = _extend(models, stage)
    return Catalog(stage, folders, MappingProxyType(models), _order(models, kind),
                   MappingProxyType(sources))


def _files(folders: tuple[Path, ...], pattern: str) -> dict[str, Path]:
    """Files by model name; a later folder's file replaces an earlier one's."""
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.glob(pattern)):
            found[path.stem.lower()] = path
    return dict(sorted(found.items()))


def _extend(models: dict[str, Model], stage: str) -> dict[str, Model]:
    """Join each model declared with `extends: <fact model>` onto that model, by (as_of,
    participant_id): its columns follow the model's own, NULL where it has no row."""
    extensions: dict[str, list[str]] = {}
    for model in models.values():
        decl = model.decl
        if decl is None or decl.extends is None:
            continue
        target, where = decl.extends, f"{decl.path}: models[0].config.meta.cswf.extends"
        if stage != "facts":
            raise ModelError(f"{where}: only fact models can extend another model")
        if target not in models or target == model.name:
            raise ModelError(f"{where}: '{target}' is not another fact model")
        if not set(KEY) <= {c.name for c in decl.columns}:
            raise ModelError(f"{decl.path}: models[0].columns: an extension of {target} gives "
                             f"(and documents) {' and '.join(KEY)}, the key it is joined on")
        extensions.setdefault(target, []).append(model.name)
    for target, names in extensions.items():
        base = models[target]
        aliases = [(name, f"_ext{i}") for i, name in enumerate(sorted(names))]
        keep = ", ".join(KEY)
        columns = ", ".join(f"{alias}.* EXCLUDE ({keep})" for _, alias in aliases)
        joins = "\n".join(
            f"LEFT JOIN {quote(name)} AS {alias} ON "
            + " AND ".join(f"{alias}.{k} = _base.{k}" for k in KEY)
            for name, alias in aliases
        )
        sql = f"SELECT _base.*, {columns}\nFROM (\n{base.sql}\n) AS _base\n{joins}"
        models[target] = Model(base.name, base.path, sql, base.depends_on | set(names),
                               base.sources, base.decl, tuple(sorted(names)))
    return models


def _order(models: dict[str, Model], kind: str) -> tuple[str, ...]:
    graph = {name: sorted(model.depends_on) for name, model in models.items()}
    try:
        return tuple(TopologicalSorter(graph).static_order())
    except CycleError as err:
        cycle = " -> ".join(str(models[n].path) for n in reversed(err.args[1]))
        raise ModelError(f"{kind} models ref each other in a cycle: {cycle}") from err
