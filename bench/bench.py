"""cswf benchmark: `make bench` (or `.venv/bin/python bench/bench.py --help`).

Measures, on this machine, in one run:
1. three ticks of N accounts x W workflows (each with entry, exit and objective conditions),
   each loaded from DuckDB, evaluated and advanced, and written back, in a fresh process (so
   its peak memory is its own), `--runs` times on a fresh copy of the database (medians):
   the steady tick (`--open-rate` of the first tick's emails opened), the busy tick
   (`--busy-rate` opened: a campaign's or a quarter's start) and the first tick of the book
   (everyone who qualifies enters at once); each with its phase breakdown (engine/phases.py);
   the write includes the connection's close (its checkpoint), and the compaction of what the
   write left to it (store/compaction.py) is timed apart;
2. the same conditions through the row-at-a-time interpreter on a sample, as a ratio against the
   vectorized evaluation: that evaluation is the baseline every figure is also given against,
   so figures compare across machines;
3. the demo's 720-tick quarter through `cswf run`.
Figures go to stdout and to bench/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the row-at-a-time interpreter: tests/reference.py

from reference import holds  # noqa: E402

from cswf.engine.evaluate import evaluate  # noqa: E402
from cswf.engine.tick import TickResult, run_tick  # noqa: E402
from cswf.facts.models import build_facts, fact_schema  # noqa: E402
from cswf.ingest.snapshots import ensure_tables  # noqa: E402
from cswf.settings import PACKAGE_SQL  # noqa: E402
from cswf.specs.loader import LoadedWorkflow, parse_spec  # noqa: E402
from cswf.store.compaction import compact  # noqa: E402
from cswf.store.tables import ensure_delivery_tables, ensure_engine_tables  # noqa: E402
from cswf.store.warehouse import (  # noqa: E402
    connect,
    load_events,
    load_facts,
    load_state,
    save_facts,
    write_tick,
)

SQL_DIR = PACKAGE_SQL
FACTS_SQL = SQL_DIR / "facts"
DAY = date(2026, 6, 30)
T0 = datetime(2026, 6, 30, 21)  # previous tick: snapshot of 06-30
T1 = datetime(2026, 7, 1, 0)  # measured tick: snapshot of 07-01

# Five archetypes of workflows, ten thresholds each: the 50 workflows of the benchmark.
ARCHETYPES = [
    # health alert: a transition against the previous tick
    """
entry:
  all:
    - {{field: tier, op: in, value: [enterprise, mid_market]}}
    - {{field: health_score, op: dropped_below, value: {a}}}
exit: {{field: stage, op: eq, value: churned}}
objective: {{condition: {{field: health_score, op: ge, value: {b}}}, on_met: exit}}
""",
    # renewal: relative dates
    """
entry:
  all:
    - {{field: renewal_date, op: within_next_days, value: {c}}}
    - {{field: stage, op: not_in, value: [churned, onboarding]}}
    - {{field: tier, op: eq, value: enterprise}}
exit: {{any: [{{field: days_to_renewal, op: gt, value: 400}}, {{field: stage, op: eq,
  value: churned}}]}}
objective: {{condition: {{field: nps, op: ge, value: 9}}, on_met: stay}}
""",
    # adoption: ratios
    """
entry:
  all:
    - {{field: seat_utilisation_pct, op: lt, value: {a}}}
    - {{field: stage, op: in, value: [adoption, mature]}}
    - {{field: arr, op: gt, value: 150000}}
exit: {{field: stage, op: eq, value: churned}}
objective: {{condition: {{field: seat_utilisation_pct, op: gt, value: {b}}}, on_met: exit}}
""",
    # usage drop: percentage change over the SQL window
    """
entry:
  all:
    - {{field: usage_events_7d_change_pct, op: le, value: -{d}}}
    - {{not: {{field: stage, op: eq, value: churned}}}}
    - {{field: region, op: eq, value: EMEA}}
exit: {{field: open_tickets, op: gt, value: 20}}
objective: {{condition: {{field: usage_events_7d, op: gt, value: {e}}}, on_met: exit}}
""",
    # detractors: text and nulls
    """
