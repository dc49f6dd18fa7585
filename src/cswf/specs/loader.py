"""Load every spec in `workflow_specs/`, check it against the fact fields, and say what is wrong.

Errors are `SpecError`s printed as `file: path.to.field: message`; one bad spec never hides the
errors of another, and a spec with errors is never run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, get_args

import polars as pl
import yaml
from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ValidationError

from cswf.specs.action import ActionProblem
from cswf.specs.actions import action_type, action_type_names
from cswf.specs.common import (
    MAX_YAML_DEPTH,
    did_you_mean,
    drop_the_quotes,
    quoted_number,
    too_deep,
    unknown_field,
    yaml_problem,
)
from cswf.specs.conditions import (
    EVENTS_FIELD,
    GROUP_TAGS,
    LIST_OPS,
    MAX_NESTING,
    NUMERIC_ONLY_OPS,
    ORDERED_OPS,
    RELATIVE_DATE_OPS,
    TEXT_OPS,
    AllOf,
    AnyOf,
    Condition,
    EventLeaf,
    Leaf,
    Not,
    Op,
    SegmentRef,
    event_leaves,
    fields_used,
    leaves,
    nesting_problem,
    op_meant,
    previous_tick_fields,
    segment_refs,
)
from cswf.specs.flow import Flow, action_key, flatten, flow_problems
from cswf.specs.lifecycle import structure
from cswf.specs.segments import (
    SEGMENTS_FOLDER,
    LoadedSegment,
    Segment,
    expand_model,
    resolve,
    unknown_segment,
    wrong_object,
)
from cswf.specs.workflow import (
    STAGE_FIELD,
    STAGE_FIELD_TYPES,
    STAGE_STARTED_FIELD,
    ActionStep,
    BranchStep,
    DelayStep,
    Owner,
    WaitStep,
    Workflow,
    objective_problem,
)

SPEC_SUFFIXES = (".yaml", ".yml")
# Names a template may use besides the fact fields.
TEMPLATE_CONTEXT = ("workflow", "as_of", "step")
_STEP_TAGS = {*GROUP_TAGS, "action-step", "delay-step", "wait-step", "branch-step"}
NESTING_TODO = (f"conditions nest at most {MAX_NESTING} levels of all / any / not; flatten the "
                "rule (one `any` of many leaves, not a chain of nested groups)")


@dataclass(frozen=True)
class SpecError:
    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path or '(top)'}: {self.message}"


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: caches key on it
class LoadedWorkflow:
    """A valid spec, its source file, its templates and its content version."""

    spec: Workflow
    file: Path
    version: str
    templates: Mapping[str, str] = field(default_factory=dict)
    flow: Flow = field(default_factory=lambda: Flow(()))
    text: str = ""  # the spec file as written, kept with every version

    def structure(self) -> list[str]:
        return structure(self.spec, self.flow)

    @property
    def name(self) -> str:
        return self.spec.name

    def fact_fields(self) -> set[str]:
        """Every fact field this workflow reads: conditions, templates, owners, recipients."""
        used: set[str] = set()
        for _, tree in conditions(self.spec, self.flow):
            used |= fields_used(tree)
        for text in self.templates.values():
            used |= template_variables(text) - set(TEMPLATE_CONTEXT)
        for _, owner in owners(self.spec, self.flow):
            if owner.field is not None:
                used.add(owner.field)
        for _, _, action in self.flow.actions():
            used |= action.fact_fields()
        if self.spec.stage is not None:
            used = (used - set(STAGE_FIELD_TYPES)) | {STAGE_FIELD, STAGE_STARTED_FIELD}
        return used

    def previous_fields(self) -> set[str]:
        """Fields whose value at the previous tick the conditions compare with."""
        trees = [tree for _, tree in conditions(self.spec, self.flow)]
        fields = set().union(*(previous_tick_fields(t) for t in trees))
        if self.spec.launch == "from_now_on" and self.spec.entry is not None:
            fields |= fields_used(self.spec.entry)  # entry is re-evaluated a tick back
            if self.spec.stage is not None:
                fields = (fields - set(STAGE_FIELD_TYPES)) | {STAGE_FIELD, STAGE_STARTED_FIELD}
        return fields


def conditions(spec: Workflow, flow: Flow) -> Iterator[tuple[str, Condition]]:
    """Every condition of a spec with its path: entry, exit, objective, waits, branch checks."""
    for path, tree in (
        ("entry", spec.entry),
        ("exit", spec.exit),
        ("objective.condition", spec.objective.condition if spec.objective else None),
    ):
        if tree is not None:
            yield path, tree
    for node in flow:
        if isinstance(node.step, WaitStep) and node.step.wait.until is not None:
            yield f"{node.loc}.wait.until", node.step.wait.until
        if isinstance(node.step, BranchStep):
            for k, path in enumerate(node.step.branch):
                if path.when is not None:
                    yield f"{node.loc}.branch.{k}.when", path.when


def owners(spec: Workflow, flow: Flow) -> Iterator[tuple[str, Owner]]:
    yield "owner", spec.owner
    for k, milestone in enumerate(spec.milestones):
        if milestone.owner is not None:
            yield f"milestones.{k}.owner", milestone.owner
    for node, position, action in flow.actions():
        for key, owner in action.owners():
            yield f"{node.loc}.actions.{position}.{key}", owner


class SpecErrors(Exception):
    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


@dataclass
class SpecSet:
    workflows: list[LoadedWorkflow]
    errors: list[SpecError]
    segments: dict[str, LoadedSegment] = field(default_factory=dict)

    def require_valid(self) -> list[LoadedWorkflow]:
        if self.errors:
            raise SpecErrors(self.errors)
        return self.workflows


def load_specs(
    specs_dir: Path,
    fact_fields: Mapping[str, pl.DataType] | None = None,
    categories: Iterable[str] | None = None,
    *,
    objects: Mapping[str, Mapping[str, pl.DataType]] | None = None,
    groups: Collection[str] | None = None,
    segments_dir: Path | None = None,
) -> SpecSet:
    """Parse every spec file; with `fact_fields` (account facts) or `objects` (the fact fields
    of each participant type), also check fields, types and templates; with `groups`, check
    that every owner group exists. Segments come from `segments_dir` (default: `segments/`
    next to the specs folder)."""
    checks = _Checks(fact_fields, categories, objects, groups)
    segments, errors = load_segments(segments_dir or specs_dir.parent / SEGMENTS_FOLDER, checks)
    checks = replace(checks, segments=segments,
                     broken=frozenset({e.file.rsplit("/", 1)[-1].rsplit(".", 1)[0]
                                       for e in errors}))
    workflows: list[LoadedWorkflow] = []
    if not specs_dir.is_dir():
        return SpecSet([], [SpecError(str(specs_dir), "", "the specs folder does not exist")])
    seen: dict[str, str] = {}
    for file in sorted(p for p in specs_dir.iterdir() if p.suffix in SPEC_SUFFIXES):
        label = file.name
        text, problem = read_spec_text(file)
        if text is None:
            errors.append(SpecError(label, "", problem))
            continue
        loaded, file_errors = _parse(text, file, label, checks)
        errors.extend(file_errors)
        if loaded is None:
            continue
        if loaded.name in seen:
            errors.append(SpecError(label, "name", f"'{loaded.name}' is also defined in "
                                                   f"{seen[loaded.name]}"))
            continue
        seen[loaded.name] = label
        workflows.append(loaded)
    for loaded in workflows:
        unknown = sorted(set(loaded.spec.eligibility.except_) - set(seen))
        if unknown:
            errors.append(SpecError(seen[loaded.name], "eligibility.except",
                                    f"no workflow named {unknown}; workflows: "
                                    f"{', '.join(sorted(seen))}"))
    return SpecSet(workflows, errors, segments)


def load_segments(
    folder: Path, checks: _Checks
) -> tuple[dict[str, LoadedSegment], list[SpecError]]:
    """Every segment of `folder` (none when it does not exist), checked like a spec's
    conditions: names, segments it uses (no circle, same object), fields and types."""
    if not folder.is_dir():
        return {}, []
    parsed: dict[str, tuple[Segment, Path]] = {}
    errors: list[SpecError] = []
    for file in sorted(p for p in folder.iterdir() if p.suffix in SPEC_SUFFIXES):
        label = f"{folder.name}/{file.name}"
        text, problem = read_spec_text(file)
        raw, problems = (None, [("", problem)]) if text is None else _yaml(text)
        if raw is not None:
            try:
                segment = Segment.model_validate(raw)
            except ValidationError as exc:
                problems = [(_loc(err["loc"]), _message(err, Segment))
                            for err in exc.errors()]
            else:
                if segment.name != file.stem:
                    problems = [("name", f"'{segment.name}' must match the file name "
                                         f"'{file.stem}'")]
                elif (deep := nesting_problem(segment.condition)) is not None:
                    problems = [("condition", deep)]
                else:
                    parsed[segment.name] = (segment, file)
        errors += [SpecError(label, path, message) for path, message in problems]
    resolved, unresolved = resolve({name: seg for name, (seg, _) in parsed.items()})
    for name, problems in unresolved.items():
        errors += [SpecError(f"{folder.name}/{parsed[name][1].name}", path, message)
                   for path, message in problems]
    loaded = {}
    for name, condition in resolved.items():
        segment, file = parsed[name]
        fields = checks.fields_of(segment.object)
        problems = [] if fields is None else [
            (f"{path}.{key}", message) for path, leaf in leaves(condition, "condition")
            for key, message in check_leaf(leaf, fields)]
        errors += [SpecError(f"{folder.name}/{file.name}", path, message)
                   for path, message in problems]
        if not problems:
            loaded[name] = LoadedSegment(segment, condition, file)
    return loaded, errors


def _yaml(text: str) -> tuple[Any, list[tuple[str, str]]]:
    """A segment file's YAML mapping, or why it is not one."""
    try:
        raw = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
        return None, [("", f"not valid YAML: {one_line_error(exc)}")]
    if not isinstance(raw, dict):
        return None, [("", "a segment is a YAML mapping (name:, object:, description:, "
                           "condition:)")]
    deep = too_deep(raw)
    if deep is not None:
        return None, [(".".join(deep[:3]), f"nests more than {MAX_YAML_DEPTH} levels deep: "
                                           f"{NESTING_TODO}")]
    return raw, []


