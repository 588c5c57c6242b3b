"""Tiny runs of the benchmarks that measure a running ``airflow standalone`` (LocalExecutor): the budget,
fault, latency, fan-out and priorities benchmarks, attached (``--attach``) to the Airflow the integration tests share
(tests/integration/shared_airflow.py, whose dags folder holds their DAGs), instead of each starting one:
they run with that Airflow's settings and beside its other work, and no timing is asserted. The fault
benchmark's faults are that Airflow's ``BATON_FAULTS``, scoped to its campaign's workflow (the settings its
``--write-dags`` printed), so the other tests' runs there see none."""

from __future__ import annotations

import re
import sys

import pytest
from sqlalchemy import select

from baton.events import schema
from baton.events.store import EventStore, engine_for
from baton.spec.loading import load_roster
from devtools.standalone import Standalone
from tests.bench.test_smoke import load_bench, tiny_run
from tests.bench.test_smoke_priorities import HEADLINE as PRIORITIES
from tests.bench.test_smoke_priorities import check_headline
from tests.conftest import ROOT

pytestmark = pytest.mark.integration  # it starts a service (an Airflow)

SMOKE = {
    "budget": r"overspend beyond in-flight bound: 0 calls \(0\.00% of budget\)",
    "faults": (
        r"completion rate: (?P<rate>\d+\.\d\d)% of 3 runs \(goal >= 99\.9 %\); (?P<undone>\d+) of "
        r"(?P<failed>\d+) failed runs compensated, (?P<lost>\d+) events lost, (?P<dupes>\d+) duplicated side effects"
    ),
    "latency": r"ratio of medians Baton/plain: \d+\.\d\d \(goal <= 1\.1\); server-side: \d+\.\d\d",
    "fanout": (
        r"ratio c4 / ideal \d+\.\d s: \d+\.\d\d \(goal <= 1\.5\); server-side \d+\.\d\d; "
        r"work task alone \d+\.\d\d"
    ),
}


@pytest.mark.parametrize("bench", sorted(SMOKE))
def test_a_tiny_run_on_the_shared_airflow_ends_with_its_headline(bench, shared_running: Standalone, tmp_path):
    # budget: its four runs of ATTACHED_ITEMS items; faults: three runs, no task killed (that Airflow's other
    # work goes on), its seeded faults those of that Airflow
    runs = {"budget": [], "faults": ["--runs", "3", "--no-kill"]}.get(bench, ["--runs", "1"])
    committed = ROOT / "bench" / "results" / "faults.json"  # the full campaign's figures
    before = committed.read_bytes()
    last = tiny_run(bench, [*runs, "--attach", str(shared_running.home)], SMOKE[bench], tmp_path)
    assert shared_running.healthy(timeout=5), "the benchmark stopped the Airflow it was attached to"
    if bench == "faults":  # what must hold under any load: no timing, but no run lost to a broken path
        assert committed.read_bytes() == before, "an attached run wrote over bench/results/faults.json"
        figures = re.fullmatch(SMOKE[bench], last).groupdict()
        assert float(figures["rate"]) > 0, last  # every post refused (a roster without its allowlist) fails
        assert figures["undone"] == figures["failed"] and figures["lost"] == figures["dupes"] == "0", last


def test_a_tiny_run_of_the_priorities_benchmark_on_the_shared_airflow(shared_running: Standalone, tmp_path):
    # its DAGs as --write-dags --quick wrote them (1 s steps, 2 slots); an arm of 2 urgent and 3 bulk runs, after
    # one warm-up run of each DAG: both arms replayed, the figures consistent (whatever they are here)
    args = ["--quick", "--urgent", "2", "--bulk", "3", "--warmup", "1", "--attach", str(shared_running.home)]
    last = tiny_run("priorities", args, PRIORITIES, tmp_path)
    check_headline(last, urgent=2)
    assert shared_running.healthy(timeout=5), "the benchmark stopped the Airflow it was attached to"
    # the real scheduler's DAG holds its Deadline Alerts' ids: the listener read the rows, and the urgent runs
    # (a deadline of a few seconds' slack, far before their level's bound) were ordered by it
    store = EventStore(engine_for(shared_running.store_url()))
    e = schema.events.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(e.payload).where(e.workflow == "prio_urgent", e.type == "priority.assigned")
        )
        standings = [row.payload for row in rows]
    assert len(standings) >= 3, standings  # the warm-up run and the arm's two
    assert all(p["deadline_at"] and p["reason"].startswith("deadline ") for p in standings), standings


class Recording(Standalone):
    """The attached Airflow, recording the commands run with its settings."""

    def command(self, *args: str, timeout: float = 300):
        self.commands.append(args)
        return super().command(*args, timeout=timeout)


def test_an_attached_benchmark_syncs_the_pools_only_when_one_is_missing_or_differs(
    shared_running: Standalone,
):
    load_bench("latency")  # and bench/harness.py with it, as the module harness
    harness = sys.modules["harness"]
    attached = Recording.attach(shared_running.home)
    attached.commands = []
    assert harness.pools_in_place(attached)  # the shared Airflow's start synced them
    assert harness.sync_pools(attached) and attached.commands == []  # so nothing runs
    *_, resized, deferred, deleted = load_roster(attached.dags_folder / "agents.yaml").agents  # benchmarks'

    def put(agent, slots: int, include_deferred: bool = False) -> None:
        body = {"pool": agent.pool, "slots": slots, "include_deferred": include_deferred}
        response = attached.api("PATCH", f"/pools/{agent.pool}", json=body)
        assert response.status_code == 200, response.text

    def delete(agent) -> None:
        assert attached.api("DELETE", f"/pools/{agent.pool}").status_code == 204

    def create(agent) -> None:
        body = {"name": agent.pool, "slots": agent.max_concurrency}
        assert attached.api("POST", "/pools", json=body).status_code == 201

    changes = [  # (the change, its undoing over the REST API)
        (lambda: put(resized, 77), lambda: put(resized, resized.max_concurrency)),
        (
            lambda: put(deferred, deferred.max_concurrency, True),
            lambda: put(deferred, deferred.max_concurrency),
        ),
        (lambda: delete(deleted), lambda: create(deleted)),
    ]
    for change, undo in changes:  # each alone is seen
        change()
        assert not harness.pools_in_place(attached)
        undo()
        assert harness.pools_in_place(attached)
    for change, _ in changes:  # all at once: one `baton pools sync` puts them back
        change()
    assert harness.sync_pools(attached) and attached.commands == [("baton", "pools", "sync")]
    assert harness.pools_in_place(attached)
