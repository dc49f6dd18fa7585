"""Shard bench: what one shard of a tick costs, for a book split in 1, 2, 4 ... shards.

    .venv/bin/python bench/shards.py --accounts 4000000 --shards 1,2,4

Builds the benchmark's book (bench/bench.py: N accounts x 50 workflows, two daily snapshots),
then for each shard count:

1. the prepare step, in a process of its own: the product's cut (store/cut.py `cut_feed`, as
   project/fanout.py's `prepare_tick` calls it) writes both snapshots' facts of every account,
   the (empty) state, events and requests, by shard, with DuckDB's `COPY … PARTITION_BY`, and
   publishes each shard's part as its input slice in a staging folder (store/slices.py);
2. every shard in a fresh process of its own, one after another: it reads only its input
   slice (never the DuckDB file; project/fanout.py `shard_inputs`), runs the first tick of
   the book and the next one (`run_tick` on its participants), and reports wall time, CPU
   time and peak memory;
3. the global step (engine/shards.py `merge_shards`: the shards' results as one tick) on their
   results, which must equal the one-shard result row for row.

A shard of one bucket (`--fixed 10000`: a ten-thousandth of the book) gives the fixed cost a
shard adds. On a cluster the shards of a tick run at once, so a tick's wall time is about the
prepare step, its slowest shard and the global step: the figure printed as "projected".
Results go to bench/shards.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl

from bench import FACTS_SQL, T0, T1, child, make_book, make_workflows, peak_gib
from cswf.engine.frames import ENROLLMENT_SCHEMA, empty
from cswf.engine.shards import merge_shards
from cswf.engine.tick import TickResult, run_tick
from cswf.facts.models import build_facts
from cswf.project.fanout import shard_inputs
from cswf.store.cut import Cut, cut_feed, timestamp
from cswf.store.slices import INPUT, FolderSlices
from cswf.store.tables import ensure_deploy_requests, ensure_engine_tables, ensure_removal_requests
from cswf.store.warehouse import fact_projection, save_facts

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("state", "actions", "transitions")


def build(folder: str, accounts: int) -> None:
    """Child process: the book and its facts for both ticks, in `folder`/book.duckdb."""
    con = duckdb.connect(str(Path(folder) / "book.duckdb"))
    started = time.perf_counter()
    make_book(con, accounts)
    save_facts(con, build_facts(con, [T0, T1], FACTS_SQL))
    ensure_engine_tables(con)  # empty: the prepare step reads them as a first tick would
    ensure_deploy_requests(con)
    ensure_removal_requests(con)
    con.close()
    print(json.dumps({"build_s": time.perf_counter() - started}))


def prepare(folder: str, workflows: int, shards: int, memory: str | None) -> None:
    """Child process: the prepare step, every shard's input slice published (with `memory`,
    DuckDB's `memory_limit` for it); figures as JSON."""
    specs = make_workflows(workflows)
    fields = set().union(*(w.fact_fields() for w in specs), *(w.previous_fields() for w in specs))
    columns = fact_projection(fields | {"snapshot_date"})  # as a tick reads them
    wall, cpu = time.perf_counter(), time.process_time()
    con = duckdb.connect(str(Path(folder) / "book.duckdb"), read_only=True)
    if memory:
        con.execute(f"SET memory_limit = '{memory}'").fetchall()
    staging = _staging(folder, shards)
    staging.mkdir()
    cut = Cut(Path(tempfile.mkdtemp(dir=staging)), shards)
    cut_feed(con, cut, "0", f"SELECT {columns} FROM account_facts WHERE as_of = {timestamp(T1)}",
             f"SELECT {columns} FROM account_facts WHERE as_of = {timestamp(T0)}",
             [w.name for w in specs], T1, T0)
    info = {"types": cut.types,
            "time_zone": con.execute("SELECT current_setting('TimeZone')").fetchall()[0][0]}
    accounts = con.execute(f"SELECT count(*) FROM account_facts WHERE as_of = {timestamp(T1)}"
                           ).fetchall()[0][0]
    con.close()
    done = time.perf_counter()
    store = FolderSlices(staging)
    for k in range(shards):
        store.publish(T1, k, shards, cut.of(k), info, kind=INPUT)
    cut.remove()
    print(json.dumps({
        "accounts": accounts, "cut_s": done - wall, "publish_s": time.perf_counter() - done,
        "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
        "peak_rss_gib": peak_gib()}))


def run_shard(folder: str, workflows: int, shards: int, shard: int) -> None:
    """Child process: one shard's two ticks from its input slice; its next-tick results to
    Parquet; figures as JSON."""
    specs = make_workflows(workflows)
    wall, cpu = time.perf_counter(), time.process_time()
    [given] = FolderSlices(_staging(folder, shards)).read(T1, shards, kind=INPUT, only=shard)
    parts, accounts = shard_inputs(given, 0, shard, T1, T0)
    facts = {T0: parts.by["prev"].get(shard, parts.empty["prev"]),
             T1: parts.by["facts"].get(shard, parts.empty["facts"])}
    loaded = time.perf_counter()
    first = run_tick(empty(ENROLLMENT_SCHEMA), facts[T0], None, None, specs, T0)
    firsted = time.perf_counter()
    result = run_tick(first.state, facts[T1], facts[T0], None, specs, T1)
    done = time.perf_counter()
    out = Path(folder) / f"{shards}-{shard}"
    out.mkdir()
    for name in TABLES:
        getattr(result, name).write_parquet(out / f"{name}.parquet")
    print(json.dumps({
        "accounts": accounts, "load_s": loaded - wall, "first_tick_s": firsted - loaded,
        "next_tick_s": done - firsted, "wall_s": done - wall, "cpu_s": time.process_time() - cpu,
        "peak_rss_gib": peak_gib(),
        "actions": result.actions.height + first.actions.height,
    }))