def one_line_error(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _use_segments(
    spec: Workflow, flow: Flow, checks: _Checks
) -> tuple[Workflow, list[tuple[str, str]]]:
    """The spec with the segments its conditions name put in place, or why it cannot be."""
    refs = [(path, ref) for root, tree in conditions(spec, flow)
            for path, ref in segment_refs(tree, root)]
    if not refs:
        return spec, []
    problems = []
    for path, ref in refs:
        used = checks.segments.get(ref.segment)
        if ref.segment in checks.broken:
            problems.append((f"{path}.segment", f"segment '{ref.segment}' has errors: see "
                                                f"{SEGMENTS_FOLDER}/{ref.segment}.yaml"))
        elif used is None:
            problems.append((f"{path}.segment", unknown_segment(ref.segment, checks.segments)))
        elif used.object != spec.object:
            problems.append((f"{path}.segment", wrong_object(ref.segment, used.object,
                                                             spec.object, "this workflow")))
    if problems:
        return spec, problems
    expanded = expand_model(spec, {n: s.condition for n, s in checks.segments.items()})
    if expanded.objective is not None and (problem := objective_problem(expanded.objective)):
        return spec, [("objective", problem)]
    return expanded, []


def read_spec_text(file: Path) -> tuple[str, str] | tuple[None, str]:
    """(text, "") of a spec file, or (None, why it cannot be read): a folder, unreadable, not
    UTF-8."""
    if file.is_dir():
        return None, "is a folder, not a spec file: rename it (a folder in the specs folder " \
                     "must not end in .yaml or .yml) or move it elsewhere"
    try:
        return file.read_bytes().decode("utf-8"), ""
    except UnicodeDecodeError as exc:
        return None, not_utf8(exc)
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror or exc}"