entry:
  all:
    - {{any: [{{field: nps, op: le, value: 6}}, {{field: industry, op: contains, value: "{f}"}}]}}
    - {{field: nps, op: not_null}}
    - {{field: open_tickets, op: gt, value: 15}}
    - {{field: tier, op: eq, value: enterprise}}
exit: {{field: health_score, op: is_null}}
objective: {{condition: {{field: health_score, op: gt, value: {b}}}, on_met: stay}}
""",
]
# Every workflow's flow: actions, a wait on an email result, a branch on that result or on the
# facts, a delay, more actions.
FLOW = """
steps:
  - name: first_touch
    actions:
      - {type: task, title: "Look at {{ account_name }}", due_days: 2}
      - {type: email, name: hello, to: primary_contact_email,
         subject: "Hello {{ primary_contact_name }}",
         body: "Hi {{ primary_contact_name }}, this is {{ csm_name }} from Acme."}
  - name: wait_for_open
    wait: {action: first_touch.hello, result: opened, max_days: 3}
  - name: split
    branch:
      - name: opened
        action: first_touch.hello
        result: opened
        steps:
          - {name: engaged, actions: [{type: field_update, field: cs_flag, value: engaged}]}
      - name: at_risk
        when: {field: health_score, op: lt, value: 50}
        steps:
          - {name: call, actions: [{type: task, title: "Call {{ account_name }}"}]}
          - {name: give_it_a_day, delay: {days: 1}}
          - {name: escalate, actions: [{type: task, title: "Escalate {{ account_name }}"}]}
  - name: second_touch
    actions:
      - {type: task, title: "Follow up with {{ account_name }}", due_days: 5}
