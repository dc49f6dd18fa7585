"""Where models come from: the package's SQL, then a project's, which adds and overrides.

A project's SQL folder mirrors the package's (`facts/`, `reports/`, `sources.yml`). A file there
replaces the shipped file of the same name (`facts/account_facts.sql`, `.yml`, a macro) and a new
file adds a model; the package's other files stay. Callers name the project's folder; when that
is the package's own folder (no project SQL), the package is the only layer.
"""

from __future__ import annotations

from pathlib import Path

from cswf.settings import PACKAGE_SQL

STAGES = ("facts", "reports")


def stage_folders(stage: str, folder: Path | None) -> tuple[Path, ...]:
    """The folders of `stage`'s models, lowest layer first; `folder` is the project's folder of
    that stage (e.g. `<project>/sql/facts`), None for the package alone."""
    package = PACKAGE_SQL / stage
    if folder is None or _same(folder, package):
        return (package,)
    return (package, folder)


def root_folders(sql_dir: Path | None) -> tuple[Path, ...]:
    """The SQL roots, lowest layer first: the package's, then the project's."""
    if sql_dir is None or _same(sql_dir, PACKAGE_SQL):
        return (PACKAGE_SQL,)
    return (PACKAGE_SQL, sql_dir)


def project_root(stage_folder: Path | None) -> Path | None:
    """The SQL root holding a stage folder (`<project>/sql` for `<project>/sql/facts`)."""
    return None if stage_folder is None else stage_folder.parent


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