def not_utf8(exc: UnicodeDecodeError) -> str:
    """The message for a file that is not UTF-8 text."""
    line = exc.object[: exc.start].count(b"\n") + 1
    return (f"not UTF-8 text: byte 0x{exc.object[exc.start]:02x} on line {line} — save the "
            "file as UTF-8")


def parse_spec(
    text: str,
    file: Path,
    fact_fields: Mapping[str, pl.DataType] | None = None,
    categories: Iterable[str] | None = None,
    *,
    objects: Mapping[str, Mapping[str, pl.DataType]] | None = None,
    groups: Collection[str] | None = None,
    segments: Mapping[str, LoadedSegment] | None = None,
) -> LoadedWorkflow:
    """One spec from its text (templates resolve next to `file`); raises SpecErrors."""
    loaded, errors = _parse(text, file, file.name,
                            _Checks(fact_fields, categories, objects, groups, segments or {}))
    if loaded is None:
        raise SpecErrors(errors)
    return loaded


@dataclass(frozen=True)
class _Checks:
    """What a spec is checked against, besides its own rules."""

    account_fields: Mapping[str, pl.DataType] | None
    categories: Iterable[str] | None
    objects: Mapping[str, Mapping[str, pl.DataType]] | None
    groups: Collection[str] | None
    segments: Mapping[str, LoadedSegment] = field(default_factory=dict)
    broken: frozenset[str] = frozenset()  # segments with errors: a workflow using one waits

    def fields_of(self, participant: str) -> Mapping[str, pl.DataType] | None:
        if self.objects is not None:
            return self.objects.get(participant)
        return self.account_fields if participant == "account" else None


