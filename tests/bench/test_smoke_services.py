"""Tiny runs of the benchmarks that start Airflow on PostgreSQL (faults) and on Celery workers (celery)."""

from __future__ import annotations

import re

import pytest

from tests.bench.test_smoke import tiny_run

SMOKE = {
    "faults": (
        ["--runs", "3", "--no-kill", "--hang", "2", "--results", "{tmp}/faults.json"],
        r"completion rate: (?P<rate>\d+\.\d\d)% of 3 runs \(goal >= 99\.9 %\); (?P<undone>\d+) of "
        r"(?P<failed>\d+) failed runs compensated, (?P<lost>\d+) events lost, (?P<dupes>\d+) duplicated side effects",
    ),
    "celery": (
        ["--runs", "1", "--steps", "4", "--delay", "0.5"],
        r"speed-up, 2 workers vs 1: \d+\.\d\dx \(ideal 2\.00\)",
    ),
}


@pytest.mark.parametrize("bench", sorted(SMOKE))
def test_a_tiny_run_ends_with_its_headline(bench, tmp_path):
    args, headline = SMOKE[bench]
    last = tiny_run(bench, [arg.format(tmp=tmp_path) for arg in args], headline, tmp_path)
    if bench == "faults":  # what must hold under any load: no timing, but no run lost to a broken path
        figures = re.fullmatch(headline, last).groupdict()
        assert float(figures["rate"]) > 0, last  # every post refused (a roster without its allowlist) fails
        assert figures["undone"] == figures["failed"] and figures["lost"] == figures["dupes"] == "0", last
