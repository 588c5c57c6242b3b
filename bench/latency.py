"""Benchmark: trigger-to-success latency of a 3-step Baton workflow vs. a plain Airflow @task chain.

It writes a temp dags folder holding Baton's loader (baton_workflows.py) with a roster of one agent,
``latency_planner`` (its connection baton_bench_latency, defined through the environment as
``{"model": "baton:offline"}``: the offline model, answering at once), one template, ``latency_baton``
(three steps on that agent in a chain; small structured outputs; each instruction reads the upstream
output through Jinja; the template's default retries), and one hand-written DAG file,
``latency_plain`` (three plain ``@task``s in a chain passing a small dict through XCom). Both are
unscheduled. One ``airflow standalone`` (temp AIRFLOW_HOME, the settings of ``make run`` from
scripts/env.sh) runs them; ``baton pools sync`` creates the agents' pools. After one unmeasured
warm-up run of each DAG, runs alternate Baton, plain, Baton, plain ... ``--runs`` times each. A
run's latency is the wall time from just before ``POST /dagRuns`` until polling (every 0.05 s)
sees the run succeed; the server-side duration (``end_date - queued_at``) is recorded too, and the
task timestamps give where the time goes. The goal is a ratio of medians Baton/plain <= 1.1.

Airflow's metadata database is a throwaway PostgreSQL one by default (``--metadata postgresql``, on
``--server``), as in production; ``--metadata sqlite`` keeps ``make run``'s SQLite. On SQLite both DAGs'
latencies are bimodal, a run taking either ~1 s or ~2 s, and which mode each DAG's median falls in decides
the ratio (it measured 0.59 to 1.33 here across sessions, the same code). With the same settings on
PostgreSQL the slow mode is gone (plain 1.06 .. 1.19 s, Baton 1.10 .. 1.45 s in one run): SQLite has one
writer, which the scheduler and the API server share. The output says how many runs of each DAG took
over 1.5 times its fastest.

``--no-preload`` sets ``AIRFLOW__SCHEDULER__MP_START_METHOD=fork``: LocalExecutor workers are then
forked from the scheduler, without the agent runtime that the default forkserver preloads, which
shows what the preload buys.

``--write-dags DIR`` writes its DAGs into another dags folder (with Baton's loader and a roster if it has
none) and prints the settings that Airflow needs as JSON; ``--attach AIRFLOW_HOME`` then measures that
Airflow once it runs (started by ``devtools.standalone``), with its settings and beside its other work,
and leaves it running. The test suite's smoke run does that on the Airflow its integration tests share.

Run from the repository root:

    .venv/bin/python bench/latency.py [--runs 10] [--metadata postgresql|sqlite] [--no-preload] [--keep DIR]

This is a benchmark, not a test: it prints the medians and the ratio and exits 0 whatever the
ratio (1 when a run fails or times out, or when an Airflow process outlives it).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
from cli_types import bounded_int
from harness import (
    BenchError,
    Databases,
    attach_arguments,
    attached,
    baton_dags,
    effective_settings,
    none_exists,
    other_airflows,
    print_environment,
    run_bench,
    run_once,
    server_argument,
    sync_pools,
    task_instances,
    ts,
    workdir,
    write_dags_only,
    write_new,
)

from devtools import standalone as standalone_module
from devtools.standalone import Standalone

BATON, PLAIN = "latency_baton", "latency_plain"
LABELS = {PLAIN: "plain @task chain:", BATON: "Baton offline chain:"}
TASKS = ("first", "second", "third")
GOAL = 1.1
NO_PRELOAD = {"AIRFLOW__SCHEDULER__MP_START_METHOD": "fork"}
SLOW_MODE = 1.5  # a run over this many times its DAG's fastest is counted as in the slow mode

CONN = "baton_bench_latency"
SETTINGS = {
    f"AIRFLOW_CONN_{CONN.upper()}": json.dumps(
        {"conn_type": "pydanticai", "extra": {"model": "baton:offline"}}
    )
}
AGENT = "latency_planner"
AGENTS = f"""\
  # bench/latency.py's agent: the offline model, answering at once.
  - name: {AGENT}
    description: Drafts, refines and signs off a one-line plan (the offline model).
    capabilities: [bench]
    llm_conn_id: {CONN}