def _parse(
    text: str, file: Path, label: str, checks: _Checks
) -> tuple[LoadedWorkflow | None, list[SpecError]]:
    try:
        raw = yaml.safe_load(text)
    except RecursionError:
        return None, [SpecError(label, "", f"nests too deep to read: {NESTING_TODO}")]
    except yaml.YAMLError as exc:
        line, what = yaml_problem(exc)
        return None, [SpecError(label, f"line {line}" if line else "", what)]
    except (ValueError, TypeError, IndexError, OverflowError) as exc:
        # PyYAML's own constructors raise these for explicit tags it cannot build
        # (`!!float ` with no value, `!!int x`, `!!binary é`): the same kind of mistake.
        return None, [SpecError(label, "", f"not valid YAML: a tagged value PyYAML cannot "
                                           f"read ({type(exc).__name__}: {exc})")]
    if not isinstance(raw, dict):
        return None, [SpecError(label, "", "a spec is a YAML mapping (name:, owner:, steps:, ...)")]
    deep = too_deep(raw)
    if deep is not None:
        return None, [SpecError(label, ".".join(deep[:3]), f"nests more than {MAX_YAML_DEPTH} "
                                                          f"levels deep: {NESTING_TODO}")]
    try:
        spec = Workflow.model_validate(raw)
    except ValidationError as exc:
        return None, [SpecError(label, _loc(err["loc"]), _message(err)) for err in exc.errors()]

    flow = flatten(spec.steps)
    spec, segment_problems = _use_segments(spec, flow, checks)
    if segment_problems:
        return None, [SpecError(label, p, m) for p, m in segment_problems]
    flow = flatten(spec.steps)
    errors: list[SpecError] = [SpecError(label, p, m) for p, m in flow_problems(spec.steps)]
    errors.extend(SpecError(label, path, problem) for path, tree in conditions(spec, flow)
                  if (problem := nesting_problem(tree)) is not None)
    if spec.name != file.stem:
        errors.append(SpecError(label, "name", f"'{spec.name}' must match the file name "
                                               f"'{file.stem}'"))
    errors.extend(SpecError(label, p, m)
                  for p, m in _check_categories(spec, flow, checks.categories))
    errors.extend(SpecError(label, p, m) for p, m in _check_groups(spec, flow, checks.groups))
    templates, template_errors = _read_templates(flow, file.parent)
    errors.extend(SpecError(label, p, m) for p, m in template_errors)
    fact_fields = checks.fields_of(spec.object)
    if fact_fields is not None:
        errors.extend(SpecError(label, p, m) for p, m in check_fields(spec, flow, fact_fields))
        errors.extend(
            SpecError(label, p, m) for p, m in _check_template_names(flow, templates, fact_fields)
        )
    if errors:
        return None, errors
    return LoadedWorkflow(spec, file, spec_version(spec, templates), templates, flow, text), []


def _loc(loc: tuple[object, ...]) -> str:
    """The path of an error without the tags pydantic adds for union members."""
    tags = _STEP_TAGS | set(action_type_names())
    return ".".join(str(part) for part in loc if part not in tags)


