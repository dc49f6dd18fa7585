"""Properties of the engine, on random facts.

- The compiled Polars condition agrees with a row-at-a-time interpreter of the same tree.
- Running ticks live (state and previous facts read back from DuckDB each tick) equals a replay
  (one backfill, state carried in memory), table for table.
- Re-running any tick from the same inputs changes nothing.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zlib
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
from engine_harness import spec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from pydantic import TypeAdapter
from reference import holds

from cswf.engine.assign import WORKLOAD_SCHEMA, group_tasks
from cswf.engine.compile import compile_condition
from cswf.engine.evaluate import with_previous
from cswf.engine.frames import ENROLLMENT_SCHEMA, empty
from cswf.engine.tick import run_tick
from cswf.specs.conditions import Condition, previous_tick_fields
from cswf.specs.groups import UserGroup
from cswf.store.tables import ensure_engine_tables
from cswf.store.warehouse import (
    load_facts,
    load_state,
    load_workload,
    save_facts,
    write_tick,
)

AS_OF = datetime(2026, 6, 10, 12)
STAGES = ["onboarding", "adoption", "mature", "churned"]

# ---------------------------------------------------------------- compiler vs interpreter

numbers = st.one_of(st.none(), st.integers(0, 100).map(float))
stages = st.one_of(st.none(), st.sampled_from(STAGES))
dates = st.one_of(st.none(), st.dates(date(2026, 5, 1), date(2026, 8, 1)))
fact_rows = st.fixed_dictionaries({
    "score": numbers, "baseline": numbers, "stage": stages, "renewal": dates,
})

number_leaf = st.one_of(
    st.builds(lambda op, v: {"field": "score", "op": op, "value": v},
              st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge", "dropped_below",
                               "rose_above"]), st.integers(0, 100)),
    st.builds(lambda lo, w: {"field": "score", "op": "between", "value": [lo, lo + w]},
              st.integers(0, 100), st.integers(0, 30)),
    st.builds(lambda op, v, cmp: {"field": "score", "op": op, "value": v,
                                  **({"compare_to": "baseline"} if cmp else {})},
              st.sampled_from(["fell_by_pct", "rose_by_pct"]), st.integers(1, 90),
              st.booleans()),
    st.builds(lambda op: {"field": "score", "op": op}, st.sampled_from(["is_null", "not_null",
                                                                        "changed"])),
)
text_leaf = st.one_of(
    st.builds(lambda op, v: {"field": "stage", "op": op, "value": v},
              st.sampled_from(["eq", "ne", "became", "contains", "starts_with"]),
              st.sampled_from([*STAGES, "ON", "mat"])),
    st.builds(lambda op, vs: {"field": "stage", "op": op, "value": vs},
              st.sampled_from(["in", "not_in"]), st.lists(st.sampled_from(STAGES), min_size=1,
                                                          max_size=3)),
)
date_leaf = st.one_of(
    st.builds(lambda op, n: {"field": "renewal", "op": op, "value": n},
              st.sampled_from(["within_next_days", "within_last_days", "older_than_days"]),
              st.integers(0, 60)),
    st.builds(lambda op, d: {"field": "renewal", "op": op, "value": d.isoformat()},
              st.sampled_from(["lt", "ge"]), st.dates(date(2026, 5, 1), date(2026, 8, 1))),
)
trees = st.recursive(
    st.one_of(number_leaf, text_leaf, date_leaf),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"all": c}),
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"any": c}),
        children.map(lambda c: {"not": c}),
    ),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=trees, now=st.lists(fact_rows, min_size=1, max_size=8), data=st.data())
def test_compiled_conditions_agree_with_the_row_interpreter(raw, now, data) -> None:
    tree = TypeAdapter(Condition).validate_python(raw)
    before = data.draw(st.lists(fact_rows, min_size=len(now), max_size=len(now)))
    schema = {"participant_id": pl.String, "as_of": pl.Datetime("us"), "score": pl.Float64,
              "baseline": pl.Float64, "stage": pl.String, "renewal": pl.Date}
    ids = [f"p{i}" for i in range(len(now))]
    facts = pl.DataFrame(
        [{"participant_id": i, "as_of": AS_OF, **r} for i, r in zip(ids, now, strict=True)],
        schema=schema,
    )
    prev = pl.DataFrame([{"participant_id": i, "as_of": AS_OF - timedelta(hours=3), **r}
                         for i, r in zip(ids, before, strict=True)], schema=schema)
    frame = with_previous(facts, prev, previous_tick_fields(tree))
    compiled = frame.select(compile_condition(tree, schema)).collect().to_series().to_list()
    expected = [holds(tree, {"as_of": AS_OF, **r}, b) for r, b in zip(now, before, strict=True)]
    assert compiled == expected


# ---------------------------------------------------------------- live equals replay

FLOW = """
name: nurture
owner: {field: csm}
state: enabled
entry:
  all:
    - {field: score, op: lt, value: 50}
    - {field: stage, op: ne, value: churned}