"""

BATON_TEMPLATE = """\
workflow: latency_baton
version: 1
description: |
  Latency benchmark (bench/latency.py): three LLM agent steps in a chain, answered by the offline
  model (the agent's connection baton_bench_latency names it).
owner: bench
category: bench
tags: [bench]
steps:
  - id: first
    agent: latency_planner
    instruction: Draft a one-line plan for run {{ run.id }}.
    output:
      summary: string
      priority: {type: string, enum: [low, medium, high]}
  - id: second
    agent: latency_planner
    needs: [first]
    instruction: "Refine this {{ steps.first.priority }}-priority plan: {{ steps.first.summary }}"
    output:
      summary: string
      priority: {type: string, enum: [low, medium, high]}
  - id: third
    agent: latency_planner
    needs: [second]
    instruction: "Sign off this {{ steps.second.priority }}-priority plan: {{ steps.second.summary }}"
    output:
      summary: string
      priority: {type: string, enum: [low, medium, high]}
"""

PLAIN_DAG = '''\
"""Latency benchmark (bench/latency.py): three plain @tasks in a chain passing a small dict."""

from airflow.sdk import dag, task


@dag(dag_id="latency_plain", schedule=None, tags=["bench"])
def latency_plain():
    @task
    def first() -> dict:
        return {"summary": "draft plan", "priority": "low"}

    @task
    def second(plan: dict) -> dict:
        return {"summary": f"refined: {plan['summary']}", "priority": "medium"}

    @task
    def third(plan: dict) -> dict:
        return {"summary": f"signed off: {plan['summary']}", "priority": plan["priority"]}

    third(second(first()))


latency_plain()
'''


def write_dags(dags: Path) -> dict[str, str]:
    """The two DAGs in ``dags`` (with Baton's loader and a roster, given the bench's agent); the settings
    they need."""
    none_exists(dags / "workflows" / f"{BATON}.yaml", dags / f"{PLAIN}.py")
    baton_dags(dags, AGENTS, (AGENT,))
    write_new(dags / "workflows" / f"{BATON}.yaml", BATON_TEMPLATE)
    write_new(dags / f"{PLAIN}.py", PLAIN_DAG)
    return dict(SETTINGS)


def env_after_env_sh(airflow: Standalone) -> dict[str, str]:
    """The environment a command of ``airflow`` gets: its settings, then scripts/env.sh sourced."""
    result = airflow.command("env", "-0", timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"sourcing scripts/env.sh failed: {result.stderr[-2000:]}")
    return dict(item.split("=", 1) for item in result.stdout.split("\0") if "=" in item)


def start_method_lines(home: Path) -> list[str]:
    """What the scheduler logged about its multiprocessing start method and forkserver preload."""
    log = home / "standalone.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return [
        line.strip()
        for line in text.splitlines()
        if "for scheduler" in line and ("start method" in line or "preload modules" in line)
    ]


def phases(client: httpx.Client, dag_id: str, run: dict[str, Any]) -> dict[str, float]:
    """Where a run's time went, from the server's timestamps (seconds, summed over its tasks)."""
    tis = {ti["task_id"]: ti for ti in task_instances(client, dag_id, run["dag_run_id"])}
    retried = [t for t, ti in tis.items() if ti["try_number"] != 1 or ti["state"] != "success"]
    if retried or sorted(tis) != sorted(TASKS):
        raise BenchError(f"{dag_id} run {run['dag_run_id']}: unexpected tasks or retries: {tis}")
    out = dict.fromkeys(("until scheduled", "scheduled -> queued", "queued -> running", "running"), 0.0)
    previous = ts(run["queued_at"])
    for task_id in TASKS:
        ti = tis[task_id]
        scheduled, queued = ts(ti["scheduled_when"]), ts(ti["queued_when"])
        started, ended = ts(ti["start_date"]), ts(ti["end_date"])
        out["until scheduled"] += (scheduled - previous).total_seconds()
        out["scheduled -> queued"] += (queued - scheduled).total_seconds()
        out["queued -> running"] += (started - queued).total_seconds()
        out["running"] += (ended - started).total_seconds()
        previous = ended
    out["last task -> run success"] = (ts(run["end_date"]) - previous).total_seconds()
    return out


def check_baton_output(client: httpx.Client, run_id: str) -> None:
    """The Baton chain really ran the agent steps: the last one's output has the declared fields."""
    path = f"/dags/{BATON}/dagRuns/{run_id}/taskInstances/third/xcomEntries/return_value"
    response = client.get(path, params={"deserialize": True})
    response.raise_for_status()
    value = response.json()["value"]
    if isinstance(value, str):
        value = json.loads(value)
    if set(value) != {"summary", "priority"} or "offline" not in value["summary"]:
        raise BenchError(f"{BATON}: unexpected output of step third: {value!r}")


def summary_line(label: str, wall: list[float], server: list[float]) -> str:
    return (
        f"{label:<21}median {statistics.median(wall):.2f} s (server {statistics.median(server):.2f} s) "
        f"over {len(wall)} runs, min {min(wall):.2f} .. max {max(wall):.2f} s "
        f"(server {min(server):.2f} .. {max(server):.2f} s)"
    )


def slow_runs(wall: list[float]) -> int:
    """How many runs took over ``SLOW_MODE`` times the fastest (the slow mode of a bimodal latency)."""
    return sum(1 for seconds in wall if seconds > SLOW_MODE * min(wall))


def bench(airflow: Standalone, runs: int, preload: bool) -> int:
    others = other_airflows(airflow)
    airflow.start()  # an attached one is only checked
    if not sync_pools(airflow):
        return 1
    headers = {"Authorization": f"Bearer {airflow.token()}"}
    with httpx.Client(base_url=f"{airflow.url}/api/v2", headers=headers, timeout=30) as client:
        for dag_id in (BATON, PLAIN):
            if airflow.wait_for_dag(dag_id)["is_paused"]:
                client.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()

        effective = effective_settings(airflow)
        method = effective["mp_start_method"]
        if preload and method != "forkserver":
            print(f"warning: the scheduler runs with MP_START_METHOD={method}, not forkserver")
        if not preload and method != "fork":
            raise BenchError(f"--no-preload asked for fork but the scheduler runs with {method}")

        for dag_id in (BATON, PLAIN):  # warm-up, not measured
            seconds, _, run = run_once(client, dag_id)
            print(f"warm-up {dag_id}: {seconds:.2f} s")
            if dag_id == BATON:
                check_baton_output(client, run["dag_run_id"])

        wall: dict[str, list[float]] = {BATON: [], PLAIN: []}
        server: dict[str, list[float]] = {BATON: [], PLAIN: []}
        spent: dict[str, list[dict[str, float]]] = {BATON: [], PLAIN: []}
        for i in range(runs):
            line = []
            for dag_id in (BATON, PLAIN):
                w, s, run = run_once(client, dag_id)
                wall[dag_id].append(w)
                server[dag_id].append(s)
                spent[dag_id].append(phases(client, dag_id, run))
                line.append(f"{dag_id} {w:.2f} s (server {s:.2f} s)")
            print(f"run {i + 1:>2}: " + ", ".join(line))
        others += other_airflows(airflow)

    print()
    lines = [f"scheduler log: {line[-160:]}" for line in start_method_lines(airflow.home)]
    print_environment({"preload": "on" if preload else "off", **effective}, others, lines)
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print(
            "  note: PYTHONDONTWRITEBYTECODE is set: every task process compiles the modules that have no .pyc"
        )
    metadata = airflow.env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite (scripts/env.sh)").split(":")[0]
    print(f"  Airflow's metadata database: {metadata}")
    for dag_id in (PLAIN, BATON):
        print(summary_line(LABELS[dag_id], wall[dag_id], server[dag_id]))
    print(
        f"runs over {SLOW_MODE} x their DAG's fastest: plain {slow_runs(wall[PLAIN])} of {runs}, "
        f"Baton {slow_runs(wall[BATON])} of {runs}"
    )
    ratio = statistics.median(wall[BATON]) / statistics.median(wall[PLAIN])
    server_ratio = statistics.median(server[BATON]) / statistics.median(server[PLAIN])
    print("where the time goes (median seconds per run, summed over the 3 tasks; server timestamps):")
    print(f"  {'':<28}{'plain':>8}{'Baton':>8}")
    for phase in spent[PLAIN][0]:
        medians = [statistics.median(p[phase] for p in spent[d]) for d in (PLAIN, BATON)]
        print(f"  {phase:<28}{medians[0]:>8.2f}{medians[1]:>8.2f}")
    # the headline, last
    print(f"ratio of medians Baton/plain: {ratio:.2f} (goal <= {GOAL}); server-side: {server_ratio:.2f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=bounded_int(1, 1000), default=10, help="measured runs of each DAG (default 10)"
    )
    parser.add_argument(
        "--no-preload",
        action="store_true",
        help="fork LocalExecutor workers from the scheduler instead of the preloading forkserver",
    )
    parser.add_argument("--keep", type=Path, help="use this (new or empty) directory instead of a temp dir")
    parser.add_argument(
        "--metadata",
        choices=("postgresql", "sqlite"),
        help="Airflow's metadata database: a throwaway PostgreSQL one (default) or make run's SQLite",
    )
    server_argument(parser)
    attach_arguments(parser)
    args = parser.parse_args()
    preload = not args.no_preload
    if args.write_dags:
        return write_dags_only(parser, write_dags, args.write_dags)
    if args.attach:
        if args.no_preload or args.keep or args.metadata:
            parser.error(
                "--attach measures the Airflow as it runs: no --no-preload, --keep or --metadata with it"
            )
        airflow = attached(parser, args.attach)
        return run_bench(airflow, lambda: bench(airflow, args.runs, preload))

    with ExitStack() as stack:
        base = workdir(stack, args.keep, "baton-latency-")
        settings = write_dags(base / "dags") | ({} if preload else NO_PRELOAD)
        if (args.metadata or "postgresql") == "postgresql":
            meta = Databases(parser, stack, args.server, "baton_latency", ("meta",))
            settings["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = meta.url("meta", "postgresql+psycopg2")
        airflow = Standalone(base / "home", dags_folder=base / "dags", settings=settings)

        # scripts/env.sh may set a requested setting itself (it sets MP_START_METHOD unconditionally):
        # then the setting is applied after it, through a wrapper that sources it first.
        overridden = {k: v for k, v in settings.items() if env_after_env_sh(airflow).get(k) != v}
        if overridden:
            wrapper = base / "env.sh"
            wrapper.write_text(
                f"source {shlex.quote(str(standalone_module.ENV_SH))}\n"
                + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in overridden.items()),
                encoding="utf-8",
            )
            stack.enter_context(mock.patch.object(standalone_module, "ENV_SH", wrapper))
            print(f"note: scripts/env.sh overrides {', '.join(overridden)}; applied after it instead")

        if args.keep:
            print(f"dags folder and AIRFLOW_HOME kept in {base}")
        return run_bench(airflow, lambda: bench(airflow, args.runs, preload))


if __name__ == "__main__":
    sys.exit(main())
