"""In-task fan-out on SQLite and PostgreSQL: dependencies order the subtasks, a failed dependency
fails its dependants, and a second try reruns only what did not succeed."""

from __future__ import annotations

import logging
from datetime import timedelta
from types import SimpleNamespace

from pydantic import TypeAdapter

from baton.coordination.fanout import BatchResult, FanOut, subtasks_of
from baton.events.recorder import StepRecorder
from baton.plan import CompiledStep, FanOutPlan
from baton.spec.roster import Agent
from baton.spec.step import Step

SCORER = Agent(name="scorer", capabilities=["scoring"], skill="score_leads", max_concurrency=4)
ITEMS = [
    {"id": "a"},
    {"id": "b", "depends_on": ["a"]},
    {"id": "c", "depends_on": ["b"]},
    {"id": "d"},
    {"id": "e", "capabilities": ["legal"]},  # nobody has 'legal'
    {"id": "f", "depends_on": ["e"]},
]


def _fan(store, try_number: int = 1) -> FanOut:
    spec = {
        "id": "fan",
        "route": {"capabilities": ["scoring"]},
        "for_each": {"over": "src.items", "concurrency": 3},
    }
    step = CompiledStep(  # no operator, no Airflow: the compiled step is all the fan-out reads
        workflow="w",
        template_version=1,
        spec=TypeAdapter(Step).validate_python({**spec, "instruction": "Score for {{ item.id }}"}),
        candidates=(SCORER,),
        fan_out=FanOutPlan(
            source="src", field="items", concurrency=3, batch_size=None, partial_failure="fail"
        ),
    )
    ti = SimpleNamespace(run_id="run_fan", task_id="fan", map_index=-1, try_number=try_number, max_tries=1)
    context = {"ti": ti, "dag_run": SimpleNamespace(run_type="manual", conf={}), "logical_date": None}
    recorder = StepRecorder(store, context, workflow="w", template_version=1)
    scope = {
        "inputs": {"region": "all", "min_score": 50},
        "steps": {},
        "context": {},
        "run": {"id": "run_fan"},
    }
    return FanOut(step, context, scope, recorder, timedelta(hours=1), logging.getLogger("test"))


def test_dependencies_order_subtasks_and_a_failed_one_fails_its_dependants(store):
    fan = _fan(store)
    outcome = fan.run(subtasks_of(ITEMS), BatchResult())
    assert sorted(outcome.results) == ["a", "b", "c", "d"]
    assert outcome.results["a"]["agent"] == "scorer" and outcome.results["a"]["output"]["total"] == 14
    assert sorted(outcome.failures) == ["e", "f"]
    assert outcome.failures["e"]["error"].startswith("SubtaskError: no agent has all of the capabilities")
    assert outcome.failures["f"]["error"] == "SubtaskError: its dependency 'e' failed"
    seq = {(e.type, e.payload.get("subtask")): e.seq for e in store.read("run_fan")}
    assert seq[("subtask.started", "b")] > seq[("subtask.succeeded", "a")]
    assert seq[("subtask.started", "c")] > seq[("subtask.succeeded", "b")]
    assert ("subtask.started", "f") not in seq and ("subtask.failed", "f") in seq


def test_a_later_try_reuses_what_succeeded_and_runs_only_the_rest(store):
    _fan(store).run(subtasks_of(ITEMS), BatchResult())
    again = _fan(store, try_number=2)
    done = again.done_before()
    assert sorted(done) == ["a", "b", "c", "d"]
    outcome = again.run(subtasks_of(ITEMS), BatchResult(results=done))
    started = [
        e.payload["subtask"]
        for e in store.read("run_fan")
        if e.type == "subtask.started" and e.try_number == 2
    ]
    assert started == []  # e has no agent; f waits on e: nothing that succeeded runs again
    assert sorted(outcome.failures) == ["e", "f"] and sorted(outcome.results) == ["a", "b", "c", "d"]


def test_two_runs_fanning_out_over_one_agent_at_once_lose_no_item_to_a_deadlock(store, monkeypatch):
    """Each run's group transaction takes several of the agent's slots; two runs at once take them in
    other orders, and PostgreSQL breaks the deadlock by failing one transaction: it goes again whole."""
    import json
    import threading

    monkeypatch.setenv(
        "AIRFLOW_CONN_FAN_LLM", json.dumps({"conn_type": "pydanticai", "extra": {"model": "baton:offline"}})
    )
    writer = Agent(name="writer", llm_conn_id="fan_llm", capabilities=["x"], max_concurrency=32)
    spec = {"id": "fan", "agent": "writer", "for_each": {"over": "src.items", "concurrency": 16}}
    step = CompiledStep(
        workflow="w",
        template_version=1,
        spec=TypeAdapter(Step).validate_python({**spec, "instruction": "Assess {{ item.id }}"}),
        agent=writer,
        fan_out=FanOutPlan(
            source="src", field="items", concurrency=16, batch_size=None, partial_failure="continue"
        ),
    )
    results: dict[str, BatchResult] = {}
    raised: dict[str, BaseException] = {}
    barrier = threading.Barrier(2)

    def run(run_id: str) -> None:
        try:
            ti = SimpleNamespace(run_id=run_id, task_id="fan", map_index=-1, try_number=1, max_tries=1)
            context = {"ti": ti, "dag_run": SimpleNamespace(run_type="manual", conf={}), "logical_date": None}
            recorder = StepRecorder(store, context, workflow="w", template_version=1)
            scope = {"inputs": {}, "steps": {}, "context": {}, "run": {"id": run_id}}
            fan = FanOut(step, context, scope, recorder, timedelta(hours=1), logging.getLogger("test"))
            barrier.wait(timeout=60)
            results[run_id] = fan.run(subtasks_of([{"id": f"i{n}"} for n in range(120)]), BatchResult())
        except BaseException as error:  # a thread's failure must fail the test, not leave it asserting less
            raised[run_id] = error

    threads = [threading.Thread(target=run, args=(r,)) for r in ("run_x", "run_y")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not [t for t in threads if t.is_alive()], "a run's fan-out did not end within 300 s"
    assert raised == {}
    assert sorted(results) == ["run_x", "run_y"]  # both runs finished: each one's outcome is checked below
    for run_id, outcome in results.items():
        assert not outcome.failures, (run_id, sorted({f["error"][:120] for f in outcome.failures.values()}))
        assert len(outcome.results) == 120