def _staging(folder: str, shards: int) -> Path:
    return Path(folder) / f"staging-{shards}"


def merged(folder: Path, shards: int, workflows: int) -> tuple[TickResult, float]:
    """The global step over the shards' next-tick results, and its wall time."""
    parts = [TickResult(T1, 0, workflows, *(pl.read_parquet(folder / f"{shards}-{k}" /
                                                            f"{name}.parquet") for name in TABLES))
             for k in range(shards)]
    started = time.perf_counter()
    result = merge_shards(parts, T1, workflows, None, None, pl.DataFrame(), 0)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=4_000_000)
    parser.add_argument("--workflows", type=int, default=50)
    parser.add_argument("--shards", default="1,2,4", help="shard counts, comma-separated")
    parser.add_argument("--fixed", type=int, default=10_000,
                        help="shard count whose shard 0 gives the fixed cost of a shard")
    parser.add_argument("--prepare-memory", metavar="LIMIT",
                        help="DuckDB's memory_limit for the prepare step (as '1GB')")
    parser.add_argument("--build", metavar="FOLDER", help=argparse.SUPPRESS)
    parser.add_argument("--shard", nargs=2, type=int, metavar=("SHARDS", "SHARD"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--prepare", type=int, metavar="SHARDS", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build(args.build, args.accounts)
        return
    if args.prepare:
        prepare(args.folder, args.workflows, args.prepare, args.prepare_memory)
        return
    if args.shard:
        run_shard(args.folder, args.workflows, args.shard[0], args.shard[1])
        return

    counts = [int(n) for n in args.shards.split(",")]
    results: dict[str, object] = {"accounts": args.accounts, "workflows": args.workflows}
    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as scratch:
        folder = Path(scratch)
        results |= _child("--build", scratch, "--accounts", str(args.accounts))
        print(f"book: {args.accounts:,} accounts x {args.workflows} workflows, built in "
              f"{results['build_s']:.0f} s", flush=True)
        fixed_prep = _prepare(scratch, args.fixed, args.workflows, args.prepare_memory)
        fixed = _child("--shard", str(args.fixed), "0", "--folder", scratch,
                       "--workflows", str(args.workflows))
        results["fixed"] = fixed
        print(f"fixed cost: a shard of 1 bucket in {args.fixed:,} ({fixed['accounts']:,} "
              f"accounts): load {fixed['load_s']:.2f} s (its input slice), ticks "
              f"{fixed['first_tick_s'] + fixed['next_tick_s']:.2f} s; {fixed['wall_s']:.2f} s "
              f"wall, {fixed['cpu_s']:.2f} s CPU (its prepare step: "
              f"{fixed_prep['wall_s']:.2f} s)", flush=True)
        shutil.rmtree(_staging(scratch, args.fixed))
        shutil.rmtree(folder / f"{args.fixed}-0")
        single = None
        for shards in counts:
            prep = _prepare(scratch, shards, args.workflows, args.prepare_memory)
            runs = []
            for shard in range(shards):
                runs.append(_child("--shard", str(shards), str(shard), "--folder", scratch,
                                   "--workflows", str(args.workflows)))
                run = runs[-1]
                print(f"{shards} shard(s), shard {shard}: {run['accounts']:>9,} accounts  "
                      f"load {run['load_s']:6.2f} s  first tick {run['first_tick_s']:6.2f} s  "
                      f"next tick {run['next_tick_s']:6.2f} s  wall {run['wall_s']:6.2f} s  "
                      f"CPU {run['cpu_s']:6.2f} s  peak {run['peak_rss_gib']:5.2f} GiB",
                      flush=True)
            result, merge_s = merged(folder, shards, args.workflows)
            if single is None:
                single = result
            same = all(getattr(result, t).equals(getattr(single, t)) for t in TABLES)
            slowest = max(r["wall_s"] for r in runs)
            projected = prep["wall_s"] + slowest + merge_s
            results[str(shards)] = {"prepare": prep, "shards": runs, "merge_s": merge_s,
                                    "equal_to_first": same, "projected_wall_s": projected}
            check = ("kept as the reference" if shards == counts[0] else
                     f"{'equal to' if same else 'DIFFERENT from'} that of {counts[0]} shard(s)")
            print(f"{shards} shard(s): global step {merge_s:.2f} s; result {check}; projected "
                  f"tick on {shards} machines: {projected:.2f} s (prepare + slowest shard + "
                  "global step)", flush=True)
    out = ROOT / "bench" / "shards.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    if not all(results[str(n)]["equal_to_first"] for n in counts):
        sys.exit("the shards' merged result differs from one shard's: see above")


def _child(*args: str) -> dict:
    return child(*args, script=__file__)


def _prepare(scratch: str, shards: int, workflows: int, memory: str | None) -> dict:
    """The prepare step for `shards` shards, in a process of its own; its figures printed."""
    prep = _child("--prepare", str(shards), "--folder", scratch, "--workflows", str(workflows),
                  *(["--prepare-memory", memory] if memory else []))
    print(f"{shards} shard(s), prepare: {prep['accounts']:>9,} accounts  cut (DuckDB) "
          f"{prep['cut_s']:6.2f} s  publish {prep['publish_s']:6.2f}"
          f" s  wall {prep['wall_s']:6.2f} s  CPU {prep['cpu_s']:6.2f} s  peak "
          f"{prep['peak_rss_gib']:5.2f} GiB", flush=True)
    return prep


if __name__ == "__main__":
    main()
