"""Tiny runs of the benchmarks that measure a running ``airflow standalone`` (LocalExecutor): the budget,
latency and fan-out benchmarks, attached (``--attach``) to the Airflow the integration tests share
(tests/integration/shared_airflow.py, whose dags folder holds their DAGs), instead of each starting one:
they run with that Airflow's settings and beside its other work, and no timing is asserted."""

from __future__ import annotations

import pytest

from devtools.standalone import Standalone
from tests.bench.test_smoke import tiny_run

SMOKE = {
    "budget": r"overspend beyond in-flight bound: 0 calls \(0\.00% of budget\)",
    "latency": r"ratio of medians Baton/plain: \d+\.\d\d \(goal <= 1\.2\); server-side: \d+\.\d\d",
    "fanout": (
        r"ratio c4 / ideal \d+\.\d s: \d+\.\d\d \(goal <= 1\.5\); server-side \d+\.\d\d; "
        r"work task alone \d+\.\d\d"
    ),
}


@pytest.mark.parametrize("bench", sorted(SMOKE))
def test_a_tiny_run_on_the_shared_airflow_ends_with_its_headline(bench, shared_running: Standalone, tmp_path):
    runs = [] if bench == "budget" else ["--runs", "1"]  # budget: its four runs of ATTACHED_ITEMS items
    tiny_run(bench, [*runs, "--attach", str(shared_running.home)], SMOKE[bench], tmp_path)
    assert shared_running.healthy(timeout=5), "the benchmark stopped the Airflow it was attached to"