reentry: {mode: multiple, min_days_since_exit: 1}
objective:
  condition: {field: score, op: ge, value: 70}
  on_met: exit
exit: {field: stage, op: eq, value: churned}
steps:
  - name: hello
    actions: [{type: email, to: email, subject: "Hi {{ name }}", body: "score {{ score }}"}]
  - name: pause
    delay: {days: 1}
  - name: follow_up
    actions: [{type: task, title: "Call {{ name }}", due_days: 2}]
"""
ALERT = """
name: alert
owner: {group: leads}
state: enabled
entry: {field: score, op: dropped_below, value: 40}
reentry: {mode: unlimited}
milestones:
  - {name: triage, trigger_days: 0, due_days: 1}
  - {name: resolve, trigger_days: 1, due_days: 3, owner: {field: csm}}
steps:
  - name: page
    actions: [{type: task, title: "Score fell for {{ name }}"}]
  - name: wait
    delay: {days: 2}
  - name: escalate
    actions: [{type: field_update, field: risk, value: high}]
"""
CHECK_IN = """
name: check_in
owner: {field: csm}
state: enabled
entry: {field: score, op: between, value: [30, 70]}
reentry: {mode: unlimited, min_days_since_exit: 1}
exit: {field: stage, op: eq, value: churned}
steps:
  - name: hello
    actions: [{type: email, name: note, to: email, subject: "Hi", body: "{{ name }}"}]
  - name: wait_for_open
    wait: {action: hello.note, result: opened, max_days: 1}
  - name: split
    branch:
      - name: opened
        action: hello.note
        result: opened
        steps:
          - {name: thank, actions: [{type: task, title: "Thank {{ name }}"}]}
      - name: high
        when: {field: score, op: ge, value: 50}
        steps:
          - {name: pause, delay: {days: 1}}
          - {name: nudge, actions: [{type: task, title: "Nudge"}]}
  - name: until_high
    wait:
      until: {field: score, op: ge, value: 60}
      max_days: 2
  - name: done
    actions: [{type: field_update, field: checked_in, value: "yes"}]
