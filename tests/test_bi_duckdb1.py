"""The newest DuckDB 1.x client reads the BI copy while ticks run, and holding it open stops no
tick. The client lives in its own virtual environment (made once, then cached), as a BI tool's
DuckDB driver would be."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from bi_project import LAST_TICK, built, copy_of

DUCKDB_1 = "1.5.6"  # the newest DuckDB 1.x release
CACHE = Path(os.environ.get("CSWF_TEST_CACHE", Path.home() / ".cache" / "cswf-tests"))

# `hold`: keep the copy open from start to end, as a BI tool's pooled connection would, and say
# which copy it still reads. `read`: open the copy afresh over and over, reading every table the
# manifest names (and a Parquet file), until told to stop. Two processes: DuckDB shares one
# open database per file and process, so a held connection would serve the fresh opens too.
READER = r"""
import json, sys, time, duckdb
from pathlib import Path
mode, bi, stop = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
copy = str(bi / "cswf.duckdb")
as_of = "SELECT max(as_of)::VARCHAR FROM bi_manifest"
if mode == "hold":
    held = duckdb.connect(copy, read_only=True)
    first = held.sql(as_of).fetchall()[0][0]
    print("ready", flush=True)
    while not stop.exists():
        time.sleep(0.05)
    print(json.dumps({"first": first, "still": held.sql(as_of).fetchall()[0][0]}))
    sys.exit()
print("ready", flush=True)
reads, failures, seen = 0, [], set()
while not stop.exists() or reads == 0:
    try:
        with duckdb.connect(copy, read_only=True) as con:
            for (name,) in con.sql("SELECT table_name FROM bi_manifest").fetchall():
                con.sql(f'SELECT * FROM "{name}"').fetchall()
            seen.add(con.sql(as_of).fetchall()[0][0])
        duckdb.sql("SELECT count(*) FROM read_parquet('%s')"
                   % (bi / "parquet" / "current" / "enrollments.parquet")).fetchall()
        reads += 1
    except Exception as exc:
        failures.append(f"{type(exc).__name__}: {exc}")
    time.sleep(0.02)
print(json.dumps({"version": duckdb.__version__, "reads": reads, "failures": failures[:5],
                  "seen": sorted(seen)}))
"""


def _duckdb1_python() -> Path:
    """A Python with DuckDB 1.x and nothing else; made once per machine (pip needs the index).
    Built beside its final place and renamed into it, so a broken build is never cached."""
    venv = CACHE / f"duckdb-{DUCKDB_1}"
    python = venv / "bin" / "python"  # run as `python -c`: nothing in it names its folder
    if python.exists():
        return python
    CACHE.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".duckdb-", dir=CACHE))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(building)], check=True,
                       capture_output=True)
        pip = subprocess.run([str(building / "bin" / "python"), "-m", "pip", "install",
                              "--quiet", "--disable-pip-version-check", f"duckdb=={DUCKDB_1}"],
                             capture_output=True, text=True)
        if pip.returncode != 0:
            pytest.skip(f"cannot install duckdb=={DUCKDB_1} in its own environment: "
                        f"{pip.stderr.strip().splitlines()[-1:]}")
        os.replace(building, venv)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return python


@pytest.fixture(scope="module")
def duckdb1() -> Path:
    return _duckdb1_python()


def test_duckdb_1_reads_the_copy_while_ticks_run_and_holding_it_stops_none(
    duckdb1: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    root = copy_of(built(tmp_path_factory), tmp_path)
    stop = tmp_path / "stop"
    readers = [subprocess.Popen([str(duckdb1), "-c", READER, mode, str(root / "bi"), str(stop)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for mode in ("hold", "read")]
    for reader in readers:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
    started = time.monotonic()
    try:
        ticks = subprocess.run(
            [sys.executable, "-m", "cswf.cli", "run", "--start", "2026-06-10",
             "--end", "2026-06-10T21:00", "--root", str(root)],
            capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
        )
    finally:
        stop.touch()
        outputs = [reader.communicate(timeout=60) for reader in readers]
    assert ticks.returncode == 0, ticks.stdout + ticks.stderr
    assert "8 ticks" in ticks.stdout and "BI copy as of 2026-06-10 21:00" in ticks.stdout
    assert time.monotonic() - started < 120
    held, read = (json.loads(out.strip().splitlines()[-1]) for out, _ in outputs)
    assert read["version"] == DUCKDB_1
    assert read["failures"] == [], outputs[1][1]
    assert read["reads"] > 0
    assert read["seen"][-1] == "2026-06-10 21:00:00"  # the new copy, read by DuckDB 1.x
    old = LAST_TICK.replace("T", " ") + ":00"
    assert held == {"first": old, "still": old}  # the held copy stays whole, as it was opened
    print(f"DuckDB {DUCKDB_1}: {read['reads']} whole reads of the copy during the run, "
          f"{time.monotonic() - started:.1f}s")
