"""cswf: customer-success workflows in your own warehouse.

In a notebook: `cswf.open("path/to/project").report("team_performance")` is a Polars frame read
from the project's BI copy (never from the working database, which a tick may hold).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cswf.reports.reader import BICopy


def open(project_dir: str | Path | None = None) -> BICopy:
    """The BI copy of the project in `project_dir` (default: found from the working directory,
    as the CLI does): `.reports()`, `.report(name)`, `.table(name)`, `.sql(query)`."""
    from cswf.reports.reader import BICopy
    from cswf.settings import load_settings

    settings = load_settings(Path(project_dir) if project_dir is not None else None)
    return BICopy(settings.bi_path)