"""
STEP = timedelta(hours=12)
START = datetime(2026, 6, 1)

tick_rows = st.lists(
    st.fixed_dictionaries({"score": st.integers(0, 100).map(float),
                           "stage": st.sampled_from(["adoption", "mature", "churned"])}),
    min_size=4, max_size=4,
)


def facts_for(ticks: list[list[dict]]) -> list[pl.DataFrame]:
    out = []
    for k, rows in enumerate(ticks):
        as_of = START + k * STEP
        out.append(pl.DataFrame([
            {"participant_id": f"acct{i}", "as_of": as_of, "name": f"Account {i}",
             "csm": "csm@example.com", "email": f"a{i}@example.org", **row}
            for i, row in enumerate(rows)
        ]))
    return out


def respond(actions: pl.DataFrame, seed: int) -> list[tuple[str, str, datetime]]:
    """Some emails get opened and some tasks completed half a tick later: a fixed function of
    the action id and seed."""
    return [
        (action_id, "opened" if kind == "email" else "completed", tick + STEP / 2)
        for action_id, kind, tick in actions.select("action_id", "action_type", "tick").rows()
        if kind in ("email", "task") and zlib.crc32(f"{seed}:{action_id}".encode()) % 3 == 0
    ]


GROUPS = {"leads": UserGroup(members=("lee", "lou", "lin"), assignment="least_loaded")}


def event_frame(events: list[tuple[str, str, datetime]]) -> pl.DataFrame:
    return pl.DataFrame(events, schema=["action_id", "event_type", "occurred_at"], orient="row")


def dump(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    return {
        table: con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
        for table in ("enrollment_history", "actions_outbox", "transitions", "tick_log")
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ticks=st.lists(tick_rows, min_size=3, max_size=10), data=st.data())
def test_live_ticks_equal_a_replay_and_rerunning_a_tick_changes_nothing(ticks, data) -> None:
    workflows = [spec(FLOW), spec(ALERT), spec(CHECK_IN)]
    frames = facts_for(ticks)
    seed = data.draw(st.integers(0, 1000))

    live = duckdb.connect()
    ensure_engine_tables(live)
    events: list[tuple[str, str, datetime]] = []
    for k, facts in enumerate(frames):
        as_of = START + k * STEP
        save_facts(live, facts)
        state = load_state(live, as_of)  # read back from the database every tick
        prev = load_facts(live, as_of - STEP) if k else None
        result = run_tick(state, facts, prev, event_frame(events), workflows, as_of,
                          groups=GROUPS, workload=load_workload(live, as_of))
        assert write_tick(live, result).status == "written"
        events += respond(result.actions, seed)

    replay = duckdb.connect()
    ensure_engine_tables(replay)
    state, prev, replayed = empty(ENROLLMENT_SCHEMA), None, []
    workload = empty(WORKLOAD_SCHEMA)
    for k, facts in enumerate(frames):
        result = run_tick(state, facts, prev, event_frame(replayed), workflows,
                          START + k * STEP, groups=GROUPS, workload=workload)
        write_tick(replay, result)
        state, prev = result.state, facts
        workload = pl.concat([workload, group_tasks(result.actions)])
        replayed += respond(result.actions, seed)
    assert dump(live) == dump(replay)

    before = dump(live)
    k = data.draw(st.integers(0, len(frames) - 1))
    as_of = START + k * STEP
    again = run_tick(load_state(live, as_of), frames[k], frames[k - 1] if k else None,
                     event_frame(events), workflows, as_of, groups=GROUPS,
                     workload=load_workload(live, as_of))
    assert write_tick(live, again).status == "unchanged"
    assert dump(live) == before


def test_a_rerun_with_changed_facts_rewinds_that_tick_and_the_later_ones() -> None:
    workflows = [spec(FLOW)]
    frames = facts_for([[{"score": 10.0, "stage": "adoption"}] * 4] * 4)
    con = duckdb.connect()
    ensure_engine_tables(con)
    state, prev = empty(ENROLLMENT_SCHEMA), None
    for k, facts in enumerate(frames):
        result = run_tick(state, facts, prev, None, workflows, START + k * STEP)
        write_tick(con, result)
        state, prev = result.state, facts
    changed = frames[1].with_columns(score=pl.lit(90.0))
    result = run_tick(load_state(con, START + STEP), changed, frames[0], None, workflows,
                      START + STEP)
    outcome = write_tick(con, result)
    assert (outcome.status, outcome.rewound_ticks) == ("rewritten", 3)
    assert con.execute("SELECT count(*) FROM tick_log").fetchall() == [(2,)]


# ---------------------------------------------------------------- a stateful run (scenario 16)


class LiveRun(RuleBasedStateMachine):
    """Random snapshots, spec edits, pauses and crashes against a DuckDB file, reopened every
    tick as a new process would: the live tables always equal a replay in memory of the ticks
    that were written, and re-running the last tick is a no-op."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="cswf-stateful-"))
        self.path = str(self.folder / "cswf.duckdb")
        with duckdb.connect(self.path) as con:
            ensure_engine_tables(con)
        self.texts = {"nurture": FLOW, "alert": ALERT}
        self.written: list[tuple[pl.DataFrame, list]] = []  # (facts, workflows) per tick

    def workflows(self) -> list:
        return [spec(text) for text in self.texts.values()]

    def as_of(self, k: int) -> datetime:
        return START + k * STEP

    def evaluate(self, con: duckdb.DuckDBPyConnection, facts: pl.DataFrame,
                 workflows: list) -> object:
        k = len(self.written)
        save_facts(con, facts)
        prev = self.written[-1][0] if k else None
        return run_tick(load_state(con, self.as_of(k)), facts, prev, None, workflows,
                        self.as_of(k), groups=GROUPS, workload=load_workload(con, self.as_of(k)))

    @rule(rows=tick_rows)
    def tick(self, rows: list[dict]) -> None:
        facts = facts_for([rows] * (len(self.written) + 1))[-1]
        workflows = self.workflows()
        with duckdb.connect(self.path) as con:
            assert write_tick(con, self.evaluate(con, facts, workflows)).status == "written"
        self.written.append((facts, workflows))

    @rule(rows=tick_rows)
    def crash_before_the_write(self, rows: list[dict]) -> None:
        """Evaluated, then the process dies: nothing of the tick is kept."""
        facts = facts_for([rows] * (len(self.written) + 1))[-1]
        with duckdb.connect(self.path) as con:
            self.evaluate(con, facts, self.workflows())

    @rule(text=st.sampled_from(["Hi {{ name }}", "Hello {{ name }}", "Dear {{ name }}"]))
    def edit_the_subject(self, text: str) -> None:
        self.texts["nurture"] = re.sub(r'subject: "[^"]*"', f'subject: "{text}"',
                                       self.texts["nurture"])

    @rule(state=st.sampled_from(["enabled", "paused"]))
    def pause_or_resume(self, state: str) -> None:
        self.texts["alert"] = re.sub(r"state: \w+", f"state: {state}", self.texts["alert"])

    @invariant()
    def re_running_the_last_tick_changes_nothing(self) -> None:
        if not self.written:
            return
        k = len(self.written) - 1
        facts, workflows = self.written[k]
        with duckdb.connect(self.path) as con:
            before = dump(con)
            prev = self.written[k - 1][0] if k else None
            again = run_tick(load_state(con, self.as_of(k)), facts, prev, None, workflows,
                             self.as_of(k), groups=GROUPS,
                             workload=load_workload(con, self.as_of(k)))
            assert write_tick(con, again).status == "unchanged"
            assert dump(con) == before

    def teardown(self) -> None:
        try:
            replay = duckdb.connect()
            ensure_engine_tables(replay)
            state, prev, workload = empty(ENROLLMENT_SCHEMA), None, empty(WORKLOAD_SCHEMA)
            for k, (facts, workflows) in enumerate(self.written):
                result = run_tick(state, facts, prev, None, workflows, self.as_of(k),
                                  groups=GROUPS, workload=workload)
                write_tick(replay, result)
                state, prev = result.state, facts
                workload = pl.concat([workload, group_tasks(result.actions)])
            with duckdb.connect(self.path) as con:
                assert dump(con) == dump(replay)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


LiveRun.TestCase.settings = settings(max_examples=8, stateful_step_count=10, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow])
test_a_stateful_run_of_snapshots_edits_pauses_and_crashes = LiveRun.TestCase
