"""The README's account of the demo stays true: what it says the demo's specs do not use, they
do not use, and the tests it names for those constructs exist."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# How each construct of "What the demo does not use" reads in a spec.
UNUSED = {
    "holdout": r"^holdout:", "segments": r"\{segment:", "references": r"^\s*references:",
    "from: csm": r"from: csm", "require_approval": r"require_approval", "webhook": r"webhook",
    "delay hours": r"delay: \{[^}]*hours", "guards": r"^guards:", "auto_deploy": r"auto_deploy",
    "paused": r"^state: paused", "min_months_since_exit": r"min_months_since_exit",
}


def _section() -> str:
    text = (REPO / "README.md").read_text()
    return text.split("### What the demo does not use", 1)[1].split("\n## ", 1)[0]


def test_what_the_readme_says_the_demo_does_not_use_it_does_not_use() -> None:
    specs = {path.name: path.read_text() for path in (REPO / "workflow_specs").glob("*.yaml")}
    used = [f"{name} uses {construct}" for construct, pattern in UNUSED.items()
            for name, text in specs.items() if re.search(pattern, text, re.MULTILINE)]
    assert used == []
    assert "objective_lift" in _section()


def test_the_tests_the_readme_names_exist() -> None:
    named = set(re.findall(r"`(tests/test_\w+\.py)`", _section()))
    assert named and sorted(n for n in named if not (REPO / n).exists()) == []
