"""JSON Schema of workflow specs, so editors can complete and check YAML as it is typed."""

from __future__ import annotations

import json
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
