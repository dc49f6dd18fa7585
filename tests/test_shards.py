"""Participant shards (engine/shards.py): the bucket function is the documented SHA-256 one, and a
tick run in any number of shards equals the tick run in one, assignees included."""

from __future__ import annotations

import hashlib
import shutil
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from engine_harness import spec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from test_properties import ALERT, CHECK_IN, FLOW, STEP, event_frame, respond
from test_tick_chunks import REPO, TABLES
from test_tick_chunks import _run as run_quarter

from cswf import project
from cswf.demo.generate import generate_book
from cswf.engine.assign import WORKLOAD_SCHEMA, group_tasks
from cswf.engine.frames import ENROLLMENT_SCHEMA, empty
from cswf.engine.holdout import sha256_buckets
from cswf.engine.shards import Buckets, participant_shards, run_sharded_tick
from cswf.engine.tick import TickResult, run_tick
from cswf.settings import Settings, load_settings
from cswf.specs.groups import UserGroup

START = datetime(2026, 6, 1)

# A second group workflow, round robin, with eligibility and a holdout: everything a shard must
# not change.
ROTA = """
name: rota
owner: {group: rota}
state: enabled
priority: 1
eligibility: {others: all_but, except: [check_in]}
entry: {field: score, op: ge, value: 60}
reentry: {mode: unlimited, min_days_since_exit: 1}
objective: {condition: {field: stage, op: eq, value: mature}}
holdout: {percent: 20, window_days: 1}
steps:
  - name: call
    actions: [{type: task, title: "Call {{ name }}"}]
  - name: pause
    delay: {days: 1}
  - name: again
    actions: [{type: task, title: "Again {{ name }}"}]
"""
GROUPS = {"leads": UserGroup(members=("lee", "lou", "lin"), assignment="least_loaded"),
          "rota": UserGroup(members=("ria", "rob"), assignment="round_robin")}


def test_buckets_are_the_documented_sha256_prefix_and_pinned() -> None:
    ids = ["ACC-1", "ACC-2", "0001", "é"]
    by_hand = [int.from_bytes(hashlib.sha256(i.encode()).digest()[:8], "big") % 10_000
               for i in ids]
    assert sha256_buckets(ids).tolist() == by_hand == [3254, 4837, 9187, 2051]
    in_sql = duckdb.sql("SELECT ('0x' || sha256(id)[1:16])::UBIGINT % 10000 FROM "
                        "unnest(['ACC-1', 'ACC-2', '0001', 'é']) AS t(id) ORDER BY "
                        "array_position(['ACC-1', 'ACC-2', '0001', 'é'], id)").fetchall()
    assert [b for b, in in_sql] == by_hand
    assert Buckets().of(pl.Series(ids)).to_list() == by_hand


