"""GET /baton/api/dashboard/queue and /runs/{run_id}/priority in-process, over the test's store and Airflow's
metadata database (its real session); what a running Airflow's queue shows is in tests/integration."""

from __future__ import annotations

import pytest

from baton.events.event import Event
from baton.queue import start_by_of, weight_of
from tests.ops.dashboard.scenario import T0

BASE = "/api/dashboard"
STANDING = {
    "level": 100,
    "level_from": "run",
    "max_wait_s": 60.0,
    "queued_at": T0.isoformat(),
    "start_by": "2026-11-28T12:01:00+00:00",
    "weight": 1,
    "reason": "level 100: waits at most 1.0 min behind more urgent work",
}


@pytest.fixture
def reads(reads, airflow_db):
    """The dashboard's client (conftest.py), with Airflow's metadata database the queue reads."""
    return reads


def test_a_runs_priority_is_what_it_recorded_as_it_started_or_null(reads, store):
    store.append([Event(type="priority.assigned", run_id="r1", workflow="w", payload=STANDING)])
    assert reads.get(f"{BASE}/runs/r1/priority").json() == {"priority": {**STANDING, **_defaults()}}
    assert reads.get(f"{BASE}/runs/nothing/priority").json() == {"priority": None}
    assert reads.get(f"{BASE}/runs/{'x' * 251}/priority").status_code == 422


def _defaults() -> dict:
    return {
        "deadline_at": None,
        "predicted_p50_s": None,
        "predicted_p90_s": None,
        "predicted_finish": None,
        "miss_risk": None,
        "history_runs": 0,
    }


def test_the_queue_is_bounded_and_empty_without_waiting_tasks(reads):
    answer = reads.get(f"{BASE}/queue")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"queue": [], "truncated": False, "limit": 100}
    for limit in (0, 501, -1, "many", 10**30):
        refused = reads.get(f"{BASE}/queue", params={"limit": limit})
        assert refused.status_code == 422 and "limit" in refused.text


def test_a_weight_reads_back_as_its_start_by_time_and_other_rules_weights_as_none():
    assert start_by_of(weight_of(T0)) == T0.isoformat(timespec="seconds")
    assert start_by_of(1) is None and start_by_of(3) is None and start_by_of(None) is None
