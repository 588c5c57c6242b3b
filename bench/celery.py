"""Benchmark: the same 40 independent agent steps on 1 Celery worker vs 2 (concurrency 2 each).

The topology of docker-compose.yaml without Docker (devtools.topology: api-server, scheduler,
dag-processor, triggerer, Celery workers; PostgreSQL for Airflow's metadata and Baton's store, two
throwaway databases dropped at the end; Redis as the broker) runs one template, ``celery_40``: 40
independent steps, each one Airflow task calling the agent ``bench_worker`` (the offline model
answering after ``DELAY`` s, a stand-in for a remote model's latency), and a join. After one
unmeasured warm-up run on both workers, measured runs alternate: worker-2 stopped (1 worker, 2
slots), worker-2 started again (2 workers, 4 slots), ``--runs`` times each. A run's time is the wall
time from just before ``POST /dagRuns`` until polling sees it succeed. Baton's ``step.started``
events say which worker ran each step; a run on 1 worker must have used only worker-1.

The ideal speed-up is 2 (twice the slots). Each task also costs its own process start-up on the
worker (CPU), and this machine has 2 cores for everything (scheduler, api-server, both workers), so
the measured ratio says how much of the second worker's slots the machine can really use.

Run from the repository root (PostgreSQL and Redis running, as for the tests):

    .venv/bin/python bench/celery.py [--runs 2] [--keep DIR]

This is a benchmark, not a test: it prints the medians and the ratio and exits 0 whatever the ratio
(1 when a run fails or times out, or when a process of the topology outlives it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx
from cli_types import bounded_int
from harness import (
    BenchError,
    baton_dags,
    none_exists,
    other_airflows,
    print_environment,
    run_bench,
    run_once,
    task_instances,
    ts,
    workdir,
    write_new,
)

from baton.events.store import EventStore, engine_for
from devtools.standalone import scratch_database
from devtools.topology import CeleryTopology, check_services

DAG_ID = "celery_40"
STEPS = [f"step_{i:02d}" for i in range(1, 41)]
DELAY = 2.0  # seconds each agent answer takes
CONCURRENCY = 2
CONN = "baton_bench_slow"
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def agent_yaml() -> str:
    """The roster entry of the benchmark's agent (added to a roster's list)."""
    return f"""\
  # bench/celery.py's agent: it answers after {DELAY:g} s (the offline model with a delay).
  - name: bench_worker
    description: Answers after {DELAY:g} s (the offline model with a delay).
    capabilities: [bench]
    llm_conn_id: {CONN}
    max_concurrency: 16
"""


def settings() -> dict[str, str]:
    """What the Airflow that runs the benchmark's DAG needs: the agent's slow offline model."""
    slow = {"conn_type": "pydanticai", "extra": {"model": "baton:offline", "offline_delay_s": DELAY}}
    return {f"AIRFLOW_CONN_{CONN.upper()}": json.dumps(slow)}


def template_yaml() -> str:
    return (
        f"""\
workflow: {DAG_ID}
version: 1
description: Celery benchmark (bench/celery.py), {len(STEPS)} independent agent steps of {DELAY:g} s and a join.
owner: bench
category: bench
tags: [bench]
steps:
"""
        + "".join(
            f"""  - id: {step}
    agent: bench_worker
    instruction: Process part {step}.
    output: {{done: string}}
"""
            for step in STEPS
        )
        + f"""  - id: join
    needs: [{", ".join(STEPS)}]
    agent: bench_worker
    instruction: Join the parts.
    output: {{done: string}}
"""
    )


def write_dags(dags: Path) -> None:
    """The benchmark's DAG in ``dags`` (new, or a dags folder with Baton's loader and a roster, to which
    its agent is added: tests/integration/test_celery.py runs it on its own topology)."""
    none_exists(dags / "workflows" / f"{DAG_ID}.yaml")
    baton_dags(dags, agent_yaml(), ("bench_worker",))
    write_new(dags / "workflows" / f"{DAG_ID}.yaml", template_yaml())


def workers_used(store: EventStore, run_id: str) -> Counter:
    """Steps per worker in a run, from Baton's step.started events."""
    return Counter(e.payload.get("worker") or "?" for e in store.read(run_id, types=["step.started"]))


def check_run(client: httpx.Client, store: EventStore, run: dict, workers: int) -> Counter:
    tis = task_instances(client, DAG_ID, run["dag_run_id"])
    retried = [ti["task_id"] for ti in tis if ti["try_number"] != 1 or ti["state"] != "success"]
    if retried or len(tis) != len(STEPS) + 1:
        raise BenchError(f"run {run['dag_run_id']}: unexpected tasks or retries: {retried or len(tis)}")
    used = workers_used(store, run["dag_run_id"])
    expected = {"worker-1"} if workers == 1 else {"worker-1", "worker-2"}
    if set(used) != expected or sum(used.values()) != len(tis):
        raise BenchError(f"run {run['dag_run_id']} on {workers} worker(s) ran on {dict(used)}")
    busiest = max(
        (ts(ti["end_date"]) - ts(ti["start_date"])).total_seconds() for ti in tis if ti["task_id"] != "join"
    )
    if busiest < DELAY:
        raise BenchError(f"a step took {busiest:.2f} s, less than the agent's {DELAY} s: no delay?")
    return used


