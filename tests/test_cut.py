"""store/cut.py: DuckDB's cut of a tick's inputs is engine/shards.py's `split_tick`, shard for
shard and row for row, read back with the types `.pl()` gives."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from cswf.engine.frames import ENROLLMENT_SCHEMA, conform
from cswf.engine.shards import participant_shards, split_tick
from cswf.engine.tick import DEPLOY_SCHEMA, EVENT_SCHEMA, REMOVAL_SCHEMA
from cswf.store.cut import ORDER, Cut, UncarriedType, cut_feed, read_frame, schemas_of
from cswf.store.tables import ensure_deploy_requests, ensure_engine_tables, ensure_removal_requests

BEFORE, AS_OF = datetime(2026, 6, 1, 0), datetime(2026, 6, 1, 3)
IDS = st.one_of(st.none(), st.sampled_from(["c1", "c2", "ACC-1", "é", ""]), st.text(max_size=3))
ACCOUNTS = st.one_of(st.none(), st.sampled_from(["ACC-1", "ACC-2", "ACC-3", "ACC-4", ""]))


def read_back(cut: Cut, name: str, k: int) -> pl.DataFrame:
    """Shard k's rows of input `name` as a shard step reads them."""
    found = cut.files[name].get(k)
    return read_frame(None if found is None else pl.read_parquet(found),
                      schemas_of(cut.types, "UTC")[name])


def rows(frame: pl.DataFrame) -> list[tuple]:
    return sorted(frame.rows(), key=repr)


def tables(con: duckdb.DuckDBPyConnection) -> None:
    ensure_engine_tables(con)
    ensure_deploy_requests(con)
    ensure_removal_requests(con)


@settings(max_examples=40, deadline=None)
@given(people=st.lists(st.tuples(IDS, ACCOUNTS), min_size=1, max_size=10),
       moved=st.lists(st.tuples(IDS, ACCOUNTS), max_size=6), shards=st.integers(1, 9),
       named=st.booleans(), data=st.data())