def test_shards_are_ranges_of_buckets_and_contacts_follow_their_account() -> None:
    facts = pl.DataFrame({"participant_id": ["c1", "c2", "c3"],
                          "account_id": ["ACC-1", "ACC-1", "ACC-2"]})
    # ACC-1 is bucket 3254, ACC-2 4837; a state row of a contact no longer in the facts
    # (c9) falls back to its own id's bucket.
    c9 = int(sha256_buckets(["c9"])[0])
    for shards, expected in ((1, [0, 0, 0]), (2, [0, 0, 0]), (3, [0, 0, 1]), (10, [3, 3, 4])):
        found = participant_shards(facts, None, [pl.Series(["c9", "c1"])], shards)
        assert found["participant_id"].to_list() == ["c1", "c2", "c3", "c9"]
        assert found["__shard"].to_list() == [*expected, c9 * shards // 10_000]
    # The SQL of docs/scaling.md names the same shards.
    ids = [f"ACC-{i}" for i in range(200)]
    mine = participant_shards(pl.DataFrame({"participant_id": ids}), None, [], 7)
    in_sql = duckdb.sql("SELECT ('0x' || sha256(id)[1:16])::UBIGINT % 10000 * 7 // 10000 "
                        "FROM unnest($ids) WITH ORDINALITY AS t(id, n) ORDER BY n",
                        params={"ids": ids}).fetchall()
    assert mine["__shard"].to_list() == [s for s, in in_sql]
    assert set(mine["__shard"]) == set(range(7))


FACTS = {"participant_id": pl.String, "account_id": pl.String, "as_of": pl.Datetime("us"),
         "name": pl.String, "csm": pl.String, "email": pl.String, "score": pl.Float64,
         "stage": pl.String}


def book(rows: list[list[dict | None]], k: int) -> pl.DataFrame:
    """Tick k's facts: participant i belongs to account i // 3 (absent when its row is None)."""
    return pl.DataFrame([
        {"participant_id": f"c{i}", "account_id": f"ACC-{i // 3}", "as_of": START + k * STEP,
         "name": f"Contact {i}", "csm": "csm@example.com", "email": f"c{i}@example.org", **row}
        for i, row in enumerate(rows[k]) if row is not None
    ], schema=FACTS)


Ask = tuple[int, str, str, str]  # (tick, deploy | remove, workflow, participant)
ASKED = {"workflow": pl.String, "participant_id": pl.String, "requested_by": pl.String}


def replay(rows: list[list[dict | None]], shards: int, seed: int, asks: list[Ask] = ()
           ) -> list[TickResult]:
    """Every tick of the book in `shards` shards, state, events and workload flowing on."""
    workflows = [spec(FLOW), spec(ALERT), spec(CHECK_IN), spec(ROTA)]
    state, prev, events = empty(ENROLLMENT_SCHEMA), None, []
    workload = empty(WORKLOAD_SCHEMA)
    results = []
    for k in range(len(rows)):
        facts = book(rows, k)
        as_of = START + k * STEP

        def asked(kind: str, _k: int = k) -> pl.DataFrame:
            return pl.DataFrame([{"workflow": w, "participant_id": p, "requested_by": "ops"}
                                 for t, what, w, p in asks if (t, what) == (_k, kind)],
                                schema=ASKED)
        result = run_sharded_tick(
            state, facts, prev, event_frame(events), workflows, as_of, shards=shards,
            deploys=asked("deploy"), groups=GROUPS, workload=workload,
            removals=asked("remove").with_columns(reason=pl.lit("asked"),
                                                  requested_at=pl.lit(as_of)))
        state, prev = result.state, facts
        workload = pl.concat([workload, group_tasks(result.actions)])
        events += respond(result.actions, seed)
        results.append(result)
    return results


score_rows = st.one_of(st.none(), st.fixed_dictionaries({
    "score": st.integers(0, 100).map(float),
    "stage": st.sampled_from(["adoption", "mature", "churned"])}))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), people=st.integers(1, 14), ticks=st.integers(3, 5),
       shards=st.integers(1, 8), seed=st.integers(0, 1000))
def test_a_tick_in_any_number_of_shards_equals_one(data, people, ticks, shards, seed) -> None:
    rows = data.draw(st.lists(st.lists(score_rows, min_size=people, max_size=people),
                              min_size=ticks, max_size=ticks))
    asks = data.draw(st.lists(st.tuples(
        st.integers(0, ticks - 1), st.sampled_from(["deploy", "remove"]),
        st.sampled_from(["nurture", "rota", "check_in"]),
        st.sampled_from([f"c{i}" for i in range(people + 2)])), max_size=4))
    one = replay(rows, 1, seed, asks)
    many = replay(rows, shards, seed, asks)
    for a, b in zip(one, many, strict=True):
        assert (a.participants, a.workflows) == (b.participants, b.workflows)
        assert_frame_equal(a.state, b.state)
        assert_frame_equal(a.actions, b.actions)
        assert_frame_equal(a.transitions, b.transitions)


def test_the_round_robin_continues_across_shards_as_in_one_process() -> None:
    """Six accounts entering the round robin at once: one process hands the tasks out in
    action-id order, ria, rob, ria, ...; each shard alone would start again at ria."""
    rows = [[{"score": 80.0, "stage": "adoption"}] * 18]
    one, four = replay(rows, 1, 0), replay(rows, 4, 0)
    tasks = one[0].actions.filter(pl.col("owner_group") == "rota")
    assert tasks["assignee"].to_list() == ["ria", "rob"] * (tasks.height // 2)
    assert_frame_equal(four[0].actions, one[0].actions)
    in_parts = [run_tick(empty(ENROLLMENT_SCHEMA), book(rows, 0).filter(
        pl.col("account_id") == f"ACC-{a}"), None, None, [spec(ROTA)], START, groups=GROUPS)
        for a in range(6)]
    assert {tuple(r.actions["assignee"].to_list()[:1]) for r in in_parts
            if not r.actions.is_empty()} == {("ria",)}  # what a naive split would do


@pytest.mark.parametrize("shards", [0, 10_001])
def test_the_shard_count_is_checked(shards: int) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="shards"):
        Settings(shards=shards)


