"""Fan-out bench: each step of a sharded tick as the product runs it, on a book with a state.

    .venv/bin/python bench/ticks.py --accounts 1000000 --shards 4 --baseline fc5200f

Builds the benchmark's book (bench/bench.py: N accounts x 50 workflows, two snapshots), then
runs its two ticks through project/fanout.py exactly as the Dagster steps call it: the prepare
step, every shard one after another, the global step, each in a fresh process of its own that
reports wall time, CPU time and peak memory. The first tick enters most of the book; the second
(the figures that matter) starts from the state the first one wrote, about 0.9 enrollments an
account, as a day of a running book does.

With `--baseline REV`, the same runs are made with the code of git revision REV (a worktree in
the scratch folder) on a copy of the same book, one after the other on this machine, and the
tables both wrote must be equal. Results go to bench/ticks.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from bench import T0, T1, make_workflows, peak_gib

ROOT = Path(__file__).resolve().parents[1]
TICKS = {"first": T0, "next": T1}
TABLES = ("enrollment_history", "transitions", "actions_outbox", "tick_log", "tick_holds")


def project_folder(folder: Path, database: Path, shards: int) -> Path:
    """A project whose calendar has exactly the book's two ticks in a row."""
    root = folder / "project"
    root.mkdir()
    (root / "cswf.yaml").write_text(
        f"database: {database}\nstaging_dir: {folder / 'staging'}\nshards: {shards}\n"
        f"landing_dir: {folder / 'landing'}\n"
        f"tick_start: '{T0:%Y-%m-%d %H:%M}'\ntick_cron: '0 {T1.hour},{T0.hour} * * *'\n")
    return root


def step(root: str, workflows: int, tick: str, name: str, shard: int) -> None:
    """Child process: one step of the tick `tick`; its figures as JSON."""
    from cswf.project.fanout import commit_tick, prepare_tick, shard_tick
    from cswf.settings import load_settings
    from cswf.store.warehouse import connect

    settings = load_settings(Path(root))
    specs = make_workflows(workflows)
    as_of = TICKS[tick]
    wall, cpu = time.perf_counter(), time.process_time()
    figures: dict[str, object] = {}
    if name == "shard":
        shard_tick(settings, specs, as_of, shard, settings.shards)
    else:
        with connect(settings.database_path) as con:
            if name == "prepare":
                prepare_tick(con, settings, specs, as_of)
            else:
                outcome, wrote = commit_tick(con, settings, specs, as_of, settings.shards)
                figures = {"status": outcome.status, "changed": _count(wrote, "changed"),
                           "actions": _count(wrote, "actions"),
                           "transitions": _count(wrote, "transitions")}
    print(json.dumps({**figures, "wall_s": time.perf_counter() - wall,
                      "cpu_s": time.process_time() - cpu, "peak_rss_gib": peak_gib()}))


def _count(wrote: object, name: str) -> int:
    """A count of what the global step wrote: a count (this code) or a frame (a baseline
    revision's global step returned the tick's rows)."""
    if name == "changed" and hasattr(wrote, "changed_state"):
        return int(wrote.changed_state.height)
    found = getattr(wrote, name)
    return found if isinstance(found, int) else int(found.height)


def run_child(source: Path, *args: str) -> dict:
    """This script in a fresh process, with the cswf of `source` (a src folder)."""
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              [str(source), str(ROOT / "bench"), str(ROOT / "tests")])})
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_code(label: str, source: Path, folder: Path, book: Path, shards: int,
             workflows: int) -> dict:
    """Both ticks, step by step, with the code under `source`, on a copy of `book`."""
    folder.mkdir()
    database = folder / "cswf.duckdb"
    shutil.copy(book, database)
    root = str(project_folder(folder, database, shards))
    figures: dict[str, dict] = {}
    for tick in TICKS:
        common = ["--root", root, "--workflows", str(workflows), "--tick", tick]
        prepare = run_child(source, *common, "--step", "prepare")
        runs = [run_child(source, *common, "--step", "shard", "--shard", str(k))
                for k in range(shards)]
        commit = run_child(source, *common, "--step", "commit")
        figures[tick] = {"prepare": prepare, "shards": runs, "commit": commit}
        slowest = max(runs, key=lambda r: r["wall_s"])
        print(f"{label}, {tick} tick: prepare {prepare['wall_s']:5.2f} s "
              f"{prepare['peak_rss_gib']:4.2f} GiB | slowest shard {slowest['wall_s']:5.2f} s "
              f"{slowest['peak_rss_gib']:4.2f} GiB | global step {commit['wall_s']:5.2f} s, "
              f"{commit['cpu_s']:5.2f} s CPU, {commit['peak_rss_gib']:4.2f} GiB "
              f"({commit['changed']:,} enrollments changed, {commit['actions']:,} actions, "
              f"{commit['transitions']:,} transitions; {commit['status']})", flush=True)
    return figures


def differing(first: Path, second: Path) -> list[str]:
    """The tables whose rows differ between two databases, compared inside DuckDB (a 4M book's
    tables do not fit in Python's memory as tuples)."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{first}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{second}' AS b (READ_ONLY)")
    return [name for name in TABLES if con.execute(
        f"SELECT (SELECT count(*) FROM (FROM a.{name} EXCEPT ALL FROM b.{name})) + "
        f"(SELECT count(*) FROM (FROM b.{name} EXCEPT ALL FROM a.{name}))").fetchall()[0][0]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--workflows", type=int, default=50)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--baseline", metavar="REV", help="git revision to compare with")
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--tick", choices=list(TICKS), help=argparse.SUPPRESS)
    parser.add_argument("--step", choices=["prepare", "shard", "commit"], help=argparse.SUPPRESS)
    parser.add_argument("--shard", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        step(args.root, args.workflows, args.tick, args.step, args.shard)
        return

    results: dict[str, object] = {"accounts": args.accounts, "workflows": args.workflows,
                                  "shards": args.shards}
    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as scratch:
        folder = Path(scratch)
        started = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "bench" / "shards.py"), "--build", scratch,
                        "--accounts", str(args.accounts)], check=True, capture_output=True)
        print(f"book: {args.accounts:,} accounts x {args.workflows} workflows, built in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        book = folder / "book.duckdb"
        codes = {"this code": ROOT / "src"}
        if args.baseline:
            worktree = folder / "baseline-code"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree),
                            args.baseline], check=True, capture_output=True)
            codes[f"baseline {args.baseline}"] = worktree / "src"
        try:
            for n, (label, source) in enumerate(codes.items()):
                results[label] = run_code(label, source, folder / f"run-{n}", book,
                                          args.shards, args.workflows)
        finally:
            if args.baseline:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(folder / "baseline-code")], check=False)
        if args.baseline:
            differ = differing(folder / "run-0" / "cswf.duckdb", folder / "run-1" / "cswf.duckdb")
            results["tables_equal"] = not differ
            print("tables: " + (f"{', '.join(differ)} DIFFER" if differ else
                                f"{', '.join(TABLES)} equal to the baseline's"), flush=True)
    (ROOT / "bench" / "ticks.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    if results.get("tables_equal") is False:
        sys.exit("the tables differ from the baseline's: see above")


if __name__ == "__main__":
    main()