def test_the_cut_in_duckdb_is_split_tick(tmp_path_factory, people, moved, shards, named,
                                         data) -> None:
    """Contacts follow their account (this tick's, else the previous tick's), everyone else
    their own id; state, events and requests follow their participant: as `split_tick`."""
    ids = [p for p, _ in people] + [p for p, _ in moved]
    facts = pl.DataFrame({"participant_id": [p for p, _ in people],
                          "account_id": [a for _, a in people],
                          "x": list(range(len(people)))},
                         schema={"participant_id": pl.String, "account_id": pl.String,
                                 "x": pl.Int64}).unique("participant_id", keep="first",
                                                        maintain_order=True)
    prev = pl.DataFrame({"participant_id": [p for p, _ in moved],
                         "account_id": [a for _, a in moved], "x": list(range(len(moved)))},
                        schema=facts.schema).unique("participant_id", keep="first",
                                                    maintain_order=True)
    if not named:  # facts that name no account: everyone is their own key
        facts, prev = facts.drop("account_id"), prev.drop("account_id")
    who = data.draw(st.lists(st.sampled_from(ids), max_size=8))
    state = conform(pl.DataFrame({
        "participant_id": who, "workflow": ["w"] * len(who),
        "enrollment_id": [f"w/{i}" for i in range(len(who))], "step": list(range(len(who)))},
        schema={"participant_id": pl.String, "workflow": pl.String, "enrollment_id": pl.String,
                "step": pl.Int32}), ENROLLMENT_SCHEMA)
    events = pl.DataFrame({"action_id": [f"w/{i}/a" for i in range(len(who) + 2)],
                           "event_type": "opened", "occurred_at": datetime(2026, 6, 1, 1)})
    asked = [p for p in data.draw(st.lists(st.sampled_from(ids), max_size=4)) if p is not None]
    deploys = pl.DataFrame({"workflow": "w", "participant_id": asked, "requested_by": "me",
                            "requested_at": [datetime(2026, 6, 1, 2, i) for i in
                                             range(len(asked))][::-1]},
                           schema={"workflow": pl.String, "participant_id": pl.String,
                                   "requested_by": pl.String,
                                   "requested_at": pl.Datetime("us")})
    removals = deploys.with_columns(reason=pl.lit("done")).select(list(REMOVAL_SCHEMA))
    con = duckdb.connect()
    tables(con)
    history = state.with_columns(valid_from=pl.lit(BEFORE), valid_to=pl.lit(None, pl.Datetime))  # noqa: F841
    con.execute("INSERT INTO enrollment_history BY NAME SELECT * FROM history").fetchall()
    con.execute("INSERT INTO action_events BY NAME SELECT * FROM events").fetchall()
    for table, frame in (("deploy_requests", deploys), ("removal_requests", removals)):
        asks = frame.with_columns(request_id=pl.format("r{}", pl.int_range(pl.len())))  # noqa: F841
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM asks").fetchall()
    updates = pl.DataFrame({  # noqa: F841
        "action_id": [f"u{i}" for i in range(len(ids))], "tick": BEFORE,
        "participant_id": ids, "action_type": "field_update",
        "payload": [json.dumps({"field": "x", "value": str(i)}) for i in range(len(ids))]})
    con.execute("INSERT INTO actions_outbox BY NAME SELECT * FROM updates").fetchall()
    con.execute("CREATE TABLE f AS SELECT * FROM facts; CREATE TABLE p AS SELECT * FROM prev"
                ).fetchall()
    cut = Cut(Path(tmp_path_factory.mktemp("cut")), shards)
    cut_feed(con, cut, "0", "SELECT * FROM f", "SELECT * FROM p", ["w"], AS_OF, BEFORE)

    oldest = [conform(frame.sort("requested_at"), schema)  # as load_deploys reads them
              for frame, schema in ((deploys, DEPLOY_SCHEMA), (removals, REMOVAL_SCHEMA))]
    expected = split_tick(state, facts, prev, events, *oldest, shards)
    owner = participant_shards(facts, prev, [pl.Series(ids, dtype=pl.String)], shards)
    for k in range(shards):
        got = {name: read_back(cut, f"0-{name}", k) for name in (
            "facts", "prev", "state", "events", "deploys", "removals", "updates")}
        got["state"] = conform(got["state"], ENROLLMENT_SCHEMA)
        got["events"] = conform(got["events"], EVENT_SCHEMA)
        for name, schema in (("deploys", DEPLOY_SCHEMA), ("removals", REMOVAL_SCHEMA)):
            got[name] = conform(got[name].sort(ORDER), schema)  # oldest first, as one process
        for name in ("facts", "prev", "state", "events", "deploys", "removals"):
            want = expected.by[name].get(k)
            if want is None:
                assert got[name].is_empty(), (name, k)
                continue
            assert got[name].schema == want.schema, name
            assert rows(got[name]) == rows(want), (name, k)
            if name in ("deploys", "removals"):
                assert_frame_equal(got[name], want)
        assert set(got["updates"]["participant_id"]) <= set(
            owner.filter(pl.col("__shard") == k)["participant_id"]), "updates go with them"
    total = sum(read_back(cut, "0-updates", k).height for k in range(shards))
    assert total == len(set(ids)), "each participant's latest update, in exactly one shard"


