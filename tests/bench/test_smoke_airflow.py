"""Tiny runs of the benchmarks that start an ``airflow standalone`` of their own (LocalExecutor)."""

from __future__ import annotations

import pytest

from tests.bench.test_smoke import tiny_run

SMOKE = {
    "latency": (
        ["--runs", "1"],
        r"ratio of medians Baton/plain: \d+\.\d\d \(goal <= 1\.2\); server-side: \d+\.\d\d",
    ),
    "fanout": (
        ["--runs", "1"],
        r"ratio c4 / ideal \d+\.\d s: \d+\.\d\d \(goal <= 1\.5\); server-side \d+\.\d\d; "
        r"work task alone \d+\.\d\d",
    ),
}


@pytest.mark.parametrize("bench", sorted(SMOKE))
def test_a_tiny_run_ends_with_its_headline(bench, tmp_path):
    tiny_run(bench, *SMOKE[bench], tmp_path)
