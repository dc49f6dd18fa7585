"""Render a model's SQL: Jinja in a sandbox, strict about undefined names, with dbt's `ref()`
and `source()`. Rendering records what a model reads, so dependencies are declared rather
than guessed from the text."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from cswf.ingest.contract import contract_columns
from cswf.sqlmodels.errors import ModelError


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class _Reads:
    refs: set[str] = field(default_factory=set)
    sources: set[tuple[str, str]] = field(default_factory=set)


class _RefError(Exception):
    """A bad ref() or source(), raised through Jinja and reported with the file."""


@dataclass(frozen=True)
class Rendered:
    sql: str
    refs: frozenset[str]
    sources: frozenset[tuple[str, str]]


class Renderer:
    """One Jinja environment per set of folders: macros come from each folder's `macros/`, a
    project's macro file replacing the shipped one of the same name."""

    def __init__(self, folders: Collection[Path], models: Collection[str],
                 sources: Collection[tuple[str, str]], kind: str) -> None:
        self._models = set(models)
        self._sources = set(sources)
        self._kind = kind
        self._reads = _Reads()
        loader = ChoiceLoader([FileSystemLoader(str(f)) for f in reversed(list(folders))])
        self._env = SandboxedEnvironment(loader=loader, undefined=StrictUndefined,
                                         keep_trailing_newline=True, autoescape=False)
        # contract_columns('accounts'): the contract's own columns, so `r.* EXCLUDE (...)` of
        # them carries a project's extra fields (settings `fields:`) into its facts.
        self._env.globals.update(ref=self._ref, source=self._source,
                                 contract_columns=contract_columns)

    def render(self, path: Path) -> Rendered:
        self._reads = _Reads()
        try:
            text = self._env.from_string(path.read_text()).render()
        except _RefError as err:
            raise ModelError(f"{path}: {err}") from None
        except TemplateError as err:
            raise ModelError(f"{path}: template error: {err}") from err
        except Exception as err:  # anything a template expression raises, e.g. {{ 1 / 0 }}
            raise ModelError(f"{path}: template error: {type(err).__name__}: {err}") from err
        reads = self._reads
        return Rendered(trim(text), frozenset(reads.refs), frozenset(reads.sources))

    def _ref(self, *args: str, **kwargs: object) -> str:
        if kwargs or len(args) != 1 or not isinstance(args[0], str):
            raise _RefError(f"ref{args!r}: expected one model name, e.g. ref('account_latest')")
        name = args[0]
        if name not in self._models:
            tables = [f"source('{s}', '{t}')" for s, t in sorted(self._sources) if t == name]
            hint = f"; the table is {tables[0]}" if tables else ""
            known = ", ".join(sorted(self._models))
            raise _RefError(f"ref('{name}'): no {self._kind} model '{name}' (known: {known}){hint}")
        self._reads.refs.add(name)
        return quote(name)

    def _source(self, *args: str, **kwargs: object) -> str:
        if kwargs or len(args) != 2 or not all(isinstance(a, str) for a in args):
            raise _RefError(f"source{args!r}: expected a source and a table, "
                            "e.g. source('landing', 'raw_accounts')")
        key = (args[0], args[1])
        if key not in self._sources:
            known = ", ".join(f"{s}.{t}" for s, t in sorted(self._sources))
            raise _RefError(f"source('{key[0]}', '{key[1]}'): no such source table "
                            f"(known: {known})")
        self._reads.sources.add(key)
        return quote(key[1])


def trim(sql: str) -> str:
    """Drop trailing comment lines and semicolons, so the SELECT can be wrapped in a statement."""
    lines = sql.rstrip().splitlines()
    while lines and (not lines[-1].strip() or lines[-1].strip().startswith("--")):
        lines.pop()
    return "\n".join(lines).rstrip().rstrip(";").rstrip()

