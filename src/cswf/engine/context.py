"""What every workflow of a tick reads: the facts, the verdicts, the time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from cswf.engine.beside import Beside
from cswf.engine.bounds import RenderBudget
from cswf.engine.frames import ROW, moment
from cswf.engine.phases import phase
from cswf.specs.conditions import Condition, fields_used

_SPLIT = "\0split"  # marks the events as split by type (no event type holds a NUL)
_NO_ENROLLMENTS = pl.Series("enrollment_id", [], dtype=pl.String)
SCANS_BEFORE_SPLIT = 8  # questions of one event type answered by scanning (seen_enrollments)


@dataclass(frozen=True)
class TickContext:
    facts: pl.DataFrame  # one row per participant
    verdicts: pl.DataFrame  # aligned with facts: one boolean column per (kind, workflow)
    as_of: datetime
    default_category: str
    events: pl.DataFrame  # action results: action_id, event_type, occurred_at
    deploys: pl.DataFrame  # manual deploy requests of this tick: workflow, participant_id, ...
    # Rendering limits, shared by every workflow of the tick (engine/bounds.py).
    render_budget: RenderBudget = field(default_factory=RenderBudget, compare=False)
    # Manual exits of this tick: workflow, participant_id, requested_by, reason, requested_at.
    removals: pl.DataFrame | None = None
    # The tick's second thread (engine/beside.py); without one, everything runs here.
    beside: Beside | None = field(default=None, compare=False)
    _seen: dict[str, pl.Series] = field(default_factory=dict, repr=False, compare=False)
    _by_action: dict[str, dict[tuple[str, str], pl.Series]] = field(
        default_factory=dict, repr=False, compare=False)
    _asked: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def seen(self, event_type: str) -> pl.Series:
        """The ids of the actions with an `event_type` event by `as_of`. Every workflow of a
        tick asks such questions, so the events are split by type once, on the first."""
        if not self._seen:
            by_type = self.events.filter(pl.col("occurred_at") <= moment(self.as_of)).select(
                "event_type", "action_id").partition_by("event_type", as_dict=True)
            self._seen.update({kind: frame["action_id"] for (kind,), frame in by_type.items()})
            self._seen[_SPLIT] = pl.Series("action_id", [], dtype=pl.String)  # not again
        found = self._seen.get(event_type)
        return found if found is not None else self._seen[_SPLIT]

    def seen_enrollments(self, event_type: str, workflow: str, key: str) -> pl.Series:
        """The enrollments of `workflow` whose action `key` has an `event_type` event by
        `as_of` (action ids are `<enrollment id>/<key>`, enrollment ids `<workflow>/...`, and
        neither a workflow name nor an action key holds a `/`).

        Every wait and branch on an action's result asks this, of seen ids that grow with the
        whole history of events. The first few questions of a type scan them (a prefix and a
        suffix test: a small book's tick asks a handful); from the next on, the ids are split
        by (workflow, key) once, a pass costing about eight scans, and each question is a
        lookup (a tick of fifty workflows asks a hundred)."""
        if "/" in key:
            return _NO_ENROLLMENTS
        by_action = self._by_action.get(event_type)
        if by_action is not None:
            return by_action.get((workflow, key), _NO_ENROLLMENTS)
        ids = self.seen(event_type)
        asked = self._asked[event_type] = self._asked.get(event_type, 0) + 1
        if asked <= SCANS_BEFORE_SPLIT:
            suffix = f"/{key}"
            mine = ids.filter(ids.str.starts_with(f"{workflow}/") & ids.str.ends_with(suffix))
            return mine.str.head(-len(suffix)).alias("enrollment_id")
        parts = ids.str.split("/")
        action = parts.list.last()
        split = pl.DataFrame({
            "workflow": parts.list.first(), "key": action,
            "enrollment_id": ids.str.head(-(action.str.len_chars().cast(pl.Int64) + 1)),
        }).filter(parts.list.len() > 1)
        by_action = self._by_action[event_type] = {
            (name, action_key): frame["enrollment_id"]
            for (name, action_key), frame in split.partition_by(
                "workflow", "key", as_dict=True).items()
        }
        return by_action.get((workflow, key), _NO_ENROLLMENTS)

    def facts_of(self, frame: pl.DataFrame, columns: list[str] | None = None) -> pl.DataFrame:
        """The facts of `frame`'s participants, row for row (gathered by position)."""
        chosen = self.facts.select(columns) if columns is not None else self.facts
        return chosen.select(pl.all().gather(frame[ROW]))

    def evidence(self, frame: pl.DataFrame, tree: Condition | None,
                 derived: Mapping[str, pl.Expr] | None = None) -> pl.Series | None:
        """The values a condition read, as JSON, so the audit trail says why; `derived` fields
        (journey stage) are computed from the facts like the condition did."""
        if tree is None:
            return None
        with phase("evidence"):
            return self._evidence(frame, tree, derived)

    def _evidence(self, frame: pl.DataFrame, tree: Condition,
                  derived: Mapping[str, pl.Expr] | None) -> pl.Series:
        fields = sorted(fields_used(tree))
        derived = {k: v for k, v in (derived or {}).items() if k in fields}
        # Only the columns the condition reads (a derived field's own inputs included).
        needed = {f for f in fields if f not in derived}.union(
            *(expr.meta.root_names() for expr in derived.values()))
        columns = [c for c in self.facts.columns if c in needed] or self.facts.columns[:1]
        gathered = self.facts_of(frame, columns)  # (one column at least: it sets the height)
        values = gathered.select(derived.get(f, pl.col(f)).alias(f) for f in fields)
        return values.select(pl.struct(fields).struct.json_encode().alias("evidence")).to_series()
