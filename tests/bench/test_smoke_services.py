"""Tiny runs of the benchmarks that start Airflow on PostgreSQL (faults) and on Celery workers (celery)."""

from __future__ import annotations

import pytest

from tests.bench.test_smoke import tiny_run

SMOKE = {
    "faults": (
        ["--runs", "3", "--no-kill", "--hang", "2", "--results", "{tmp}/faults.json"],
        r"completion rate: \d+\.\d\d% of 3 runs \(goal >= 99\.9 %\); \d+ of \d+ failed runs compensated, "
        r"\d+ events lost, \d+ duplicated side effects",
    ),
    "celery": (
        ["--runs", "1", "--steps", "4", "--delay", "0.5"],
        r"speed-up, 2 workers vs 1: \d+\.\d\dx \(ideal 2\.00\)",
    ),
}


@pytest.mark.parametrize("bench", sorted(SMOKE))
def test_a_tiny_run_ends_with_its_headline(bench, tmp_path):
    args, headline = SMOKE[bench]
    tiny_run(bench, [arg.format(tmp=tmp_path) for arg in args], headline, tmp_path)