"""
OPEN_RATE = 0.05  # share of first-tick emails opened before the steady tick (--open-rate)
BUSY_RATE = 0.4  # ... before the busy tick (--busy-rate): a campaign's or a quarter's start
INDUSTRIES = ["Soft", "Health", "Retail", "Fin", "Manu", "Edu", "Media", "Log", "Ener", "Gov"]


def make_workflows(count: int) -> list[LoadedWorkflow]:
    schema = fact_schema(FACTS_SQL)
    out = []
    for i in range(count):
        k = i // len(ARCHETYPES)
        body = ARCHETYPES[i % len(ARCHETYPES)].format(
            a=40 + 2 * k, b=70 + k, c=30 + 6 * k, d=20 + 3 * k, e=500 + 50 * k,
            f=INDUSTRIES[k % len(INDUSTRIES)],
        )
        text = (f"name: bench_{i:02d}\nowner: {{field: csm_email}}\nstate: enabled\n"
                f"priority: {i}\n{body}{FLOW}")
        out.append(parse_spec(text, ROOT / "workflow_specs" / f"bench_{i:02d}.yaml", schema))
    return out


def make_book(con: duckdb.DuckDBPyConnection, accounts: int) -> None:
    """Two daily snapshots and 35 days of usage for `accounts` accounts, made in SQL."""
    ensure_tables(con)
    con.execute(f"""
        INSERT INTO raw_accounts BY NAME
        WITH base AS (
            SELECT range AS i, (hash(range) >> 1)::BIGINT AS h FROM range({accounts})
        ), day AS (SELECT unnest([DATE '{DAY}', DATE '{DAY}' + 1]) AS snapshot_date)
        SELECT
            snapshot_date,
            'A' || lpad(i::VARCHAR, 7, '0') AS account_id,
            'Account ' || i AS account_name,
            ['enterprise', 'mid_market', 'smb', 'smb'][1 + h % 4] AS tier,
            ['adoption', 'mature', 'mature', 'renewal', 'onboarding', 'churned'][1 + (h >> 3) % 6]
                AS stage,
            DATE '2026-01-01' + ((h >> 7) % 150)::INTEGER AS stage_entered_on,
            1000.0 + (h >> 11) % 200000 AS arr,
            (10 + (h >> 17) % 200)::INTEGER AS seats_purchased,
            ((10 + (h >> 17) % 200) * ((h >> 25) % 100) / 100)::INTEGER AS seats_active,
            DATE '2025-01-01' + ((h >> 31) % 500)::INTEGER AS contract_start,
            DATE '{DAY}' + ((h >> 37) % 365)::INTEGER AS renewal_date,
            -- 3% of accounts lose 15 points of health between the two snapshots
            CASE WHEN (h >> 43) % 50 = 0 THEN NULL
                 ELSE least(100, 30 + (h >> 45) % 70
                      - CASE WHEN snapshot_date > DATE '{DAY}' AND (h >> 51) % 33 = 0
                             THEN 15 ELSE 0 END)::DOUBLE END AS health_score,
            CASE WHEN (h >> 53) % 3 = 0 THEN NULL ELSE ((h >> 55) % 11)::INTEGER END AS nps,
            DATE '2026-05-01' AS nps_responded_on,
            ((h >> 59) % 25)::INTEGER AS open_tickets,
            'CSM ' || (h % 12) AS csm_name,
            'csm' || (h % 12) || '@example.com' AS csm_email,
            'Contact ' || i AS primary_contact_name,
            'contact' || i || '@example.org' AS primary_contact_email,
            ['NA', 'EMEA', 'APAC'][1 + (h >> 5) % 3] AS region,
            {INDUSTRIES!r}[1 + (h >> 9) % 10] || 'ware' AS industry,
            'bench' AS source_file
        FROM base, day
    """).fetchall()
    con.execute(f"""
        INSERT INTO raw_usage BY NAME
        SELECT DATE '{DAY}' - d::INTEGER AS usage_date,
               'A' || lpad(i::VARCHAR, 7, '0') AS account_id,
               (1 + (hash(i) >> 1)::BIGINT % 50)::INTEGER AS active_users,
               (((hash(i) >> 1)::BIGINT % 900)
                * CASE WHEN d < 7 AND (hash(i) >> 1)::BIGINT % 7 = 0 THEN 0.5 ELSE 1 END
                + (hash(i + d) >> 1)::BIGINT % 100)::INTEGER AS events,
               'bench' AS source_file
        FROM range({accounts}) AS a(i), range(0, 35) AS days(d)
    """).fetchall()


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - started


def store(con: duckdb.DuckDBPyConnection, database: str, result: TickResult) -> dict:
    """Write the tick, close the connection (its checkpoint puts what DuckDB left in its log
    into the file: part of the write), then compact (store/compaction.py: the row group
    merges the write deferred, which the weekly compaction does; timed apart, not in the
    total nor the peak memory). Seconds, the peak and the phases."""
    started = time.perf_counter()
    outcome = write_tick(con, result)
    committed = time.perf_counter()
    con.close()
    written = time.perf_counter()
    peak = peak_gib()
    with connect(database) as again:
        _, compaction_s = timed(compact, again, T1)
    return {"write_s": written - started, "close_s": written - committed, "peak_rss_gib": peak,
            "compaction_s": compaction_s, "status": outcome.status,
            "phases": {**result.phases, **outcome.phases, "write checkpoint": written - committed}}


def measure_tick(database: str, workflows: int) -> None:
    """Child process: one full tick at T1, printed as JSON."""
    specs = make_workflows(workflows)
    con = connect(database)  # the product's own connection (its settings)
    clock = time.perf_counter()
    state = load_state(con, T1)
    facts = load_facts(con, T1, set().union(*(w.fact_fields() for w in specs)))
    prev = load_facts(con, T0, set().union(*(w.previous_fields() for w in specs)))
    events = load_events(con, T1)
    loaded = time.perf_counter()
    rss_loaded = peak_gib()
    result = run_tick(state, facts, prev, events, specs, T1)
    evaluated = time.perf_counter()
    rss_ticked = peak_gib()
    stored = store(con, database, result)
    print(json.dumps({
        "load_s": loaded - clock, "tick_s": evaluated - loaded,
        "total_s": evaluated - clock + stored["write_s"], **stored,
        "state_rows": state.height,
        "actions": result.actions.height, "transitions": result.transitions.height,
        "changed_enrollments": result.changed_state.height,
        "events": 0 if events is None else events.height,
        "peak_rss_after_load_gib": rss_loaded, "peak_rss_after_tick_gib": rss_ticked,
    }))


def measure_first(database: str, workflows: int) -> None:
    """Child process: the first tick of the book (everyone who qualifies enters), as JSON."""
    specs = make_workflows(workflows)
    con = connect(database)  # the product's own connection (its settings)
    clock = time.perf_counter()
    state = load_state(con, T0)
    facts = load_facts(con, T0, set().union(*(w.fact_fields() for w in specs)))
    loaded = time.perf_counter()
    result = run_tick(state, facts, None, None, specs, T0)
    evaluated = time.perf_counter()
    stored = store(con, database, result)
    print(json.dumps({
        "load_s": loaded - clock, "tick_s": evaluated - loaded,
        "total_s": evaluated - clock + stored["write_s"], **stored,
        "entered": result.transitions.filter(pl.col("transition") == "entered").height,
        "actions": result.actions.height, "transitions": result.transitions.height,
        "changed_enrollments": result.changed_state.height,
    }))


def interpreter_ratio(facts: pl.DataFrame, prev: pl.DataFrame,
                      workflows: list[LoadedWorkflow], sample: int) -> dict:
    """Per-row Python interpretation of the same trees vs the vectorized evaluation."""
    subset = facts.head(sample)
    prev_by_id = {r["participant_id"]: r for r in prev.iter_rows(named=True)}
    trees = [
        t
        for w in workflows
        for t in (w.spec.entry, w.spec.exit,
                  w.spec.objective.condition if w.spec.objective else None)
        if t is not None
    ]
    rows = list(subset.iter_rows(named=True))
    started = time.perf_counter()
    for row in rows:
        before = prev_by_id.get(row["participant_id"])
        for tree in trees:
            holds(tree, row, before)
    per_row = (time.perf_counter() - started) / len(rows)
    # The baseline of every ratio: the median of three evaluations (one alone varies by a
    # third on a shared machine).
    vector_sample = median([timed(evaluate, subset, prev, workflows)[1] for _ in range(3)])
    vector_full = median([timed(evaluate, facts, prev, workflows)[1] for _ in range(3)])
    return {
        "sample_rows": len(rows),
        "conditions": len(trees),
        "interpreter_s_per_row": per_row,
        "interpreter_full_estimate_s": per_row * facts.height,
        "vectorized_sample_s": vector_sample,
        "vectorized_full_s": vector_full,
        "ratio_full": per_row * facts.height / vector_full,
    }


def demo_quarter(accounts: int) -> dict:
    """The demo book's 720-tick quarter through `cswf run`, in a scratch project."""
    from cswf.demo.generate import generate_book

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "cswf.yaml").write_text(
            f"database: {root / 'cswf.duckdb'}\nlanding_dir: {root / 'landing'}\n"
            f"specs_dir: {ROOT / 'workflow_specs'}\n"
            "tick_start: '2026-05-31 00:00'\n"
        )
        _, generate_s = timed(generate_book, root / "landing", accounts=accounts, days=120,
                              start=date(2026, 5, 1))
        cswf = str(Path(sys.executable).parent / "cswf")
        command = [cswf, "run", "--start", "2026-05-31", "--end", "2026-08-28T21:00",
                   "--root", str(root)]
        env = {**os.environ, "COLUMNS": "120"}
        done, run_s = timed(subprocess.run, command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"cswf run failed:\n{done.stdout}\n{done.stderr}")
        con = duckdb.connect(str(root / "cswf.duckdb"), read_only=True)
        ticks, actions = con.execute(
            "SELECT count(*), sum(actions) FROM tick_log").fetchall()[0]
        return {"accounts": accounts, "generate_s": generate_s, "ticks": ticks,
                "actions": int(actions), "cswf_run_s": run_s, "s_per_tick": run_s / ticks}


