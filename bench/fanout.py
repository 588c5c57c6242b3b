"""Benchmark: a step fanned out over 100 agent calls of 200 ms each, trigger to success on a running Airflow.

It writes a temp dags folder holding Baton's loader (baton_workflows.py) with a roster of one agent,
``bench_worker`` (``max_concurrency`` 16; its connection baton_bench_slow, defined through the
environment as ``{"model": "baton:offline", "offline_delay_s": 0.2}``: the offline model, answering
after 200 ms), and two templates, ``fanout_c4`` and ``fanout_c16``: a skill step ``items`` (the
``bench_items`` skill: item_0 .. item_99) and a step ``work`` with ``for_each: items.items`` on
``bench_worker`` at concurrency 4 and 16 (all 100 calls in ONE Airflow task, as coroutines). The
hand-written DAG file ``fanout_bare`` is the baseline: one plain ``@task`` ``work`` running the same
100 sleeps of 200 ms with ``asyncio.gather``, 16 at once (an ``asyncio.Semaphore``). All three are
unscheduled. One ``airflow standalone`` (temp AIRFLOW_HOME, the settings of ``make run`` from
scripts/env.sh) runs them; ``baton pools sync`` creates the agent's pool. After one unmeasured
warm-up run of each DAG, runs alternate c4, c16, bare, c4 ... ``--runs`` times each. A run's time is
the wall time from just before ``POST /dagRuns`` until polling (every 0.05 s) sees the run succeed;
the server-side duration (``end_date - queued_at``) and the ``work`` task's own duration (its task
instance's ``end_date - start_date``: the in-task cost, without scheduling) are recorded too.

Goals (medians of wall times): c4 / the ideal ceil(100 / 4) x 200 ms = 5 s <= 1.5 (100 plain mapped
tasks took 11.9x here); c16 / bare <= 1.2.

``--write-dags DIR`` writes its DAGs into another dags folder (with Baton's loader and a roster if it has
none) and prints the settings that Airflow needs as JSON; ``--attach AIRFLOW_HOME`` then measures that
Airflow once it runs (started by ``devtools.standalone``), with its settings and beside its other work,
and leaves it running. The test suite's smoke run does that on the Airflow its integration tests share.

Run from the repository root:

    .venv/bin/python bench/fanout.py [--runs 5] [--keep DIR]

This is a benchmark, not a test: it prints the medians and the ratios and exits 0 whatever the
ratios (1 when a run fails or times out, or when an Airflow process outlives it).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from cli_types import bounded_int
from harness import (
    BenchError,
    attach_arguments,
    attached,
    baton_dags,
    effective_settings,
    none_exists,
    other_airflows,
    print_environment,
    run_bench,
    run_once,
    sync_pools,
    task_instances,
    ts,
    workdir,
    write_dags_only,
    write_new,
)

from devtools.standalone import Standalone

C4, C16, BARE = "fanout_c4", "fanout_c16", "fanout_bare"
DAGS = (C4, C16, BARE)
CONCURRENCY = {C4: 4, C16: 16, BARE: 16}
LABELS = {C4: "Baton, concurrency 4:", C16: "Baton, concurrency 16:", BARE: "bare asyncio.gather 16:"}
TASKS = {C4: ("items", "work"), C16: ("items", "work"), BARE: ("work",)}
ITEMS = 100
DELAY = 0.2  # seconds per agent call
GOAL_C4, GOAL_C16 = 1.5, 1.2
CONN = "baton_bench_slow"
SETTINGS = {
    "BATON_EXTENSIONS": "devtools.bench_skills",  # the bench_items skill, from outside the package
    f"AIRFLOW_CONN_{CONN.upper()}": json.dumps(
        {"conn_type": "pydanticai", "extra": {"model": "baton:offline", "offline_delay_s": DELAY}}
    ),
}


def ideal(dag_id: str) -> float:
    """The least time the 100 calls can take at the DAG's concurrency: ceil(100 / c) x 200 ms."""
    return math.ceil(ITEMS / CONCURRENCY[dag_id]) * DELAY


AGENTS = f"""\
  # bench/fanout.py's agent: it answers after {DELAY * 1000:.0f} ms (the offline model with a delay).
  - name: bench_worker
    description: Answers after {DELAY * 1000:.0f} ms (the offline model with a delay).
    capabilities: [bench]
    llm_conn_id: {CONN}
    max_concurrency: 16
"""