def bench(topology: CeleryTopology, store: EventStore, runs: int) -> int:
    """The measurement on ``topology``, started here unless it runs already (the test suite's smoke run
    passes its own, with ``write_dags`` in its dags folder and ``settings()`` in its settings). It ends
    with both workers running."""
    others = other_airflows(topology)
    if not topology.running:
        topology.start()
    headers = {"Authorization": f"Bearer {topology.token()}"}
    with httpx.Client(base_url=f"{topology.url}/api/v2", headers=headers, timeout=30) as client:
        if topology.wait_for_dag(DAG_ID)["is_paused"]:
            client.patch(f"/dags/{DAG_ID}", json={"is_paused": False}).raise_for_status()
        wall, _, run = run_once(client, DAG_ID)  # warm-up, both workers
        print(f"warm-up (2 workers): {wall:.2f} s, steps per worker {dict(check_run(client, store, run, 2))}")

        times: dict[int, list[float]] = {1: [], 2: []}
        for i in range(runs):
            line = []
            for workers in (1, 2):
                if workers == 1:
                    topology.stop(names=["worker-2"])
                else:
                    topology.start_worker(2)
                    topology.wait_for_workers(120)
                wall, server, run = run_once(client, DAG_ID)
                used = check_run(client, store, run, workers)
                times[workers].append(wall)
                line.append(f"{workers} worker(s) {wall:.2f} s (server {server:.2f} s) {dict(used)}")
                others += other_airflows(topology)
            print(f"run {i + 1}: " + "; ".join(line))

    print()
    print_environment(
        {"executor": "CeleryExecutor", "worker_concurrency": str(CONCURRENCY), "agent_delay_s": str(DELAY)},
        others,
        [f"{len(STEPS)} independent steps + a join; ideal speed-up 2 (2 vs 4 slots)"],
    )
    one, two = statistics.median(times[1]), statistics.median(times[2])
    for workers, label in ((1, "1 worker, 2 slots:"), (2, "2 workers, 4 slots:")):
        values = times[workers]
        print(f"{label:<22}median {statistics.median(values):.2f} s over {len(values)} runs "
              f"({min(values):.2f} .. {max(values):.2f} s)")  # fmt: skip
    floor = (len(STEPS) / (CONCURRENCY * 1) + 1) * DELAY, (len(STEPS) / (CONCURRENCY * 2) + 1) * DELAY
    print(f"agent time alone (the floor): {floor[0]:.0f} s on 1 worker, {floor[1]:.0f} s on 2")
    print(f"speed-up, 2 workers vs 1: {one / two:.2f}x (ideal 2.00)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=bounded_int(1, 1000), default=2, help="measured runs on each worker count (default 2)"
    )
    parser.add_argument("--keep", type=Path, help="use this (new or empty) directory instead of a temp dir")
    parser.add_argument("--steps", type=int, default=len(STEPS), help="independent steps (default 40)")
    parser.add_argument(
        "--delay", type=float, default=DELAY, help="seconds each agent answer takes (default 2)"
    )
    args = parser.parse_args()
    if not 1 <= args.steps <= 500 or not 0.05 <= args.delay <= 60:
        parser.error(f"--steps must be 1..500 and --delay 0.05..60 s (got {args.steps}, {args.delay})")
    globals().update(STEPS=[f"step_{i:02d}" for i in range(1, args.steps + 1)], DELAY=args.delay)
    check_services(ADMIN_URL, "redis://127.0.0.1:6379/0")

    with ExitStack() as stack:
        base = workdir(stack, args.keep, "baton-celery-")
        write_dags(base / "dags")
        meta = stack.enter_context(scratch_database(ADMIN_URL, "baton_bench_meta"))
        store_url = stack.enter_context(scratch_database(ADMIN_URL, "baton_bench_store"))
        topology = CeleryTopology(
            base / "home",
            meta,
            store_url,
            dags_folder=base / "dags",
            workers=2,
            concurrency=CONCURRENCY,
            settings=settings(),
        )
        store = EventStore(engine_for(topology.store_url))
        if args.keep:
            print(f"dags folder and AIRFLOW_HOME kept in {base}")
        status = run_bench(topology, lambda: bench(topology, store, args.runs))
        store.engine.dispose()
        return status


if __name__ == "__main__":
    sys.exit(main())