def test_types_come_back_as_pl_gives_them(tmp_path: Path) -> None:
    """Parquet keeps fewer types than DuckDB hands Polars: UUIDs, 128-bit integers, enums, time
    zones, decimals, lists and structs come back as `.pl()` gives them."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/New_York'").fetchall()
    con.execute("CREATE TYPE mood AS ENUM ('sad', 'ok')").fetchall()
    query = ("SELECT 'p' || i AS participant_id, i % 3 AS __shard, "
             "TIMESTAMPTZ '2026-01-01 10:00:00+00' AS tz, 'ok'::mood AS m, "
             "'6f1c7d2e-0000-4000-8000-000000000001'::UUID AS u, "
             "12345678901234567890::HUGEINT AS h, 1.25::DECIMAL(18,3) AS d, [i, 2] AS l, "
             "{'a': i} AS s, TIMESTAMP_S '2026-01-01' AS ts, 3::UTINYINT AS ut, "
             "NULL::VARCHAR AS n FROM range(6) AS r(i)")
    want = con.sql(query).pl()
    cut = Cut(tmp_path, 3)
    cut.copy(con, "x", query)
    for k in range(3):
        found = cut.files["x"][k]
        got = read_frame(pl.read_parquet(found),
                         schemas_of(cut.types, "America/New_York")["x"])
        assert_frame_equal(got, want.filter(pl.col("__shard") == k).drop("__shard"),
                           check_row_order=False)
    empty = read_frame(None, schemas_of(cut.types, "America/New_York")["x"])
    assert empty.schema == want.drop("__shard").schema and empty.is_empty()


def test_a_participant_s_rows_stay_together_when_its_facts_name_two_accounts(
        tmp_path: Path) -> None:
    """Two facts rows for one contact (two accounts) must meet in one shard, whose engine then
    refuses them as one process does, rather than one row in each shard."""
    con = duckdb.connect()
    tables(con)
    con.execute("CREATE TABLE f AS SELECT * FROM (VALUES ('c1', 'ACC-1'), ('c1', 'ACC-2'), "
                "('c2', 'ACC-2')) AS t(participant_id, account_id)").fetchall()
    cut = Cut(tmp_path, 2)  # ACC-1 is bucket 3254 (shard 0 of 2), ACC-2 4837 (shard 0) ...
    cut_feed(con, cut, "0", "SELECT * FROM f", None, ["w"], AS_OF, None)
    shards = {k: read_back(cut, "0-facts", k)["participant_id"].to_list()
              for k in range(2)}
    assert sorted(shards.values(), key=len)[-1].count("c1") == 2, shards
    cut = Cut(tmp_path / "seven", 7)  # ... and in 7 shards they part: 3254 → 2, 4837 → 3
    cut_feed(con, cut, "0", "SELECT * FROM f", None, ["w"], AS_OF, None)
    where = [k for k in range(7) if "c1" in read_back(cut, "0-facts", k)["participant_id"]]
    assert len(where) == 1 and read_back(cut, "0-facts", where[0])["participant_id"].to_list(
        ).count("c1") == 2


def test_a_column_a_shard_cannot_carry_is_one_line(tmp_path: Path) -> None:
    con = duckdb.connect()
    tables(con)
    con.execute("CREATE TABLE f AS SELECT 'c1' AS participant_id, "
                "['6f1c7d2e-0000-4000-8000-000000000001'::UUID] AS devices").fetchall()
    with pytest.raises(UncarriedType) as caught:
        cut_feed(con, Cut(tmp_path, 2), "0", "SELECT * FROM f", None, ["w"], AS_OF, None,
                 "contact")
    assert str(caught.value) == (
        "contact facts: column 'devices' is UUID[], which a shard's input cannot carry as it "
        "is — cast it in its fact model (to VARCHAR, say), or run with shards: 1")


def test_a_manifest_s_types_are_checked_never_run(tmp_path: Path) -> None:
    """Whoever can write to the staging store must not run SQL in a shard step."""
    planted = tmp_path / "planted.csv"
    kind = f"INTEGER) AS a; COPY (SELECT 42) TO '{planted}'; SELECT CAST(NULL AS INTEGER"
    with pytest.raises(ValueError, match="not a slice cswf made"):
        schemas_of({"0-facts": [["a", kind]]}, "UTC")
    with pytest.raises(ValueError, match="time zone"):
        schemas_of({"0-facts": [["a", "INTEGER"]]}, "UTC'; COPY (SELECT 42) TO 'x")
    assert not planted.exists()
    assert schemas_of({"0-facts": [["a", "ENUM('x'');', 'y')"]]}, "Etc/UTC") == {
        "0-facts": {"a": pl.Categorical()}}