BATON_TEMPLATE = """\
workflow: {dag_id}
version: 1
description: |
  Fan-out benchmark (bench/fanout.py): {items} items, one agent call of {delay_ms:.0f} ms each,
  {concurrency} at once in one task.
owner: bench
category: bench
tags: [bench]
inputs:
  count:
    type: integer
    default: {items}
    description: How many items to fan out over.
steps:
  - id: items
    skill: bench_items
    output: BenchItems
  - id: work
    for_each: {{over: items.items, concurrency: {concurrency}}}
    agent: bench_worker
    instruction: "Process {{{{ item }}}}."
    output:
      done: string
"""

BARE_DAG = '''\
"""Fan-out benchmark (bench/fanout.py): one plain Airflow @task running {items} sleeps of {delay_ms:.0f} ms,
{concurrency} at once with asyncio.gather: the baseline of the Baton fan-out at concurrency {concurrency}."""

import asyncio

from airflow.sdk import dag, task


@dag(dag_id="{dag_id}", schedule=None, tags=["bench"])
def {dag_id}():
    @task
    def work() -> int:
        async def calls() -> list[int]:
            gate = asyncio.Semaphore({concurrency})

            async def one(index: int) -> int:
                async with gate:
                    await asyncio.sleep({delay})
                return index

            return await asyncio.gather(*(one(i) for i in range({items})))

        return len(asyncio.run(calls()))

    work()


{dag_id}()
'''


def write_dags(dags: Path) -> dict[str, str]:
    """The three DAGs in ``dags`` (with Baton's loader and a roster, given the bench's agent); the
    settings they need."""
    none_exists(*(dags / "workflows" / f"{dag_id}.yaml" for dag_id in (C4, C16)), dags / f"{BARE}.py")
    baton_dags(dags, AGENTS, ("bench_worker",))
    for dag_id in (C4, C16):
        text = BATON_TEMPLATE.format(
            dag_id=dag_id, items=ITEMS, delay_ms=DELAY * 1000, concurrency=CONCURRENCY[dag_id]
        )
        write_new(dags / "workflows" / f"{dag_id}.yaml", text)
    text = BARE_DAG.format(
        dag_id=BARE, items=ITEMS, delay=DELAY, delay_ms=DELAY * 1000, concurrency=CONCURRENCY[BARE]
    )
    write_new(dags / f"{BARE}.py", text)
    return SETTINGS


