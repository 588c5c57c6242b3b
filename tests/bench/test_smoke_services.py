"""A tiny run of the fault-injection benchmark, which starts an Airflow of its own on PostgreSQL (the Celery
benchmark's runs on the topology of tests/integration/test_celery.py). It starts with the test session, in
the background (tests/bench/early.py: its arguments are there), and this test, scheduled last, collects it."""

from __future__ import annotations

import re

import pytest

from tests.bench import early

HEADLINES = {
    "faults": r"completion rate: (?P<rate>\d+\.\d\d)% of 3 runs \(goal >= 99\.9 %\); (?P<undone>\d+) of "
    r"(?P<failed>\d+) failed runs compensated, (?P<lost>\d+) events lost, (?P<dupes>\d+) duplicated side effects",
}


@pytest.mark.parametrize("bench", sorted(HEADLINES))
def test_a_tiny_run_ends_with_its_headline(bench):
    last = early.collect(bench, HEADLINES[bench])
    if bench == "faults":  # what must hold under any load: no timing, but no run lost to a broken path
        figures = re.fullmatch(HEADLINES[bench], last).groupdict()
        assert float(figures["rate"]) > 0, last  # every post refused (a roster without its allowlist) fails
        assert figures["undone"] == figures["failed"] and figures["lost"] == figures["dupes"] == "0", last