def open_emails(database: str, rate: float) -> None:
    """Record an `opened` event for a share `rate` of the first tick's emails (the same
    emails at any rate: a busier book opens a superset)."""
    con = duckdb.connect(database)
    ensure_delivery_tables(con)
    con.execute(
        "INSERT INTO action_events BY NAME SELECT action_id, 'opened' AS event_type, "
        "$at AS occurred_at, 'bench' AS source FROM actions_outbox "
        "WHERE action_type = 'email' AND hash(action_id) % 1000 < $r * 1000",
        {"at": T0 + timedelta(hours=1), "r": rate},
    ).fetchall()
    con.close()


def setup(folder: str, accounts: int, workflows: int, sample: int) -> None:
    """Child process: the book and its facts (`book.duckdb`), then its first tick
    (`ticked.duckdb`), and the interpreter ratio; as JSON."""
    book, ticked = str(Path(folder) / "book.duckdb"), str(Path(folder) / "ticked.duckdb")
    con = duckdb.connect(book)
    figures: dict[str, object] = {}
    _, figures["make_book_s"] = timed(make_book, con, accounts)
    facts, figures["facts_sql_two_ticks_s"] = timed(build_facts, con, [T0, T1], FACTS_SQL)
    save_facts(con, facts)
    ensure_engine_tables(con)
    con.close()
    shutil.copyfile(book, ticked)
    con = duckdb.connect(ticked)
    specs = make_workflows(workflows)
    now = facts.filter(pl.col("as_of") == T1)
    before = facts.filter(pl.col("as_of") == T0)
    first = run_tick(load_state(con, T0), before, None, None, specs, T0)
    write_tick(con, first)
    con.close()
    figures["interpreter"] = interpreter_ratio(now, before, specs, sample)
    print(json.dumps(figures))


