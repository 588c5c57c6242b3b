"""The docker-compose.yaml topology without Docker (devtools.topology, scripts/celery.sh): the api-server,
scheduler, dag-processor, triggerer and two real Celery workers (CeleryExecutor) on PostgreSQL and
Redis. Workflows are triggered through the REST API; Baton's events say which worker ran each try.

One topology for the module: lead_qualification and a fan-out run spread over both workers; a tiny run of
bench/celery.py (one worker, then two) on it, its smoke run in the suite; then a worker is SIGKILLed in the
middle of a run and the run still succeeds on the other one; last, the scheduler is SIGKILLed twice in a row
by someone else, the topology starts it again each time (devtools.supervise), and the next run succeeds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from collections import Counter

import pytest

from baton.events.store import EventStore, engine_for
from devtools.topology import CeleryTopology, TopologyError, check_services
from tests.bench.test_smoke import load_bench
from tests.conftest import DAGS, pg_database, processes_naming

pytestmark = pytest.mark.integration

# The Celery benchmark's tiny run: its DAG of 4 steps of 0.5 s beside this module's (its smoke run).
CELERY_BENCH = load_bench("celery")
CELERY_BENCH.STEPS, CELERY_BENCH.DELAY = [f"step_{i:02d}" for i in range(1, 5)], 0.5
BENCH_HEADLINE = r"speed-up, 2 workers vs 1: \d+\.\d\dx \(ideal 2\.00\)"
FANOUT = "celery_fanout"
STEPS = [f"part_{i}" for i in range(1, 9)]
DELAY = 4.0  # seconds each agent answer takes: the tries overlap, and a kill lands mid-try
AGENT = f"""
  - name: celery_analyst
    description: Answers after {DELAY:.0f} s (the offline model with a delay; tests/integration/test_celery.py).
    capabilities: [celery-test]
    llm_conn_id: celery_slow_llm
    max_concurrency: 8
"""
FANOUT_WORKFLOW = (
    f"""workflow: {FANOUT}
version: 1
description: Eight independent agent steps and a join, over the Celery workers (tests/integration/test_celery.py).
owner: tests
defaults: {{retries: 2, retry_delay: 1s, retry_exponential_backoff: false}}
steps:
"""
    + "".join(
        f"""  - id: {step}
    agent: celery_analyst
    instruction: Analyse part {step}.
    output: {{finding: string}}
"""
        for step in STEPS
    )
    + f"""  - id: join
    needs: [{", ".join(STEPS)}]
    agent: celery_analyst
    instruction: Join the findings.
    output: {{summary: string}}