def test_ten_days_of_the_demo_specs_in_four_shards_equal_one(tmp_path: Path) -> None:
    """The shipped specs (accounts, contacts, opportunities, a least-loaded and a round-robin
    group) over a generated book with simulated responses: every table is the same."""
    generate_book(tmp_path / "land", accounts=80, days=45, start=date(2026, 5, 1))
    results = {}
    for shards in (1, 4):
        root = tmp_path / f"shards{shards}"
        shutil.copytree(REPO / "workflow_specs", root / "workflow_specs")
        shutil.copy(REPO / "user_groups.yaml", root / "user_groups.yaml")
        (root / "cswf.yaml").write_text(
            f"database: {root / 'cswf.duckdb'}\nlanding_dir: {tmp_path / 'land'}\n"
            f"tick_start: '2026-05-31 00:00'\nshards: {shards}\n")
        settings = load_settings(root)
        assert settings.shards == shards
        results[shards] = run_quarter(settings)
    with duckdb.connect(str(tmp_path / "shards4" / "cswf.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(DISTINCT owner_group) FROM actions_outbox "
                       "WHERE assignee IS NOT NULL").fetchall() == [(2,)]
    for table in TABLES:
        assert results[1][table], table
        assert results[4][table] == results[1][table], table


_EIGHT = ", ".join(f'{{name: m{i}, title: "M{i}", due_days: 3, trigger_days: 0}}'
                   for i in range(8))
MILESTONES = """
name: nurture
owner: {user: csm}
state: enabled
entry: {field: score, op: ge, value: 60}
milestones: [EIGHT]
steps:
  - name: call
    actions: [{type: task, title: "Call {{ participant_id }}"}]
""".replace("EIGHT", _EIGHT)


def test_milestones_started_together_keep_their_order_in_any_shard_count() -> None:
    """Eight milestones start at the entering tick: the transitions tie on (participant,
    transition, step) and keep the order they were made in, in one shard or five."""
    people = [f"p{i:04d}" for i in range(3000)]
    facts = pl.DataFrame({"participant_id": people, "as_of": [START] * len(people),
                          "score": [70.0] * len(people)})
    one, five = (run_sharded_tick(empty(ENROLLMENT_SCHEMA), facts, None, None,
                                  [spec(MILESTONES)], START, shards=k) for k in (1, 5))
    started = one.transitions.filter((pl.col("participant_id") == "p0000")
                                     & (pl.col("transition") == "milestone_started"))
    assert started["reason"].str.extract(r"'(m\d)'").to_list() == [f"m{i}" for i in range(8)]
    assert_frame_equal(five.transitions, one.transitions)


def test_a_null_participant_id_is_in_a_shard_as_in_one_tick() -> None:
    facts = pl.DataFrame({"participant_id": ["a", None, "c", "d"], "as_of": [START] * 4,
                          "score": [70.0] * 4})
    one, three = (run_sharded_tick(empty(ENROLLMENT_SCHEMA), facts, None, None,
                                   [spec(MILESTONES)], START, shards=k) for k in (1, 3))
    assert one.state["participant_id"].to_list() == [None, "a", "c", "d"]
    assert_frame_equal(three.state, one.state)
    assert_frame_equal(three.actions, one.actions)


def test_one_shard_is_run_tick_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """`shards: 1` (the default) runs nothing of the split: no hashing, no shard map."""
    import cswf.engine.shards as shards_module

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("one shard must not split")
    monkeypatch.setattr(shards_module, "participant_shards", forbidden)
    rows = [[{"score": 80.0, "stage": "adoption"}] * 3]
    assert_frame_equal(replay(rows, 1, 0)[0].state, run_tick(
        empty(ENROLLMENT_SCHEMA), book(rows, 0), None, None,
        [spec(FLOW), spec(ALERT), spec(CHECK_IN), spec(ROTA)], START, groups=GROUPS).state)


@pytest.mark.parametrize(("shards", "reads_account"), [(1, False), (4, True)])
def test_contact_and_opportunity_facts_carry_their_account_when_sharded(
        shards: int, reads_account: bool) -> None:
    """With shards, a run reads `account_id` with the contact and opportunity facts, so they
    go to their account's shard; the account facts need nothing more."""
    from cswf.project.ticks import _by_participant, _Feed

    settings = Settings(root=REPO, shards=shards)
    feeds = {participant: _Feed.of(settings, participant, members) for participant, members
             in _by_participant(project.load_workflows(settings)).items()}
    assert set(feeds) == {"account", "contact", "opportunity"}
    for participant, feed in feeds.items():
        assert ("account_id" in feed.needed) is (reads_account and participant != "account")