def _message(err: Mapping[str, Any], root: type[BaseModel] = Workflow) -> str:
    """Pydantic's message, with a did-you-mean for an unknown key or value and the value given
    for one out of bounds."""
    message = str(err["msg"]).removeprefix("Value error, ")
    kind = err.get("type")
    if kind == "extra_forbidden":
        hint = did_you_mean(str(err["loc"][-1]), known_keys(err["loc"][:-1], root))
        return "unknown key (not part of the spec language)" + (f"; {hint}" if hint else "")
    if kind in ("enum", "literal_error") and isinstance(err.get("input"), str):
        expected = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
        hint = did_you_mean(err["input"], expected)
        if set(expected) == {op.value for op in Op}:  # an operator: by meaning, not spelling
            meant = op_meant(err["input"])
            hint = f"did you mean '{meant}'?" if meant else None
        return f"{message}; {hint}" if hint else message
    if kind in _BOUNDS:
        return f"{message} (got {err.get('input')!r})"
    return message


_BOUNDS = ("less_than_equal", "less_than", "greater_than_equal", "greater_than")


def known_keys(loc: Sequence[object], root: type[BaseModel] = Workflow) -> list[str]:
    """The keys the spec language allows at `loc` (a pydantic error location), following the
    model's fields and the union tags pydantic puts in the path; none when it cannot tell."""
    tags: dict[str, type[BaseModel]] = {
        "all-of": AllOf, "any-of": AnyOf, "not-of": Not, "leaf": Leaf, "segment": SegmentRef,
        "event-leaf": EventLeaf,
        "action-step": ActionStep, "delay-step": DelayStep, "wait-step": WaitStep,
        "branch-step": BranchStep,
    }
    tags |= {name: model for name in action_type_names()
             if (model := action_type(name)) is not None}
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, str) and part in tags:
            model = tags[part]
        elif model is not None and isinstance(part, str):
            model = _field_model(model, part)
    if model is None:
        return []
    return sorted({info.alias or name for name, info in model.model_fields.items()})


def _field_model(model: type[BaseModel], key: str) -> type[BaseModel] | None:
    """The one model a field of `model` holds (through lists and optionals); None for a union
    (the next tag in the path says which) or a plain value."""
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            found, todo = [], [info.annotation]
            while todo:
                kind = todo.pop()
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    found.append(kind)
                else:
                    todo.extend(get_args(kind))
            return found[0] if len(found) == 1 else None
    return None


# Keys the spec language gained after its first release, with their defaults: a spec that
# leaves them at the default hashes as it did before (upgrading cswf is not an edit). A dotted
# key is one inside a part of the spec; `delay.hours` is in every delay step, however nested.
_ADDED_LATER: dict[str, object] = {
    "guards": None, "holdout": None, "auto_deploy": True, "reentry.min_months_since_exit": 0,
}
_ADDED_TO_DELAYS: dict[str, object] = {"hours": None}
# The same for keys added anywhere inside the spec (an email's `from`, a milestone's
# `references`).
_ADDED_LATER_INSIDE: dict[str, object] = {
    "from": None, "reply_to": None, "require_approval": False, "approval_days": None,
    "references": [],
}


def _without_later_defaults(node: object) -> object:
    if isinstance(node, dict):
        return {key: _without_later_defaults(value) for key, value in node.items()
                if not (key in _ADDED_LATER_INSIDE and value == _ADDED_LATER_INSIDE[key])}
    if isinstance(node, list):
        return [_without_later_defaults(value) for value in node]
    return node


def spec_version(spec: Workflow, templates: Mapping[str, str]) -> str:
    """A content hash: the same spec text and templates give the same version."""
    dumped = _without_later_defaults(spec.model_dump(mode="json", by_alias=True))
    assert isinstance(dumped, dict)
    dumped = _without_added_later(dumped)
    canonical = json.dumps({"spec": dumped, "templates": dict(templates)}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _without_added_later(dumped: dict[str, Any]) -> dict[str, Any]:
    for key, default in _ADDED_LATER.items():
        *parents, last = key.split(".")
        part: Any = dumped
        for parent in parents:
            part = part.get(parent) if isinstance(part, dict) else None
        if isinstance(part, dict) and last in part and part[last] == default:
            del part[last]
    todo: list[Any] = [dumped.get("steps")]
    while todo:
        item = todo.pop()
        if isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, dict):
            delay = item.get("delay")
            if isinstance(delay, dict):
                for key, default in _ADDED_TO_DELAYS.items():
                    if key in delay and delay[key] == default:
                        del delay[key]
            todo.extend(p.get("steps") for p in item.get("branch") or [] if isinstance(p, dict))
    return dumped