"""
)


@pytest.fixture(scope="module")
def topology(tmp_path_factory):
    root = tmp_path_factory.mktemp("celery")
    dags = root / "dags"
    shutil.copytree(DAGS, dags, ignore=shutil.ignore_patterns("__pycache__"))
    (dags / "agents.yaml").write_text((dags / "agents.yaml").read_text() + AGENT)
    (dags / "workflows" / f"{FANOUT}.yaml").write_text(FANOUT_WORKFLOW)
    CELERY_BENCH.write_dags(dags)
    slow = {"conn_type": "pydanticai", "extra": {"model": "baton:offline", "offline_delay_s": DELAY}}
    with pg_database("baton_celery_meta") as meta, pg_database("baton_celery_store") as store:
        running = CeleryTopology(
            root / "home",
            meta,
            store,
            dags_folder=dags,
            workers=2,
            concurrency=2,
            settings={
                "AIRFLOW_CONN_CELERY_SLOW_LLM": json.dumps(slow),
                **CELERY_BENCH.settings(),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                # a killed worker's tries are found lost within seconds, not the default 5 minutes
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "10",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            },
        )
        try:
            yield running.start()
        finally:
            tmp = running.tmp
            running.stop()
            assert running.leftover_pids() == [], "a component of the topology outlived stop()"
            assert tmp is not None and not tmp.exists(), "the components' TMPDIR outlived stop()"
            assert running.queue_keys() == [], "the topology's queue outlived it in Redis"
            assert processes_naming(str(root)) == []


def _run(topology: CeleryTopology, dag_id: str) -> str:
    if topology.wait_for_dag(dag_id)["is_paused"]:
        assert topology.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False}).status_code == 200
    response = topology.trigger(dag_id)
    assert response.status_code == 200, response.text
    return response.json()["dag_run_id"]


def _events(topology: CeleryTopology, run_id: str):
    return list(EventStore(engine_for(topology.store_url)).read(run_id))


def _workers_by_try(events) -> dict[tuple[str, int], str]:
    return {(e.step, e.try_number): e.payload["worker"] for e in events if e.type == "step.started"}


def test_lead_qualification_and_a_fan_out_run_on_both_celery_workers(topology):
    assert {name.split("@")[0] for name in topology.ping()} == {"worker-1", "worker-2"}
    leads = _run(topology, "lead_qualification")
    fanout = _run(topology, FANOUT)
    assert topology.wait_for_run("lead_qualification", leads, timeout=300)["state"] == "success"
    assert topology.wait_for_run(FANOUT, fanout, timeout=300)["state"] == "success"

    events = _events(topology, leads)
    assert {(e.step, e.type) for e in events if e.type == "step.succeeded"} == {
        ("score_leads", "step.succeeded"),
        ("value_leads", "step.succeeded"),
    }
    assert set(_workers_by_try(events).values()) <= {"worker-1", "worker-2"}

    events = _events(topology, fanout)
    ran_on = _workers_by_try(events)
    assert sorted(step for step, _ in ran_on) == sorted([*STEPS, "join"])  # one try each
    assert set(ran_on.values()) == {"worker-1", "worker-2"}, ran_on  # the tasks of ONE run, on both
    assert [e.type for e in events][-1] == "run.succeeded"
    tis = topology.api("GET", f"/dags/{FANOUT}/dagRuns/{fanout}/taskInstances").json()["task_instances"]
    assert {ti["task_id"]: ti["state"] for ti in tis} == {step: "success" for step in [*STEPS, "join"]}
    assert {ti["queue"] for ti in tis} == {topology.queue}
    assert f"_kombu.binding.{topology.queue}" in topology.queue_keys()  # stop() removes it (see the fixture)


def test_the_celery_benchmarks_tiny_run_measures_one_worker_then_two_and_ends_with_its_headline(
    topology, capsys
):
    store = EventStore(engine_for(topology.store_url))
    try:
        assert CELERY_BENCH.bench(topology, store, 1) == 0  # a run that fails raises BenchError
    finally:
        store.engine.dispose()
    printed = capsys.readouterr().out
    assert re.fullmatch(BENCH_HEADLINE, printed.strip().splitlines()[-1]), printed[-2000:]
    assert "run 1: 1 worker(s) " in printed and "; 2 worker(s) " in printed, printed[-2000:]
    assert {name.split("@")[0] for name in topology.ping()} == {"worker-1", "worker-2"}  # both again


def test_a_worker_killed_mid_run_its_tries_are_retried_on_the_other_and_the_history_is_intact(topology):
    run_id = _run(topology, FANOUT)
    store = EventStore(engine_for(topology.store_url))
    deadline = time.monotonic() + 120
    while not any(
        e.payload.get("worker") == "worker-1" for e in store.read(run_id, types=["step.started"])
    ):  # worker-1 is in the middle of a try
        assert time.monotonic() < deadline, "worker-1 never started a step of the run"
        time.sleep(0.2)
    topology.kill("worker-1")
    killed_at = time.time()
    assert {name.split("@")[0] for name in topology.ping()} == {"worker-2"}

    assert topology.wait_for_run(FANOUT, run_id, timeout=300)["state"] == "success"
    events = _events(topology, run_id)
    ran_on = _workers_by_try(events)
    lost = sorted(step for (step, attempt), worker in ran_on.items() if worker == "worker-1")
    assert lost, ran_on
    for step in lost:  # the killed try, recorded as lost, then a new try on the surviving worker
        failed = [e for e in events if e.type == "step.failed" and e.step == step]
        assert [(e.try_number, e.payload["will_retry"]) for e in failed] == [(1, True)], failed
        # the try's own process notices its dead supervisor (a broken pipe), or, if it died with the
        # worker, the next try records it as lost
        assert failed[0].payload["error_class"] in ("BrokenPipeError", "TaskLost"), failed[0].payload
        assert ran_on[(step, 2)] == "worker-2"
    after_kill = [w for (s, a), w in ran_on.items() if a > 1 or s == "join"]
    assert set(after_kill) == {"worker-2"}
    succeeded = Counter(e.step for e in events if e.type == "step.succeeded")
    assert succeeded == Counter([*STEPS, "join"])  # every step exactly once
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [e.type for e in events][0] == "run.started" and events[-1].type == "run.succeeded"
    assert events[-1].ts.timestamp() > killed_at


def test_the_topology_says_what_is_missing_when_a_service_is_down():
    with pytest.raises(TopologyError) as missing:
        check_services("postgresql+psycopg2://postgres@127.0.0.1:1/x", "redis://127.0.0.1:1/0")
    message = str(missing.value)
    assert "PostgreSQL (127.0.0.1:1) does not answer: start it" in message
    assert "Redis (127.0.0.1:1) does not answer: start it" in message


def test_no_worker_answers_a_ping_on_a_broker_that_is_down_or_has_none(tmp_path):
    import redis

    def topology(broker: str) -> CeleryTopology:
        return CeleryTopology(tmp_path, "postgresql://127.0.0.1:1/x", "postgresql://127.0.0.1:1/y", broker)

    assert topology("redis://127.0.0.1:1/0").ping() == set()
    # a Redis database no worker listens on: the broadcast goes out and nobody answers
    client = redis.Redis.from_url("redis://127.0.0.1:6379/13")
    before = set(client.keys())
    try:
        assert topology("redis://127.0.0.1:6379/13").ping() == set()
    finally:  # Kombu's bookkeeping of the reply queue: nothing of the test stays in the shared Redis
        if made := set(client.keys()) - before:
            client.delete(*made)
        client.close()


def test_a_scheduler_sigkilled_twice_in_a_row_is_started_again_each_time_and_runs_the_next_run(
    topology, capsys
):
    """Last in the module: it kills a component every test above needs. As compose's ``restart: always``
    would, the topology's supervisor starts the scheduler again after 1 s, then 2 s (a second exit in a row)."""
    seen = len(topology.supervisor.history)
    killed = []
    for kill in (1, 2):  # hostile: the same component again, as soon as it is back
        old = topology.processes["scheduler"]
        os.killpg(old.pid, signal.SIGKILL)  # its whole process group, from outside the topology
        killed.append(old.pid)
        deadline = time.monotonic() + 120
        while topology.processes["scheduler"] is old or topology.processes["scheduler"].poll() is not None:
            assert time.monotonic() < deadline, (
                f"the scheduler was not started again ({kill}): {topology.supervisor.said}"
            )
            time.sleep(0.2)
    restarts = topology.supervisor.history[seen:]
    assert [(r.name, r.exited_pid, r.cause, r.in_a_row, r.delay) for r in restarts] == [
        ("scheduler", killed[0], "signal SIGKILL", 1, 1.0),
        ("scheduler", killed[1], "signal SIGKILL", 2, 2.0),
    ], topology.supervisor.said
    assert restarts[-1].pid == topology.processes["scheduler"].pid
    printed = capsys.readouterr().out
    for restart in restarts:
        assert (
            f"topology: scheduler (pid {restart.exited_pid}) exited unexpectedly with signal SIGKILL after "
            in printed
        ), printed
        assert (
            f"restart {restart.number} in {restart.delay:g} s (exits in a row: {restart.in_a_row})" in printed
        )
        assert f"topology: scheduler started again (restart {restart.number}, pid {restart.pid})" in printed

    run_id = _run(topology, "lead_qualification")  # the restarted scheduler schedules it, the workers run it
    assert topology.wait_for_run("lead_qualification", run_id, timeout=300)["state"] == "success"
    assert topology.processes["scheduler"].pid == restarts[-1].pid  # no crash since
    assert topology.supervisor.error is None and topology.running
