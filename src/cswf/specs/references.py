"""Reference documents: links (a title and an http(s) URL) a workflow or a milestone carries
into its tasks, so whoever works the task has the playbook, the deck, the runbook at hand."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from cswf.specs.common import Strict

MAX_REFERENCES = 20
_SPACE = re.compile(r"\s")


class Reference(Strict):
    title: str = Field(min_length=1, max_length=200, description="What the link is.")
    url: str = Field(max_length=2000, description="An http or https address.")

    @field_validator("title")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value or "\r" in value or not value.strip():
            raise ValueError("a reference title is one non-empty line")
        return value.strip()

    @field_validator("url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or _SPACE.search(value):
            raise ValueError(f"'{value}' is not an http(s) address (like "
                             f"https://wiki.acme.example/playbooks/onboarding)")
        return value


def as_payload(*groups: list[Reference]) -> list[dict[str, str]]:
    """The links of these groups in order, each URL once (a milestone's own first)."""
    seen: dict[str, dict[str, str]] = {}
    for group in groups:
        for reference in group:
            seen.setdefault(reference.url, reference.model_dump())
    return list(seen.values())
