"""Segments: named conditions in `segments/*.yaml` that workflows use as `{segment: name}`.

Catalyst lets a CSM "duplicate the filters from an existing segment"; here a segment is written
once and every workflow that names it reads the same rule. The loader puts each segment's
condition in place of its name before anything else reads the spec, so the engine never sees a
segment, and a workflow's version (a hash of the spec) changes when a segment it uses changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cswf.specs.common import did_you_mean
from cswf.specs.conditions import AllOf, AnyOf, Condition, Not, SegmentRef, segment_refs

SEGMENTS_FOLDER = "segments"  # next to workflow_specs/, unless settings say otherwise


class Segment(BaseModel):
    """One segment file: who it is about and the condition they meet."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Must match the file name (segments/<name>.yaml).")
    object: Literal["account", "contact", "opportunity"] = Field(
        default="account", description="The participants it describes, as a workflow's object.")
    description: str = Field(default="", description="What the segment means, for people.")
    condition: Condition = Field(description="The condition its members meet; it may use "
                                             "other segments ({segment: name}).")


@dataclass(frozen=True)
class LoadedSegment:
    """A valid segment, its condition with the segments it uses put in place."""

    segment: Segment
    condition: Condition
    file: Path

    @property
    def name(self) -> str:
        return self.segment.name

    @property
    def object(self) -> str:
        return self.segment.object


def unknown_segment(name: str, known: Mapping[str, object]) -> str:
    """The message for a `{segment: name}` naming no segment."""
    hint = did_you_mean(name, known)
    listed = ", ".join(sorted(known)) or f"none (write {SEGMENTS_FOLDER}/{name}.yaml)"
    return f"unknown segment '{name}'{f' ({hint})' if hint else ''}; segments: {listed}"


def wrong_object(name: str, theirs: str, ours: str, what: str) -> str:
    return (f"segment '{name}' describes {theirs}s; {what} is about {ours}s (a segment is used "
            "only with its own object)")


def resolve(
    segments: Mapping[str, Segment],
) -> tuple[dict[str, Condition], dict[str, list[tuple[str, str]]]]:
    """Each segment's condition with the segments it uses put in place, and the problems of
    those that cannot be resolved (an unknown segment, another object, a circle), as
    (path, message) per segment name."""
    done: dict[str, Condition] = {}
    problems: dict[str, list[tuple[str, str]]] = {}

    def visit(name: str, chain: list[str]) -> None:
        if name in done or name in problems:
            return
        here: list[tuple[str, str]] = []
        segment = segments[name]
        for path, ref in segment_refs(segment.condition, "condition"):
            used = ref.segment
            if used not in segments:
                here.append((f"{path}.segment", unknown_segment(used, segments)))
            elif used == name or used in chain:
                before = chain[chain.index(used):] if used in chain else []
                circle = " → ".join([*before, name, used])
                here.append((f"{path}.segment", f"segments use each other in a circle: "
                                                f"{circle}; a segment cannot contain itself"))
            else:
                visit(used, [*chain, name])
                if used in problems:
                    here.append((f"{path}.segment", f"segment '{used}' has errors: see "
                                                    f"{SEGMENTS_FOLDER}/{used}.yaml"))
                elif segments[used].object != segment.object:
                    here.append((f"{path}.segment", wrong_object(
                        used, segments[used].object, segment.object, "this segment")))
        if here:
            problems[name] = here
        else:
            done[name] = expand(segment.condition, done)

    for name in segments:
        visit(name, [])
    return done, problems


def expand(node: Condition, resolved: Mapping[str, Condition]) -> Condition:
    """The tree with every `{segment: name}` replaced by that segment's condition."""
    if isinstance(node, SegmentRef):
        return resolved[node.segment]
    if isinstance(node, AllOf):
        return AllOf(all=[expand(child, resolved) for child in node.all])
    if isinstance(node, AnyOf):
        return AnyOf(any=[expand(child, resolved) for child in node.any])
    if isinstance(node, Not):
        return Not(not_=expand(node.not_, resolved))
    return node  # a leaf of any kind


Model = TypeVar("Model", bound=BaseModel)


def expand_model(model: Model, resolved: Mapping[str, Condition]) -> Model:
    """A copy of a spec model with the segments of every condition in it put in place (entry,
    exit, objective, waits and branches, at any depth)."""
    return _expand(model, resolved)  # type: ignore[no-any-return]


def _expand(value: object, resolved: Mapping[str, Condition]) -> object:
    if isinstance(value, AllOf | AnyOf | Not | SegmentRef):
        return expand(value, resolved)
    if isinstance(value, BaseModel):
        updates = {}
        for name in type(value).model_fields:
            old = getattr(value, name)
            new = _expand(old, resolved)
            if new is not old:
                updates[name] = new
        return value.model_copy(update=updates) if updates else value
    if isinstance(value, list):
        items = [_expand(item, resolved) for item in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value
