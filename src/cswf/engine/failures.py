"""A workflow whose evaluation fails stops the tick with one message naming the workflow and the
part of its spec, before anything of the tick is written.

Polars reports some failures (a datetime out of range) as a Rust panic, `pyo3_runtime.
PanicException`, which derives from BaseException, not Exception: `evaluating` catches it
explicitly, so it becomes an `EvaluationFailed` like any other error.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import polars as pl

from cswf.engine.compile import compile_condition
from cswf.engine.evaluate import derived_types, evaluate, with_previous
from cswf.engine.stage import stage_fields
from cswf.specs.conditions import previous_tick_fields
from cswf.specs.loader import LoadedWorkflow, conditions

STEPS = "its steps"  # the part named when a workflow's flow fails outside any one step


class EvaluationFailed(ValueError):
    """`workflow 'x': evaluating <part of the spec> failed: <reason>`."""

    def __init__(self, workflow: str | None, part: str, reason: str) -> None:
        self.workflow, self.part, self.reason = workflow, part, reason
        super().__init__(f"workflow '{workflow}': evaluating {part} failed: {reason}"
                         if workflow else f"evaluating {part} failed: {reason}")


def is_panic(exc: BaseException) -> bool:
    """A Rust panic inside Polars (its class is made at run time: no name to import)."""
    return type(exc).__name__ == "PanicException"


def reason(exc: BaseException) -> str:
    """The first line of an error (Polars adds the failing expression on later lines)."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    what = first or type(exc).__name__
    return f"{what} (a panic in Polars)" if is_panic(exc) else what


@contextmanager
def evaluating(part: str, workflow: str | None = None) -> Iterator[None]:
    """Any error (a panic included) inside becomes `EvaluationFailed` for `part`; an inner
    `evaluating` names a narrower part, and an outer one adds the workflow."""
    try:
        yield
    except EvaluationFailed as exc:
        if exc.workflow is not None or workflow is None:
            raise
        raise EvaluationFailed(workflow, exc.part, exc.reason) from exc.__cause__
    except BaseException as exc:
        if not (isinstance(exc, Exception) or is_panic(exc)):
            raise  # KeyboardInterrupt, SystemExit
        raise EvaluationFailed(workflow, part, reason(exc)) from exc


def blame(facts: pl.DataFrame, prev_facts: pl.DataFrame | None,
          workflows: Sequence[LoadedWorkflow], failure: BaseException) -> EvaluationFailed:
    """The conditions of all workflows are evaluated in one query; when it fails, evaluate them
    one at a time to name the workflow and the condition (entry, exit, steps.2.wait.until...)."""
    for workflow in workflows:
        try:
            evaluate(facts, prev_facts, [workflow])
        except BaseException as exc:
            if not (isinstance(exc, Exception) or is_panic(exc)):
                raise
            return EvaluationFailed(workflow.name, _condition(facts, prev_facts, workflow) or
                                    "its conditions", reason(exc))
    return EvaluationFailed(None, "the conditions", reason(failure))


def _condition(facts: pl.DataFrame, prev_facts: pl.DataFrame | None,
               workflow: LoadedWorkflow) -> str | None:
    """The path of the first condition of `workflow` that fails alone."""
    typed = {**dict(facts.schema), **derived_types(workflow)}
    derived = stage_fields(workflow.spec.stage)
    for path, tree in conditions(workflow.spec, workflow.flow):
        try:
            frame = with_previous(facts, prev_facts, previous_tick_fields(tree))
            frame.select(compile_condition(tree, typed, derived)).collect()
        except BaseException as exc:
            if not (isinstance(exc, Exception) or is_panic(exc)):
                raise
            return path
    return None