def peak_gib() -> float:
    """This process's peak resident memory, in GiB: the kernel's high-water mark of its own
    memory (VmHWM). `getrusage`'s ru_maxrss would do only in a process started by a small
    parent: Linux carries the parent's high-water mark over to a forked and exec'ed child."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def child(*args: str, script: str = __file__) -> dict:
    """Run `script` (default: this one) in a fresh process (so its peak memory is its own);
    its last line, as JSON."""
    done = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])})
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# The tick's own thread, then its second thread (engine/beside.py: overlapping the first),
# then the write.
PHASES = ("evaluate", "admit", "flow", "evidence", "milestones", "assign", "frames", "close",
          "other", "wait for beside", "emit (beside)", "sort (beside)",
          "write enrollment_history", "write actions_outbox", "write transitions",
          "write other", "write checkpoint")
CASES = ("steady", "busy", "first")


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def measure_case(scratch: Path, case: str, runs: int, workflows: int, open_rate: float,
                 busy_rate: float) -> dict:
    """`runs` measurements of one case, each on a fresh copy of its database; their medians."""
    source = scratch / ("book.duckdb" if case == "first" else "ticked.duckdb")
    figures = []
    for _ in range(runs):
        copy = scratch / "measured.duckdb"
        shutil.copyfile(source, copy)
        if case != "first":
            open_emails(str(copy), open_rate if case == "steady" else busy_rate)
        verb = "--measure-first" if case == "first" else "--measure-tick"
        figures.append(child(verb, str(copy), "--workflows", str(workflows)))
        copy.unlink()
    out = dict(figures[-1])
    for key in ("load_s", "tick_s", "write_s", "total_s", "compaction_s", "peak_rss_gib"):
        out[key] = median([f[key] for f in figures])
    out["phases"] = {name: median([f["phases"].get(name, 0.0) for f in figures])
                     for name in sorted({n for f in figures for n in f["phases"]})}
    out["runs"] = [{k: f[k] for k in ("load_s", "tick_s", "write_s", "total_s",
                                      "compaction_s", "peak_rss_gib")} for f in figures]
    return out


def print_table(results: dict, baseline: float, accounts: int) -> None:
    """The cases' medians side by side, each with its ratio to the same run's baseline."""
    cases = [c for c in CASES if c in results]
    millions = accounts / 1e6

    def row(label: str, values: list[float], unit: str = "s") -> None:
        cells = "".join(f"{v:9.2f} {unit} {v / baseline:6.1f}x" if unit == "s"
                        else f"{v:9.2f} {unit:<10}" for v in values)
        print(f"{label:<26}{cells}")

    print(f"\nbaseline: vectorized evaluation of the same conditions, {baseline:.2f} s "
          f"(ratio = figure / baseline); medians of {len(results[cases[0]]['runs'])} run(s); "
          "(beside): on the tick's second thread, at the same time as the phases above it")
    print(f"{'':<26}" + "".join(f"{c:>20}" for c in cases))
    for name in PHASES:
        row(f"  {name}", [results[c]["phases"].get(name, 0.0) for c in cases])
    row("load", [results[c]["load_s"] for c in cases])
    row("evaluate+advance", [results[c]["tick_s"] for c in cases])
    row("write", [results[c]["write_s"] for c in cases])
    row("total", [results[c]["total_s"] for c in cases])
    row("total per million", [results[c]["total_s"] / millions for c in cases], "s/M")
    row("compaction (apart)", [results[c]["compaction_s"] for c in cases])
    row("peak memory", [results[c]["peak_rss_gib"] for c in cases], "GiB")
    row("peak per million", [results[c]["peak_rss_gib"] / millions for c in cases], "GiB/M")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--workflows", type=int, default=50)
    parser.add_argument("--sample", type=int, default=20_000, help="interpreter sample rows")
    parser.add_argument("--demo-accounts", type=int, default=2000)
    parser.add_argument("--open-rate", type=float, default=OPEN_RATE,
                        help="share of emails opened before the steady tick")
    parser.add_argument("--busy-rate", type=float, default=BUSY_RATE,
                        help="share of emails opened before the busy tick")
    parser.add_argument("--runs", type=int, default=3, help="runs per case (medians reported)")
    parser.add_argument("--cases", default=",".join(CASES),
                        help="which of steady, busy, first to measure (comma-separated)")
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--measure-tick", metavar="DATABASE", help=argparse.SUPPRESS)
    parser.add_argument("--measure-first", metavar="DATABASE", help=argparse.SUPPRESS)
    parser.add_argument("--setup", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_tick:
        measure_tick(args.measure_tick, args.workflows)
        return
    if args.measure_first:
        measure_first(args.measure_first, args.workflows)
        return
    if args.setup:
        setup(args.setup, args.accounts, args.workflows, args.sample)
        return

    results: dict[str, object] = {"machine": {"cpus": os.cpu_count()}}
    with tempfile.TemporaryDirectory() as scratch:
        results |= child("--setup", scratch, "--accounts", str(args.accounts),
                         "--workflows", str(args.workflows), "--sample", str(args.sample))
        results["open_rate"], results["busy_rate"] = args.open_rate, args.busy_rate
        for case in args.cases.split(","):
            results[case] = measure_case(Path(scratch), case, args.runs, args.workflows,
                                         args.open_rate, args.busy_rate)
    results["accounts"], results["workflows"] = args.accounts, args.workflows
    if not args.skip_demo:
        results["demo_quarter"] = demo_quarter(args.demo_accounts)

    out = ROOT / "bench" / "results.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    interp = results["interpreter"]
    baseline = interp["vectorized_full_s"]
    print(f"\n{args.accounts:,} accounts x {args.workflows} workflows; steady: "
          f"{args.open_rate:.0%} of emails opened, busy: {args.busy_rate:.0%}")
    print_table(results, baseline, args.accounts)
    print(f"row-at-a-time interpreter of the same {interp['conditions']} conditions: "
          f"{interp['ratio_full']:.0f}x slower than the vectorized evaluation")
    if "demo_quarter" in results:
        demo = results["demo_quarter"]
        print(f"demo quarter: {demo['ticks']} ticks through `cswf run` in "
              f"{demo['cswf_run_s']:.1f} s")


if __name__ == "__main__":
    main()
