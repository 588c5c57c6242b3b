"""A tiny run of bench/retention.py (one throwaway PostgreSQL database, no Airflow), run as its docstring says,
only smaller: it exits 0 and ends with its headline (no timing is asserted); its refusals; and a run killed
with SIGTERM while it fills its store drops that database (bench/harness.py's ``exit_on_sigterm``)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, text

from tests.bench.test_smoke import refuses, tiny_run
from tests.conftest import PG_SERVER, ROOT


def test_a_tiny_run_of_the_retention_benchmark_ends_with_its_headline(tmp_path):
    args = ["--events", "3000", "--runs", "30", "--calls", "2"]
    last = tiny_run("retention", args, r"clean: \d+ s for 0\.00 M events; slowest endpoint p95 \d+ ms", tmp_path,
                    drop=("BATON_EXTENSIONS",))  # fmt: skip
    assert last.startswith("clean: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--events", "999"], "argument --events: 999 is not between 1000 and 20000000"),
        (["--events", "1000", "--runs", "2000"], "--runs is at most --events"),
        (["--keep-days", "400"], "--keep-days is between 0 and 365"),
        (["--keep-days", "nan"], "--keep-days is between 0 and 365"),
        (["--archive", "/no/such/folder"], "--archive /no/such/folder: not a folder (create it first)"),
    ],
)
def test_what_the_retention_benchmark_refuses(args, message):
    refuses("retention", args, message)


def _databases(engine, pid: int) -> list[str]:
    prefix = f"baton_bench_retention_store_{pid}_"  # not LIKE: its _ would match any character
    with engine.connect() as conn:
        query = text("SELECT datname FROM pg_database WHERE left(datname, length(:p)) = :p")
        return list(conn.scalars(query, {"p": prefix}))


def test_a_benchmark_killed_with_sigterm_drops_its_throwaway_database():
    bench = subprocess.Popen(  # big enough to be filling its store for a while
        [sys.executable, "bench/retention.py", "--events", "5000000", "--runs", "50000"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    engine = create_engine(PG_SERVER)
    try:
        deadline = time.monotonic() + 120
        while not (made := _databases(engine, bench.pid)) and bench.poll() is None:
            assert time.monotonic() < deadline, "the benchmark made no database in 120 s"
            time.sleep(0.2)
        assert made, f"the benchmark ended first: {bench.returncode}"
        bench.send_signal(signal.SIGTERM)
        _, err = bench.communicate(timeout=120)
        assert bench.returncode == 143, err[-2000:]
        assert _databases(engine, bench.pid) == [], "the database the killed benchmark made is still there"
    finally:
        bench.kill()
        engine.dispose()
