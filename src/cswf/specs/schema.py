"""JSON Schema of workflow specs, so editors can complete and check YAML as it is typed."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cswf.specs.workflow import Workflow


def json_schema() -> dict:
    schema = Workflow.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "cswf workflow spec"
    return schema


def write_json_schema(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")


# The comment editors read (the YAML language server): `# yaml-language-server: $schema=PATH`.
_MODELINE = re.compile(r"^#\s*yaml-language-server:\s*\$schema=(\S+)", re.MULTILINE)


def referenced_schema(specs_dir: Path) -> Path | None:
    """The schema file the specs of `specs_dir` point their editors at (the first spec, by
    name, with a local `$schema` comment), so `cswf schema` writes where they look."""
    for spec in sorted(specs_dir.glob("*.yaml")) if specs_dir.is_dir() else []:
        found = _MODELINE.search(spec.read_text(errors="replace")[:2000])
        if found and "://" not in found[1]:
            return (spec.parent / found[1]).resolve()
    return None