def _check_categories(
    spec: Workflow, flow: Flow, categories: Iterable[str] | None
) -> list[tuple[str, str]]:
    if categories is None:
        return []
    allowed = list(categories)
    found = [("category", spec.category)]
    for node, position, action in flow.actions():
        found.append((f"{node.loc}.actions.{position}.category", action.category))
    return [
        (path, f"unknown category '{value}'; categories: {', '.join(allowed)}")
        for path, value in found
        if value is not None and value not in allowed
    ]


def _check_groups(
    spec: Workflow, flow: Flow, groups: Collection[str] | None
) -> list[tuple[str, str]]:
    if groups is None:
        return []
    known = ", ".join(sorted(groups)) or "none (add them to the groups file)"
    return [
        (f"{path}.group", f"unknown user group '{owner.group}'; groups: {known}")
        for path, owner in owners(spec, flow)
        if owner.group is not None and owner.group not in groups
    ]


def _read_templates(flow: Flow, folder: Path) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Collect every template text of the spec, keyed by action and part."""
    env = SandboxedEnvironment()
    templates: dict[str, str] = {}
    errors: list[tuple[str, str]] = []
    for node, a, action in flow.actions():
        base = f"{node.loc}.actions.{a}"
        try:
            parts = action.templates(folder)
        except ActionProblem as problem:
            errors.append((f"{base}.{problem.key}", problem.message))
            continue
        except UnicodeDecodeError as exc:
            errors.append((f"{base}.template", f"the template file is {not_utf8(exc)}"))
            continue
        for part, text in parts.items():
            try:
                env.parse(text)
            except TemplateSyntaxError as exc:
                errors.append((f"{base}.{part}", f"template error line {exc.lineno}: "
                                                 f"{exc.message}"))
                continue
            templates[f"{action_key(node.index, a)}.{part}"] = text
    return templates, errors


RELATED = "account"  # contact and opportunity facts carry their account's fields as account.<f>


# Filters cswf adds to Jinja2's (engine/render.py): `last_event` reads recent_events.
TEMPLATE_FILTERS = ("last_event",)


def _names_environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment()
    env.filters.update(dict.fromkeys(TEMPLATE_FILTERS, lambda value, *_: value))
    return env


def template_variables(text: str) -> set[str]:
    """The fact fields a template reads; `account.<field>` (attribute access on `account`)
    names the cross-object field of that name."""
    env = _names_environment()
    tree = env.parse(text)
    names = set(meta.find_undeclared_variables(tree))
    if RELATED not in names:
        return names
    related = {f"{RELATED}.{node.attr}" for node in tree.find_all(nodes.Getattr)
               if isinstance(node.node, nodes.Name) and node.node.name == RELATED}
    return (names - {RELATED}) | related


def _check_template_names(
    flow: Flow, templates: Mapping[str, str], fact_fields: Mapping[str, pl.DataType]
) -> list[tuple[str, str]]:
    known = set(fact_fields) | set(TEMPLATE_CONTEXT)
    errors = []
    for key, text in templates.items():
        unknown = sorted(template_variables(text) - known)
        if unknown:
            node, action, part = key.split(".")
            errors.append((
                f"{flow[int(node[1:])].loc}.actions.{action[1:]}.{part}",
                f"template uses unknown name(s) {unknown}; it may use the fact fields and "
                f"{', '.join(TEMPLATE_CONTEXT)}",
            ))
    return errors


def check_fields(
    spec: Workflow, flow: Flow, fact_fields: Mapping[str, pl.DataType]
) -> list[tuple[str, str]]:
    """Every field a spec names must exist, with a type its operator can use."""
    errors: list[tuple[str, str]] = []
    readable = dict(fact_fields)
    if spec.stage is not None:
        for needed in (STAGE_FIELD, STAGE_STARTED_FIELD):
            if needed not in fact_fields:
                errors.append(("stage", f"a journey stage reads the fact field '{needed}', "
                                        f"which the facts do not have"))
        readable |= {n: getattr(pl, t)() for n, t in STAGE_FIELD_TYPES.items()}
    for root, tree in conditions(spec, flow):
        for path, leaf in leaves(tree, root):
            if leaf.field in STAGE_FIELD_TYPES and spec.stage is None:
                errors.append((f"{path}.field", f"'{leaf.field}' exists only in a workflow "
                                                f"with a journey stage (add `stage:`)"))
                continue
            if leaf.field in STAGE_FIELD_TYPES and leaf.field in previous_tick_fields(leaf):
                errors.append((f"{path}.op", f"'{leaf.field}' has no previous-tick value; "
                                             f"use a plain comparison"))
                continue
            errors.extend((f"{path}.{key}", m) for key, m in check_leaf(leaf, readable))
        for path, _ in event_leaves(tree, root):
            if EVENTS_FIELD not in fact_fields:
                errors.append((f"{path}.event", f"an event condition reads the fact field "
                                                f"'{EVENTS_FIELD}', which the facts do not have"))
    for node, position, action in flow.actions():
        errors.extend((f"{node.loc}.actions.{position}.{key}", message)
                      for key, message in action.field_problems(spec.object, fact_fields))
    for path, owner in owners(spec, flow):
        if owner.field is not None and owner.field not in fact_fields:
            errors.append((f"{path}.field", unknown_field(owner.field, fact_fields)))
    return errors


def _kind(dtype: pl.DataType) -> str:
    if dtype.is_numeric():
        return "number"
    if dtype.is_temporal():
        return "date"
    if dtype == pl.Boolean:
        return "boolean"
    return "text"


def check_leaf(leaf: Leaf, fact_fields: Mapping[str, pl.DataType]) -> list[tuple[str, str]]:
    """Problems as (key of the leaf, message)."""
    errors = [
        (key, unknown_field(name, fact_fields))
        for key, name in (("field", leaf.field), ("compare_to", leaf.compare_to))
        if name is not None and name not in fact_fields
    ]
    if errors:
        return errors
    kind = _kind(fact_fields[leaf.field])
    op = leaf.op
    if op in TEXT_OPS and kind != "text":
        return [("op", f"'{op}' works on text; '{leaf.field}' is a {kind}")]
    if op in RELATIVE_DATE_OPS and kind != "date":
        return [("op", f"'{op}' works on dates; '{leaf.field}' is a {kind}")]
    if op in NUMERIC_ONLY_OPS and kind != "number":
        return [("op", f"'{op}' works on numbers; '{leaf.field}' is a {kind}")]
    if op in ORDERED_OPS and kind not in ("number", "date"):
        return [("op", f"'{op}' needs a number or a date; '{leaf.field}' is a {kind}")]
    if leaf.compare_to is not None and _kind(fact_fields[leaf.compare_to]) != "number":
        return [("compare_to", f"compare_to field '{leaf.compare_to}' must be a number")]
    operands = leaf.value if isinstance(leaf.value, list) else [leaf.value]
    if op in RELATIVE_DATE_OPS or op in NUMERIC_ONLY_OPS - ORDERED_OPS or leaf.value is None:
        return []
    for operand in operands:
        problem = _operand_problem(operand, kind, leaf.field)
        if problem:
            return [("value", problem if op not in LIST_OPS else f"in the list: {problem}")]
    return []


def _operand_problem(operand: object, kind: str, field_name: str) -> str | None:
    if kind == "number" and quoted_number(operand):
        return f"'{field_name}' is a number; {drop_the_quotes(str(operand))}"
    if kind == "number" and (isinstance(operand, bool) or not isinstance(operand, int | float)):
        return f"'{field_name}' is a number; {operand!r} is not"
    if kind == "text" and not isinstance(operand, str):
        return f"'{field_name}' is text; write the value in quotes: '{operand}'"
    if kind == "boolean" and not isinstance(operand, bool):
        return f"'{field_name}' is true/false; {operand!r} is not"
    if kind == "date":
        if not isinstance(operand, str | date | datetime):
            return f"'{field_name}' is a date; write the value as YYYY-MM-DD"
        try:
            datetime.fromisoformat(str(operand))
        except ValueError:
            return f"'{field_name}' is a date; '{operand}' is not YYYY-MM-DD"
    return None

