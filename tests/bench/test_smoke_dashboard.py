"""A tiny run of bench/dashboard.py (two throwaway PostgreSQL databases, no Airflow), as tests/bench/
test_smoke.py runs the others: it exits 0 and ends with its headline (no timing is asserted)."""

from __future__ import annotations

from tests.bench.test_smoke import tiny_run


def test_a_tiny_run_of_the_dashboard_benchmark_ends_with_its_headline(tmp_path):
    args = ["--events", "2000", "--runs", "20", "--baseline-events", "500", "--calls", "3"]
    tiny_run("dashboard", args, r"slowest endpoint p95 \d+ ms", tmp_path, drop=("BATON_EXTENSIONS",))
