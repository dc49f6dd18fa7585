"""Render Jinja2 templates for a frame of participants, once per distinct input.

Templates run in Jinja2's sandbox with StrictUndefined: a name that is missing is an error, never
an empty string. A template that fails for one participant fails that action only.
"""

from __future__ import annotations

from functools import lru_cache

import polars as pl
from jinja2 import StrictUndefined, Template
from jinja2.sandbox import SandboxedEnvironment

from cswf_pipelines.specs.loader import template_variables

_ROW = "__row"


@lru_cache(maxsize=2)
def _environment(autoescape: bool) -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=autoescape)


@lru_cache(maxsize=4096)
def _compiled(text: str, autoescape: bool) -> Template:
    return _environment(autoescape).from_string(text)


def render(
    frame: pl.DataFrame, text: str, constants: dict[str, object], *, autoescape: bool = False
) -> pl.DataFrame:
    """Two columns aligned with `frame`: `rendered` (null on failure) and `error`."""
    template = _compiled(text, autoescape)
    names = sorted(template_variables(text) - constants.keys())
    present = [n for n in names if n in frame.columns]
    inputs = frame.select(present).with_row_index(_ROW) if present else None
    if inputs is None:
        rendered, error = _render_one(template, constants)
        return pl.DataFrame(
            {"rendered": [rendered] * frame.height, "error": [error] * frame.height},
            schema={"rendered": pl.String, "error": pl.String},
        )
    distinct = inputs.select(present).unique(maintain_order=True)
    outcomes = [
        _render_one(template, {**constants, **row}) for row in distinct.iter_rows(named=True)
    ]
    distinct = distinct.with_columns(
        pl.Series("rendered", [o[0] for o in outcomes], dtype=pl.String),
        pl.Series("error", [o[1] for o in outcomes], dtype=pl.String),
    )
    joined = inputs.join(distinct, on=present, how="left", nulls_equal=True).sort(_ROW)
    return joined.select("rendered", "error")


def _render_one(template: Template, context: dict[str, object]) -> tuple[str | None, str | None]:
    try:
        return template.render(context), None
    except Exception as exc:  # a template error must not stop the tick
        return None, f"{type(exc).__name__}: {exc}"
