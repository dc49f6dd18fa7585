"""Bounds on rendering: a time limit per render, a budget of rendering time per tick, and a cap
on the text a render may produce, all enforced *while* the template runs.

Why not a signal: SIGALRM only reaches the main thread, and Dagster runs ops in threads and
processes. Instead the templates are compiled so that they check a deadline themselves: every
`{% for %}` iterates through a checked iterator, and every piece of output (also inside macros,
`{% set %}` blocks and `caller()`, which buffer text before it is returned) is counted and
checked as it is produced. The sandbox's calls, attribute lookups and arithmetic check the
deadline too. So a hostile loop stops within a few iterations of its deadline in any thread,
and a template that would produce 300 MB stops at the cap without building it.

The per-tick budget (wall seconds of rendering) keeps a tick whose templates are all slow from
taking minutes; once it is spent, the tick's remaining Jinja2 renders fail at once. Which
render crosses the budget depends on the machine's speed (the only outcome here that does); the
per-render cap on output is exact and machine-independent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame

RENDER_SECONDS = 1.0  # per render; longer fails that action
BUDGET_SECONDS = 30.0  # of rendering per tick; past it, the tick's remaining renders fail
MAX_CHARS = 256 * 1024  # characters a render may produce (macros and blocks included)
LOOP_FILTER = "_cswf_checked_loop"  # wraps every {% for %}'s iterable (see BoundedCodeGenerator)


class RenderTimeout(Exception):
    pass


class RenderTooLarge(Exception):
    pass


class RenderBudgetSpent(Exception):
    pass


@dataclass
class RenderBudget:
    """Rendering limits for one tick; `spent` grows as its renders run (one budget is shared
    by every workflow of the tick)."""

    seconds: float = BUDGET_SECONDS
    per_render_seconds: float = RENDER_SECONDS
    max_chars: int = MAX_CHARS
    spent: float = field(default=0.0, compare=False)

    def remaining(self) -> float:
        return self.seconds - self.spent


@dataclass
class _Limits:
    deadline: float  # time.monotonic() value
    max_chars: int
    error: type[Exception]  # what passing the deadline raises
    message: str
    produced: int = 0


_CURRENT = threading.local()  # .limits: the render under way in this thread, or None


def _limits() -> _Limits | None:
    return getattr(_CURRENT, "limits", None)


def check_deadline() -> None:
    limits = _limits()
    if limits is not None and time.monotonic() > limits.deadline:
        raise limits.error(limits.message)


def produced(text: Any) -> Any:
    """Count a piece of output of the render under way (returned unchanged)."""
    limits = _limits()
    if limits is not None:
        limits.produced += len(text)
        if limits.produced > limits.max_chars:
            raise RenderTooLarge(f"rendering produced more than {limits.max_chars} characters")
        if time.monotonic() > limits.deadline:
            raise limits.error(limits.message)
    return text


class _Checked:
    """An iterable that checks the deadline at every item; keeps len() for `loop.length`."""

    def __init__(self, iterable: Iterable[Any]) -> None:
        self._iterable = iterable

    def __len__(self) -> int:
        return len(self._iterable)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        for item in self._iterable:
            check_deadline()
            yield item


def checked_loop(iterable: Any) -> Any:
    """The filter every `{% for %}` iterates through (undefined values pass unchanged, so
    StrictUndefined still says which name is missing)."""
    try:
        iter(iterable)
    except Exception:
        return iterable
    return _Checked(iterable)


class BoundedCodeGenerator(CodeGenerator):
    """Jinja2's code generator, with every loop and every output checked (module docstring)."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        # Before the generator collects the filters the template uses.
        for loop in node.find_all(nodes.For):
            if not (isinstance(loop.iter, nodes.Filter) and loop.iter.name == LOOP_FILTER):
                loop.iter = nodes.Filter(loop.iter, LOOP_FILTER, [], [], None, None,
                                         lineno=loop.iter.lineno)
        super().visit_Template(node, frame)

    def _output_const_repr(self, group: Iterable[Any]) -> str:
        return f"environment.produced({super()._output_const_repr(group)})"

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        self.write("environment.produced(")
        super()._output_child_pre(node, frame, finalize)

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        super()._output_child_post(node, frame, finalize)
        self.write(")")


class bounded:
    """`with bounded(budget):` one render under the budget's limits; charges its time."""

    def __init__(self, budget: RenderBudget) -> None:
        self._budget = budget
        self._started = 0.0

    def __enter__(self) -> None:
        budget = self._budget
        remaining, per_render = budget.remaining(), budget.per_render_seconds
        spent = f"the tick's render budget of {budget.seconds:g}s is spent"
        if remaining <= 0:
            raise RenderBudgetSpent(spent)
        error, message = ((RenderBudgetSpent, spent) if remaining < per_render else
                          (RenderTimeout, f"rendering took longer than {per_render:g}s"))
        self._started = time.monotonic()
        _CURRENT.limits = _Limits(self._started + min(per_render, remaining), budget.max_chars,
                                  error, message)

    def __exit__(self, *exc: object) -> None:
        _CURRENT.limits = None
        self._budget.spent += time.monotonic() - self._started