def tis_of(client: httpx.Client, dag_id: str, run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {ti["task_id"]: ti for ti in task_instances(client, dag_id, run["dag_run_id"])}


def phases(client: httpx.Client, dag_id: str, run: dict[str, Any]) -> dict[str, float]:
    """Where a run's time went, from the server's timestamps: before, in and after the ``work`` task."""
    tis = tis_of(client, dag_id, run)
    retried = [t for t, ti in tis.items() if ti["try_number"] != 1 or ti["state"] != "success"]
    if retried or sorted(tis) != sorted(TASKS[dag_id]):
        raise BenchError(f"{dag_id} run {run['dag_run_id']}: unexpected tasks or retries: {tis}")
    work = tis["work"]
    started, ended = ts(work["start_date"]), ts(work["end_date"])
    out = {
        "queued -> work started": (started - ts(run["queued_at"])).total_seconds(),
        "work task running": (ended - started).total_seconds(),
        "work ended -> run success": (ts(run["end_date"]) - ended).total_seconds(),
    }
    if out["work task running"] < ideal(dag_id) * 0.98:
        raise BenchError(
            f"{dag_id} run {run['dag_run_id']}: the work task took {out['work task running']:.2f} s, less "
            f"than the ideal {ideal(dag_id):.2f} s: the calls did not sleep {DELAY} s each"
        )
    return out


def check_baton_output(client: httpx.Client, dag_id: str, run_id: str) -> None:
    """The fan-out really ran 100 agent calls on bench_worker, none failed."""
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/work/xcomEntries/return_value"
    response = client.get(path, params={"deserialize": True})
    response.raise_for_status()
    value = response.json()["value"]
    if isinstance(value, str):
        value = json.loads(value)
    results = value.get("results") or []
    if (
        value.get("failures")
        or len(results) != ITEMS
        or {r.get("agent") for r in results} != {"bench_worker"}
        or not all("done" in (r.get("output") or {}) for r in results)
    ):
        raise BenchError(f"{dag_id}: unexpected output of step work: {str(value)[:1000]}")


def summary_line(label: str, wall: list[float], server: list[float], work: list[float]) -> str:
    return (
        f"{label:<24}median {statistics.median(wall):.2f} s (server {statistics.median(server):.2f} s, "
        f"work task {statistics.median(work):.2f} s) over {len(wall)} runs, "
        f"wall {min(wall):.2f} .. {max(wall):.2f} s"
    )


def bench(airflow: Standalone, runs: int) -> int:
    # its own templates (an attached Airflow's dags folder may hold broken ones on purpose)
    checked = airflow.command(
        "baton", "validate", *(str(airflow.dags_folder / "workflows" / f"{d}.yaml") for d in (C4, C16))
    )
    if checked.returncode != 0:
        print(f"baton validate failed:\n{checked.stdout[-2000:]}{checked.stderr[-2000:]}", file=sys.stderr)
        return 1
    others = other_airflows(airflow)
    airflow.start()
    if not sync_pools(airflow):
        return 1
    headers = {"Authorization": f"Bearer {airflow.token()}"}
    with httpx.Client(base_url=f"{airflow.url}/api/v2", headers=headers, timeout=30) as client:
        for dag_id in DAGS:
            if airflow.wait_for_dag(dag_id)["is_paused"]:
                client.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        effective = effective_settings(airflow)

        for dag_id in DAGS:  # warm-up, not measured: it need only succeed (a try retried under load is told)
            seconds, _, run = run_once(client, dag_id)
            tries = {
                t: ti["try_number"] for t, ti in tis_of(client, dag_id, run).items() if ti["try_number"] != 1
            }
            print(
                f"warm-up {dag_id}: {seconds:.2f} s" + (f" (retried, not measured: {tries})" if tries else "")
            )
            if dag_id != BARE:
                check_baton_output(client, dag_id, run["dag_run_id"])

        wall: dict[str, list[float]] = {d: [] for d in DAGS}
        server: dict[str, list[float]] = {d: [] for d in DAGS}
        spent: dict[str, list[dict[str, float]]] = {d: [] for d in DAGS}
        for i in range(runs):
            line = []
            for dag_id in DAGS:
                w, s, run = run_once(client, dag_id)
                wall[dag_id].append(w)
                server[dag_id].append(s)
                spent[dag_id].append(phases(client, dag_id, run))
                line.append(f"{dag_id} {w:.2f} s (work {spent[dag_id][-1]['work task running']:.2f})")
                others += other_airflows(airflow)  # sampled after every run: short-lived ones too
            print(f"run {i + 1:>2}: " + ", ".join(line))

    def median(dag_id: str, phase: str | None = None) -> float:
        if phase is None:
            return statistics.median(wall[dag_id])
        return statistics.median(p[phase] for p in spent[dag_id])

    print()
    print_environment(effective, others)
    for dag_id in DAGS:
        work = [p["work task running"] for p in spent[dag_id]]
        print(summary_line(LABELS[dag_id], wall[dag_id], server[dag_id], work))
    print("where the time goes (median seconds per run; server timestamps):")
    print(f"  {'':<28}" + "".join(f"{d.removeprefix('fanout_'):>8}" for d in DAGS))
    for phase in spent[C4][0]:
        print(f"  {phase:<28}" + "".join(f"{median(d, phase):>8.2f}" for d in DAGS))
    print(f"  {'(ideal of the work task)':<28}" + "".join(f"{ideal(d):>8.2f}" for d in DAGS))
    # the headlines, last: c16 over bare, then the c4 ratio
    c16 = median(C16) / median(BARE)
    print(
        f"ratio c16 / bare: {c16:.2f} (goal <= {GOAL_C16}); "
        f"server-side {statistics.median(server[C16]) / statistics.median(server[BARE]):.2f}; "
        f"work task alone {median(C16, 'work task running') / median(BARE, 'work task running'):.2f}"
    )
    c4 = median(C4) / ideal(C4)
    print(
        f"ratio c4 / ideal {ideal(C4):.1f} s: {c4:.2f} (goal <= {GOAL_C4}); "
        f"server-side {statistics.median(server[C4]) / ideal(C4):.2f}; "
        f"work task alone {median(C4, 'work task running') / ideal(C4):.2f}"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=bounded_int(1, 1000), default=5, help="measured runs of each DAG (default 5)"
    )
    parser.add_argument("--keep", type=Path, help="use this (new or empty) directory instead of a temp dir")
    attach_arguments(parser)
    args = parser.parse_args()
    if args.write_dags:
        return write_dags_only(parser, write_dags, args.write_dags)
    if args.attach:
        if args.keep:
            parser.error("--attach measures the Airflow as it runs: no --keep with it")
        airflow = attached(parser, args.attach)
        return run_bench(airflow, lambda: bench(airflow, args.runs))

    with ExitStack() as stack:
        base = workdir(stack, args.keep, "baton-fanout-")
        write_dags(base / "dags")
        airflow = Standalone(base / "home", dags_folder=base / "dags", settings=SETTINGS)

        if args.keep:
            print(f"dags folder and AIRFLOW_HOME kept in {base}")
        return run_bench(airflow, lambda: bench(airflow, args.runs))


if __name__ == "__main__":
    sys.exit(main())
