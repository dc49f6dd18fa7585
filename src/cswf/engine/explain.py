"""Every node of a condition tree judged for each participant of a facts frame, with the values
its leaves read: `cswf explain` shows which condition keeps a participant out.

The nodes are compiled like a tick compiles the whole tree (engine/compile.py), so a node's
verdict here is the tree's verdict at the tick; one select evaluates them all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import polars as pl

from cswf.engine.compile import compile_condition, event_matches, prev
from cswf.engine.evaluate import PARTICIPANT, derived_types, with_previous
from cswf.engine.stage import stage_fields
from cswf.specs.conditions import (
    EVENTS_FIELD,
    AllOf,
    AnyOf,
    Condition,
    EventLeaf,
    Leaf,
    Not,
    previous_tick_fields,
)
from cswf.specs.loader import LoadedWorkflow

NODE_SCHEMA: dict[str, pl.DataType] = {
    PARTICIPANT: pl.String(),
    "node": pl.Int32(),  # pre-order position in the tree: 0 is the whole condition
    "depth": pl.Int32(),
    "condition": pl.String(),  # `all of` / `any of` / `not` / the leaf's field, op, operand
    "field": pl.String(),
    "op": pl.String(),
    "operand": pl.String(),
    "value": pl.String(),  # the participant's value of the field (leaves only); for an event
    # leaf, how many of its events pass (and, with `where` tests, how many are in the window)
    "previous": pl.String(),  # its value at the previous tick (transition leaves only)
    "holds": pl.Boolean(),
}


def nodes(tree: Condition, depth: int = 0) -> Iterator[tuple[int, Condition]]:
    """The tree's nodes in pre-order, with their depth."""
    yield depth, tree
    children: list[Condition] = []
    if isinstance(tree, AllOf):
        children = tree.all
    elif isinstance(tree, AnyOf):
        children = tree.any
    elif isinstance(tree, Not):
        children = [tree.not_]
    for child in children:
        yield from nodes(child, depth + 1)


def _label(node: Condition) -> str:
    if isinstance(node, AllOf):
        return "all of"
    if isinstance(node, AnyOf):
        return "any of"
    if isinstance(node, Not):
        return "not"
    return node.describe()  # a leaf, an event leaf (a segment is expanded by the loader)


def _event_value(leaf: EventLeaf) -> pl.Expr:
    """`2 events`, or with `where` tests `1 of 3 events` (passing of those in the window), from
    the expression the tick reads (engine/compile.py)."""

    def count(where: bool) -> pl.Expr:
        return event_matches(leaf, where).list.sum().fill_null(0).cast(pl.String)

    noun = pl.concat_str(pl.lit(" "), pl.lit(leaf.event), pl.lit(" event(s)"))
    if not leaf.where:
        return pl.concat_str(count(True), noun)
    return pl.concat_str(count(True), pl.lit(" of "), count(False), noun)


def _operand(leaf: Leaf) -> str | None:
    if leaf.value is None:
        return None
    text = str(leaf.value)
    return f"{text} vs {leaf.compare_to}" if leaf.compare_to else text


def judge(
    tree: Condition,
    facts: pl.DataFrame,
    prev_facts: pl.DataFrame | None,
    schema: Mapping[str, pl.DataType],
    derived: Mapping[str, pl.Expr] | None = None,
) -> pl.DataFrame:
    """One row per (participant, node) of `tree` (NODE_SCHEMA): the node's verdict and, for a
    leaf, the value it read. `schema` and `derived` as for `compile_condition`."""
    derived = derived or {}
    listed = list(nodes(tree))
    frame = with_previous(facts, prev_facts, previous_tick_fields(tree))
    exprs: list[pl.Expr] = [pl.col(PARTICIPANT)]
    for i, (_, node) in enumerate(listed):
        exprs.append(compile_condition(node, schema, derived).alias(f"holds{i}"))
        if isinstance(node, Leaf):
            value = derived.get(node.field, pl.col(node.field))
            exprs.append(value.cast(pl.String, strict=False).alias(f"value{i}"))
            before = (
                pl.col(prev(node.field))
                if node.field in previous_tick_fields(node)
                else pl.lit(None)
            )
            exprs.append(before.cast(pl.String, strict=False).alias(f"previous{i}"))
        elif isinstance(node, EventLeaf):
            exprs.append(_event_value(node).alias(f"value{i}"))
            exprs.append(pl.lit(None, dtype=pl.String).alias(f"previous{i}"))
    judged = frame.select(exprs).collect()
    parts = []
    for i, (depth, node) in enumerate(listed):  # a loop over the tree's nodes, not over rows
        leaf = node if isinstance(node, Leaf) else None
        event = node if isinstance(node, EventLeaf) else None
        field = leaf.field if leaf else EVENTS_FIELD if event else None
        parts.append(
            judged.select(
                PARTICIPANT,
                pl.lit(i, dtype=pl.Int32).alias("node"),
                pl.lit(depth, dtype=pl.Int32).alias("depth"),
                pl.lit(_label(node)).alias("condition"),
                pl.lit(field, dtype=pl.String).alias("field"),
                pl.lit(str(leaf.op) if leaf else None, dtype=pl.String).alias("op"),
                pl.lit(_operand(leaf) if leaf else None, dtype=pl.String).alias("operand"),
                (pl.col(f"value{i}") if field else pl.lit(None, dtype=pl.String)).alias("value"),
                (pl.col(f"previous{i}") if field else pl.lit(None, dtype=pl.String)).alias(
                    "previous"
                ),
                pl.col(f"holds{i}").alias("holds"),
            )
        )
    return pl.concat(parts).cast(NODE_SCHEMA).sort(PARTICIPANT, "node")  # type: ignore[arg-type]


def judge_workflow_condition(
    workflow: LoadedWorkflow,
    tree: Condition,
    facts: pl.DataFrame,
    prev_facts: pl.DataFrame | None,
) -> pl.DataFrame:
    """`judge` with the workflow's journey-stage fields, as its tick reads them."""
    schema = {**dict(facts.schema), **derived_types(workflow)}
    return judge(tree, facts, prev_facts, schema, stage_fields(workflow.spec.stage))
