"""cswf's assets, checks, jobs, schedules and sensor for the project whose cswf.yaml is found
from this folder upwards (CSWF_ROOT overrides; CSWF_* variables override single settings)."""

from pathlib import Path

import dagster as dg

from cswf.defs import build_defs, project_settings


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs(project_settings(Path(__file__).parent))
