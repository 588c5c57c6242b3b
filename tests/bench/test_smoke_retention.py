"""A tiny run of bench/retention.py (one throwaway PostgreSQL database, no Airflow), run as its docstring says,
only smaller: it exits 0 and ends with its headline (no timing is asserted); and its refusals."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.bench.test_smoke import tiny_run
from tests.conftest import ROOT


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
    done = subprocess.run(
        [sys.executable, "bench/retention.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
