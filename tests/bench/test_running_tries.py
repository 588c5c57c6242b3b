"""bench/faults.py's ``running_tries``, which both fault campaigns use to find a try to kill (the task runner's
pid for bench/faults.py, the worker for bench/faults_platform.py): on a real store, only the campaign's
steps' tries that started and have not ended, newest first, those the predicate refuses skipped."""

from __future__ import annotations

from baton.events.event import Event
from tests.bench.test_smoke import load_bench


def _event(kind: str, run: str, step: str, try_number: int, **payload) -> Event:
    return Event(
        type=kind, run_id=run, workflow="fault_campaign", step=step, try_number=try_number, payload=payload
    )


def test_only_unended_tries_of_the_campaigns_steps_that_the_predicate_wants_newest_first(store):
    faults = load_bench("faults")
    store.append(
        [
            _event("step.started", "r1", "extract", 1, pid=11, worker="worker-1"),
            _event("step.started", "r1", "post", 1, pid=12, worker="worker-2"),
            _event("step.failed", "r1", "post", 1, error_class="E"),
            _event("step.started", "r1", "post", 2, pid=13, worker="worker-2"),
            _event("step.started", "r2", "_compensate", 1, pid=14, worker="worker-1"),  # not a campaign step
            _event("step.started", "r2", "confirm", 1, pid=15, worker="worker-1"),
            _event("step.succeeded", "r2", "confirm", 1),
        ]
    )
    with store.engine.connect() as conn:
        every = [(r, s, t, p["pid"]) for r, s, t, p in faults.running_tries(conn, lambda p: True, 50)]
        assert every == [("r1", "post", 2, 13), ("r1", "extract", 1, 11)]
        on_one = [p["pid"] for *_, p in faults.running_tries(conn, lambda p: p["worker"] == "worker-1", 50)]
        assert on_one == [11]
        assert list(faults.running_tries(conn, lambda p: True, 1)) == []  # the newest start (confirm) ended
