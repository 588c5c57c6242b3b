"""Benchmark: deadline misses of urgent runs behind a bulk backlog, Baton's weight rule vs Airflow's default.

Issue 57: every task of a Baton DAG has the weight rule ``baton.queue.BatonPriority`` (a start-by time: the
earlier of queued_at + the level's ``max_wait`` and the deadline less the predicted p90 of the time still to
go), and Airflow's scheduler queues task instances by that weight. This replays the same bursty arrivals of
urgent runs (with a deadline) and bulk runs on a running Airflow with few slots, once under Baton's rule and
once under Airflow's default (``downstream``, ``priority_weight`` 1), and counts the urgent runs that missed.

What it writes (a temp dags folder: Baton's loader, a roster of one agent, two templates, one DAG file):

* the agent ``prio_worker``: the offline model answering each call after ``--step-seconds`` (its connection
  baton_bench_priorities, ``{"model": "baton:offline", "offline_delay_s": S}``), ``max_concurrency``
  ``--slots``: Baton's pool of the agent (``baton pools sync``) has that many slots, and both templates'
  steps run on it, so the pool is the constraint (Airflow's parallelism is above it);
* ``prio_urgent``: two steps on the agent, ``priority: high``, ``deadline:`` D (from the run's queued_at, as
  Airflow's Deadline Alert measures it): D = 9 x (S + 2 s), about twice what an urgent burst needs when it
  goes first and well under what it waits behind the bulk backlog in arrival order;
* ``prio_bulk``: two steps on the agent, ``priority: {level: low, max_wait: B}``, B the age bound: two thirds
  of the time the slots need for the arm's work (at S + 2 s a task; at least 30 s), so that a bulk run of the
  first burst left waiting behind the urgent ones until the arm's last third would pass it;
* ``priorities_default.py``: the default arm, ``prio_urgent_default`` and ``prio_bulk_default``, built by
  Baton's compiler from the same two template files (only the workflow name differs), with each task's
  ``weight_rule`` set back to Airflow's default ``"downstream"`` and ``priority_weight`` 1 (the operator's own
  attributes: Airflow serializes the rule by name). Baton's listener, which weighs a run triggered with its own
  level again as it starts, touches only tasks whose rule is Baton's (and no run here sets its own level).

Both templates set ``max_active_runs: 200`` and ``retries: 0``: every run is active at once (the scheduler
chooses among all their queued tasks, not Airflow's 16 runs a DAG), and a failed try fails the run.

The arrivals (seeded, ``--seed``): each arm replays the same schedule from its own start: 60 % of the bulk
runs in a burst at 0 s, the rest in two bursts at a third and two thirds of the arrival span; the urgent runs
in bursts of 4 spread over that span (jittered); the span is 60 % of the time the slots need for the arm's
work, so a backlog stands all along. Every run is triggered over REST with its logical date the trigger time,
so that Airflow's tie-break (the run's logical date, after the weight) is arrival order in both arms.

Before measuring, a warm-up, identical for both arms and not measured: 5 runs of each of its two DAGs
triggered at once (5 is the fewest runs the prediction learns from: ``baton.coordination.prediction``), so
Baton's rule has history to predict from. Then ``--rounds`` rounds, each one arm after the other on the same
Airflow (each arm waits until every run of the previous one ended), the default arm first in odd rounds.

Measured from Airflow's REST API: a run misses when ``end_date - queued_at`` > D; bulk throughput = bulk runs
completed per second of the arm's window (first queued_at to the last run's end), Baton's over the default's;
a bulk run's wait = its first task's start - queued_at, against the bound B. The weights the scheduler had
(task instances' ``priority_weight``) are shown as start-by times after queued_at, and the Baton arm's
``priority.assigned`` events are counted in the store.

``--write-dags DIR`` writes its DAGs into another dags folder (with Baton's loader and a roster if it has
none) and prints the settings that Airflow needs as JSON; ``--attach AIRFLOW_HOME`` then measures that
Airflow once it runs (started by ``devtools.standalone``), with the step time, slots, deadline and bound the
DAGs were written for (read back from them; ``--urgent``, ``--bulk`` and ``--quick`` size the arrivals), beside
its other work, and leaves it running. The test suite's smoke run does that on the Airflow its integration
tests share (written with ``--quick``).

Run from the repository root (PostgreSQL running, as for the tests: Airflow's metadata and Baton's store are
two throwaway databases on ``--server``, dropped at the end):

    .venv/bin/python bench/priorities.py [--urgent 12] [--bulk 24] [--step-seconds 3] [--slots 2] [--rounds 1]
        [--warmup 5] [--seed 57] [--quick] [--keep DIR] [--server URL]

The default size takes 8 to 12 minutes here (2 CPUs, Airflow's start included); ``--quick`` (4 urgent, 6 bulk,
1 s steps) about 4.
It prints per arm the misses, the makespan, the bulk completions and throughput, the urgent runs' lateness
(p50, max), the longest bulk wait against the bound, and the weights, then last:
``deadline misses: Baton N of M (N.N %), default N of M (N.N %); bulk throughput Baton/default N.NN; longest
bulk wait N s`` (the Baton arm's). Goal: Baton's misses at most half the default's, the throughput ratio >= 0.9,
no bulk run waiting past B. This is a benchmark, not a test: it exits 0 whatever the figures (1 when a run
fails or times out, or when an Airflow process outlives it).

Measured here at 066f873 (default size): ``deadline misses: Baton 11 of 12 (91.7 %), default 12 of 12 (100.0 %);
bulk throughput Baton/default 0.97; longest bulk wait 49 s``: the goal on misses not met, because Baton's rule
never saw the deadline. The dag processor stores a DAG's Deadline Alerts as rows and leaves their ids in the
serialized DAG (``SerializedDagModel._generate_deadline_uuids``), so the scheduler's ``dag.deadline`` is a list
of id strings, of which ``baton.queue.run_deadline_s`` (which reads ``DeadlineAlert`` objects and dicts) finds
no deadline: the urgent runs' tasks were weighed at their level's age bound (queued + 281 s), behind the bulk
runs' (queued + 120 s). The output says so: how many urgent runs' ``priority.assigned`` had a deadline.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cli_types import SEED_MAX, bounded_float, bounded_int
from harness import (
    BenchError,
    Databases,
    attach_arguments,
    attached,
    attached_store,
    baton_dags,
    effective_settings,
    none_exists,
    other_airflows,
    print_environment,
    run_bench,
    server_argument,
    sync_pools,
    ts,
    workdir,
    write_dags_only,
    write_new,
)

from baton.queue import start_by_of
from devtools.standalone import Standalone

URGENT, BULK = "prio_urgent", "prio_bulk"
ARMS = ("baton", "default")
DAG_IDS = {
    "baton": {URGENT: URGENT, BULK: BULK},
    "default": {URGENT: f"{URGENT}_default", BULK: f"{BULK}_default"},
}
DEFAULT_FILE = "priorities_default.py"
STEPS = ("first", "second")
AGENT = "prio_worker"
CONN = "baton_bench_priorities"
WARMUP = 5  # runs of each DAG before measuring: the fewest the prediction learns from (MIN_RUNS)
URGENT_BURST = 4
BULK_FIRST = 0.6  # the share of the bulk runs in the burst at 0 s
SPAN = 0.6  # the arrivals span this share of the time the slots need for the arm's work
OVERHEAD_S = 2.0  # an Airflow task's own time here beside its agent's answer (process, API calls), about
DEADLINE_TASKS = 9  # the urgent deadline: this many tasks' time
BOUND = 2 / 3  # the bulk runs' age bound: this share of the time the slots need for the arm's work
MAX_ACTIVE_RUNS = 200
POLL_S = 1.0
GOAL_MISSES, GOAL_THROUGHPUT = 0.5, 0.9
QUICK = {"urgent": 4, "bulk": 6, "step_seconds": 1.0}


@dataclass(frozen=True)
class Setup:
    """What the DAGs were written for: the sizes of an arm and the templates' deadline and age bound."""

    urgent: int
    bulk: int
    step_s: float
    slots: int
    deadline_s: int = 0
    max_wait_s: int = 0

    def __post_init__(self) -> None:
        task = self.step_s + OVERHEAD_S
        if not self.deadline_s:
            object.__setattr__(self, "deadline_s", math.ceil(DEADLINE_TASKS * task))
        if not self.max_wait_s:
            object.__setattr__(self, "max_wait_s", max(30, math.ceil(BOUND * self.work_s)))

    @property
    def work_s(self) -> float:
        """The time the slots need for the arm's tasks, at the estimated task time."""
        return (self.urgent + self.bulk) * len(STEPS) * (self.step_s + OVERHEAD_S) / self.slots

    def settings(self) -> dict[str, str]:
        slow = {
            "conn_type": "pydanticai",
            "extra": {"model": "baton:offline", "offline_delay_s": self.step_s},
        }
        return {f"AIRFLOW_CONN_{CONN.upper()}": json.dumps(slow)}


def agent_yaml(setup: Setup) -> str:
    return f"""\
  # bench/priorities.py's agent: it answers after {setup.step_s:g} s (the offline model with a delay); its
  # pool's {setup.slots} slots are the benchmark's constraint.
  - name: {AGENT}
    description: Answers after {setup.step_s:g} s (the offline model with a delay).
    capabilities: [bench]
    llm_conn_id: {CONN}
    max_concurrency: {setup.slots}
"""


def template_yaml(name: str, setup: Setup) -> str:
    if name == URGENT:
        what = f"an urgent request with a deadline of {setup.deadline_s} s"
        priority = f"priority: high\ndeadline: {setup.deadline_s}s\n"
    else:
        what = f"bulk work, waiting at most {setup.max_wait_s} s behind more urgent work"
        priority = f"priority: {{level: low, max_wait: {setup.max_wait_s}s}}\n"
    steps = "".join(
        f"""  - id: {step}
    agent: {AGENT}
{f"    needs: [{STEPS[i - 1]}]{chr(10)}" if i else ""}    instruction: Do part {i + 1} of request {{{{ run.id }}}}.
    output: {{done: string}}
"""
        for i, step in enumerate(STEPS)
    )
    return f"""\
workflow: {name}
version: 1
description: Priorities benchmark (bench/priorities.py), {what}.
owner: bench
category: bench
tags: [bench]
{priority}max_active_runs: {MAX_ACTIVE_RUNS}
defaults: {{retries: 0}}
steps:
{steps}"""


DEFAULT_DAG = f'''\
"""The default arm of bench/priorities.py: Airflow DAGs {URGENT}_default and {BULK}_default, built by Baton's
compiler from the templates workflows/{URGENT}.yaml and workflows/{BULK}.yaml (only the workflow name differs),
each task's weight rule set back to Airflow's default ("downstream", priority_weight 1)."""

from pathlib import Path

from baton.compile.build import build_dag
from baton.compile.loader import read_roster
from baton.plan import plan_workflow, step_reads
from baton.spec.loading import read_workflow

HERE = Path(__file__).resolve().parent


def default_arm(name: str, roster):
    """The DAG of workflows/<name>.yaml as <name>_default, on Airflow's default weight rule."""
    path = HERE / "workflows" / f"{{name}}.yaml"
    text = path.read_bytes().replace(f"workflow: {{name}}\\n".encode(), f"workflow: {{name}}_default\\n".encode(), 1)
    # read as the file workflows/<name>_default.yaml would be (a template's name is checked against its file's)
    workflow, _ = read_workflow(path.with_stem(f"{{name}}_default"), roster, root=HERE, data=text)
    dag = build_dag(plan_workflow(workflow, roster, step_reads(workflow)))
    for task in dag.tasks:
        task.weight_rule = "downstream"
        task.priority_weight = 1
    return dag


for _dag in [default_arm(name, read_roster(HERE)[0]) for name in ("{URGENT}", "{BULK}")]:
    globals()[_dag.dag_id] = _dag
del _dag
'''


def write_dags(dags: Path, setup: Setup) -> dict[str, str]:
    """The benchmark's templates and default-arm DAG file in ``dags`` (with Baton's loader and a roster, given
    its agent); the settings they need."""
    none_exists(*(dags / "workflows" / f"{name}.yaml" for name in (URGENT, BULK)), dags / DEFAULT_FILE)
    baton_dags(dags, agent_yaml(setup), (AGENT,))
    for name in (URGENT, BULK):
        write_new(dags / "workflows" / f"{name}.yaml", template_yaml(name, setup))
    write_new(dags / DEFAULT_FILE, DEFAULT_DAG)
    return setup.settings()


def read_setup(airflow: Standalone, urgent: int, bulk: int) -> Setup:
    """What an attached Airflow's DAGs were written for (--write-dags): the agent's delay and slots, the
    templates' deadline and bound; the arm's sizes as given."""
    import yaml

    folder = airflow.dags_folder
    roster = yaml.safe_load((folder / "agents.yaml").read_text(encoding="utf-8"))
    agent = next(a for a in roster["agents"] if a.get("name") == AGENT)
    conn = json.loads(airflow.settings[f"AIRFLOW_CONN_{CONN.upper()}"])
    templates = {n: yaml.safe_load((folder / "workflows" / f"{n}.yaml").read_text()) for n in (URGENT, BULK)}
    return Setup(
        urgent,
        bulk,
        float(conn["extra"]["offline_delay_s"]),
        int(agent["max_concurrency"]),
        int(templates[URGENT]["deadline"].removesuffix("s")),
        int(templates[BULK]["priority"]["max_wait"].removesuffix("s")),
    )


# --- the arrivals ---------------------------------------------------------------------------------------------


def arrivals(setup: Setup, seed: int) -> list[tuple[float, str]]:
    """(seconds after the arm's start, URGENT or BULK), in order: the same for both arms."""
    rng = random.Random(seed)
    span = SPAN * setup.work_s
    first = max(1, round(BULK_FIRST * setup.bulk)) if setup.bulk else 0
    rest = setup.bulk - first
    out = [(0.0, BULK)] * first
    out += [(round(span / 3, 1), BULK)] * (rest // 2) + [(round(2 * span / 3, 1), BULK)] * (rest - rest // 2)
    bursts = max(1, math.ceil(setup.urgent / URGENT_BURST))
    for index in range(bursts):
        size = min(URGENT_BURST, setup.urgent - index * URGENT_BURST)
        at = span * (index + 0.5) / bursts + rng.uniform(-0.1, 0.1) * span / bursts
        out += [(round(max(1.0, at), 1), URGENT)] * size
    return sorted(out, key=lambda item: (item[0], item[1] != BULK))


# --- triggering and reading runs ------------------------------------------------------------------------------


@dataclass
class Run:
    kind: str  # URGENT or BULK
    dag_id: str
    run_id: str
    info: dict[str, Any] = field(default_factory=dict)
    tis: list[dict[str, Any]] = field(default_factory=list)

    @property
    def queued(self) -> datetime:
        return ts(self.info["queued_at"])

    @property
    def ended(self) -> datetime:
        return ts(self.info["end_date"])

    @property
    def took_s(self) -> float:
        return (self.ended - self.queued).total_seconds()

    @property
    def wait_s(self) -> float:
        return (min(ts(ti["start_date"]) for ti in self.tis) - self.queued).total_seconds()


def trigger(client: httpx.Client, kind: str, dag_id: str, run_id: str) -> Run:
    body = {"dag_run_id": run_id, "logical_date": datetime.now(UTC).isoformat(), "conf": {}}
    for attempt in range(3):
        try:
            response = client.post(f"/dags/{dag_id}/dagRuns", json=body)
        except httpx.TimeoutException:
            if attempt == 2:
                raise BenchError(f"triggering {dag_id} ({run_id}) timed out three times") from None
            continue
        if response.status_code == 409 and attempt:  # the timed-out try had made it after all
            break
        if response.status_code != 200:
            raise BenchError(f"triggering {dag_id} gave {response.status_code}: {response.text[:500]}")
        break
    return Run(kind, dag_id, run_id)


def replay(client: httpx.Client, arm: str, schedule: list[tuple[float, str]], tag: str) -> list[Run]:
    """Trigger the arm's runs at the schedule's times (seconds after now)."""
    start = time.monotonic()
    runs = []
    for index, (at, kind) in enumerate(schedule):
        delay = start + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        runs.append(
            trigger(client, kind, DAG_IDS[arm][kind], f"{tag}_{kind.removeprefix('prio_')}_{index:03d}")
        )
    return runs


def wait_all(client: httpx.Client, runs: list[Run], timeout: float) -> None:
    """Until every run ended; then their runs' and task instances' JSON. A failed run or a timeout is a
    BenchError naming it."""
    deadline = time.monotonic() + timeout
    pending = {run.run_id: run for run in runs}
    while pending:
        for dag_id in sorted({run.dag_id for run in pending.values()}):
            try:
                response = client.get(
                    f"/dags/{dag_id}/dagRuns", params={"state": ["queued", "running"], "limit": 1}
                )
                response.raise_for_status()
            except httpx.TimeoutException:
                continue
            if response.json()["total_entries"] == 0:
                for run_id in [r for r, run in pending.items() if run.dag_id == dag_id]:
                    pending.pop(run_id)
        if pending and time.monotonic() > deadline:
            raise BenchError(
                f"{len(pending)} runs not ended after {timeout:.0f} s, e.g. {next(iter(pending))}"
            )
        if pending:
            time.sleep(POLL_S)
    for run in runs:
        response = client.get(f"/dags/{run.dag_id}/dagRuns/{run.run_id}")
        response.raise_for_status()
        run.info = response.json()
        tis = client.get(f"/dags/{run.dag_id}/dagRuns/{run.run_id}/taskInstances")
        tis.raise_for_status()
        run.tis = tis.json()["task_instances"]
        if run.info["state"] != "success" or sorted(ti["task_id"] for ti in run.tis) != sorted(STEPS):
            states = ", ".join(f"{ti['task_id']}={ti['state']} (try {ti['try_number']})" for ti in run.tis)
            raise BenchError(f"run {run.run_id} of {run.dag_id} ended {run.info['state']}: {states}")


# --- the figures ----------------------------------------------------------------------------------------------


@dataclass
class Arm:
    name: str
    runs: list[Run] = field(default_factory=list)

    def of(self, kind: str) -> list[Run]:
        return [run for run in self.runs if run.kind == kind]

    @property
    def window_s(self) -> float:
        """Per round: first queued_at to the last end, summed over rounds."""
        total = 0.0
        for round_runs in self.rounds():
            total += (max(r.ended for r in round_runs) - min(r.queued for r in round_runs)).total_seconds()
        return total

    def rounds(self) -> list[list[Run]]:
        by: dict[str, list[Run]] = {}
        for run in self.runs:
            by.setdefault(run.run_id.rsplit("_", 2)[0], []).append(run)
        return list(by.values())

    def misses(self, deadline_s: float) -> int:
        return sum(run.took_s > deadline_s for run in self.of(URGENT))

    def throughput(self) -> float:
        return len(self.of(BULK)) / self.window_s if self.window_s > 0 else 0.0

    def longest_bulk_wait(self) -> float:
        return max((run.wait_s for run in self.of(BULK)), default=0.0)


def peak_running(runs: list[Run]) -> int:
    """The most task instances running at once (from their start and end)."""
    moments = sorted(
        [(ts(ti["start_date"]), 1) for run in runs for ti in run.tis]
        + [(ts(ti["end_date"]), -1) for run in runs for ti in run.tis],
        key=lambda item: (item[0], item[1]),
    )
    peak = now = 0
    for _, change in moments:
        now += change
        peak = max(peak, now)
    return peak


def peak_waiting(runs: list[Run]) -> int:
    """The most task instances waiting at once: scheduled (their upstream done, or the run queued) and not yet
    started."""
    moments = []
    for run in runs:
        ends = {ti["task_id"]: ts(ti["end_date"]) for ti in run.tis}
        for ti in run.tis:
            index = STEPS.index(ti["task_id"])
            ready = run.queued if index == 0 else ends[STEPS[index - 1]]
            moments += [(ready, 1), (ts(ti["start_date"]), -1)]
    peak = now = 0
    for _, change in sorted(moments, key=lambda item: (item[0], item[1])):
        now += change
        peak = max(peak, now)
    return peak


def start_by_s(run: Run, ti: dict[str, Any]) -> float:
    """A Baton weight as its start-by time, in seconds after the run's queued_at (baton.queue.weight_of)."""
    return (datetime.fromisoformat(start_by_of(ti["priority_weight"])) - run.queued).total_seconds()


def pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def weights_text(arm: Arm) -> str:
    parts = []
    for kind in (URGENT, BULK):
        for step in STEPS:
            pairs = [(run, ti) for run in arm.of(kind) for ti in run.tis if ti["task_id"] == step]
            if arm.name == "baton":
                offsets = [start_by_s(run, ti) for run, ti in pairs]
                parts.append(
                    f"{kind.removeprefix('prio_')}.{step} start-by queued+{statistics.median(offsets):.0f} s "
                    f"({min(offsets):.0f} .. {max(offsets):.0f})"
                )
            else:
                weights = sorted({ti["priority_weight"] for _, ti in pairs})
                parts.append(f"{kind.removeprefix('prio_')}.{step} weight {weights}")
    return "; ".join(parts)


def report(arm: Arm, setup: Setup) -> None:
    urgent, bulk = arm.of(URGENT), arm.of(BULK)
    misses = arm.misses(setup.deadline_s)
    late = [run.took_s - setup.deadline_s for run in urgent]
    waits = [run.wait_s for run in bulk]
    over = sum(wait > setup.max_wait_s for wait in waits)
    print(
        f"{arm.name:>8}: deadline misses {misses} of {len(urgent)} ({pct(misses, len(urgent)):.1f} %); "
        f"urgent run time p50 {statistics.median(r.took_s for r in urgent):.0f} s, max "
        f"{max(r.took_s for r in urgent):.0f} s (deadline {setup.deadline_s} s; lateness p50 "
        f"{statistics.median(late):+.0f} s, max {max(late):+.0f} s)"
    )
    print(
        f"{'':>10}makespan {arm.window_s:.0f} s; bulk completed {len(bulk)}, {arm.throughput():.3f} runs/s; "
        f"bulk wait p50 {statistics.median(waits):.0f} s, longest {max(waits):.0f} s (bound {setup.max_wait_s} s: "
        f"{over} past it); peak tasks running {peak_running(arm.runs)}, waiting {peak_waiting(arm.runs)}"
    )
    print(f"{'':>10}weights: {weights_text(arm)}")


def assigned_events(store_url: str, runs: list[Run]) -> dict[str, list[dict[str, Any]]]:
    """The Baton arm's ``priority.assigned`` events' payloads, by kind of run (where each run stood as it
    started: its start-by time, the deadline the rule saw, the prediction, the reason)."""
    from baton.events.store import EventStore, engine_for

    store = EventStore(engine_for(store_url))
    try:
        found: dict[str, list[dict[str, Any]]] = {URGENT: [], BULK: []}
        for run in runs:
            found[run.kind] += [
                event.payload for event in store.read(run.run_id, types=["priority.assigned"])
            ]
        return found
    finally:
        store.engine.dispose()


def assigned_text(found: dict[str, list[dict[str, Any]]], runs: int) -> list[str]:
    urgent = found[URGENT]
    seen = [p for p in urgent if p.get("deadline_at")]
    p90 = [float(p["predicted_p90_s"]) for p in urgent if p.get("predicted_p90_s") is not None]
    lines = [
        f"store: {len(urgent) + len(found[BULK])} priority.assigned events for the Baton arm's {runs} runs; "
        f"urgent ones with a deadline seen by the rule: {len(seen)} of {len(urgent)}; urgent predicted p90 "
        + (f"{statistics.median(p90):.0f} s (median)" if p90 else "none")
    ]
    for kind, payloads in found.items():
        if payloads:
            lines.append(f"  e.g. {kind}: {payloads[-1].get('reason')}")
    if urgent and not seen:
        lines.append(
            "note: Baton's rule saw no urgent run's deadline: their weights rest on their level's age bound alone"
        )
    return lines


# --- the benchmark ---------------------------------------------------------------------------------------------


def bench(airflow: Standalone, setup: Setup, store_url: str, rounds: int, seed: int, warmup: int) -> int:
    others = other_airflows(airflow)
    airflow.start()
    if not sync_pools(airflow):
        return 1
    schedule = arrivals(setup, seed)
    timeout = max(600.0, 4 * setup.work_s)
    stamp = datetime.now(UTC).strftime("%H%M%S")
    headers = {"Authorization": f"Bearer {airflow.token()}"}
    with httpx.Client(base_url=f"{airflow.url}/api/v2", headers=headers, timeout=30) as client:
        for arm in ARMS:
            for dag_id in DAG_IDS[arm].values():
                if airflow.wait_for_dag(dag_id)["is_paused"]:
                    client.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        effective = effective_settings(airflow)
        for arm in ARMS if warmup else ():  # warm-up: history for the prediction; not measured
            began = time.monotonic()
            warm = [(0.0, kind) for kind in (URGENT, BULK) for _ in range(warmup)]
            runs = replay(client, arm, warm, f"warm_{stamp}_{arm}")
            wait_all(client, runs, timeout)
            print(f"warm-up {arm}: {warmup} runs of each DAG at once, {time.monotonic() - began:.0f} s")

        results = {arm: Arm(arm) for arm in ARMS}
        for index in range(rounds):
            order = ("default", "baton") if index % 2 == 0 else ("baton", "default")
            for arm in order:
                runs = replay(client, arm, schedule, f"r{index + 1}_{stamp}_{arm}")
                wait_all(client, runs, timeout)
                results[arm].runs += runs
                piece = Arm(arm, runs)
                print(
                    f"round {index + 1} {arm}: {piece.misses(setup.deadline_s)} of {len(piece.of(URGENT))} missed, "
                    f"makespan {piece.window_s:.0f} s, longest bulk wait {piece.longest_bulk_wait():.0f} s"
                )
                others += other_airflows(airflow)

    print()
    print_environment(
        effective,
        others,
        [
            f"agent {AGENT}: {setup.step_s:g} s an answer, pool of {setup.slots} slots; 2 steps a run",
            f"an arm: {setup.urgent} urgent runs (deadline {setup.deadline_s} s, bursts of {URGENT_BURST}) and "
            f"{setup.bulk} bulk runs (age bound {setup.max_wait_s} s), over {max(a for a, _ in schedule):.0f} s; "
            f"{rounds} round(s), seed {seed}; warm-up {warmup} runs of each DAG",
        ],
    )
    baton, default = results["baton"], results["default"]
    for line in assigned_text(assigned_events(store_url, baton.runs), len(baton.runs)):
        print(f"  {line}")
    for arm in (baton, default):
        report(arm, setup)
    m, n = len(baton.of(URGENT)), len(default.of(URGENT))
    mb, md = baton.misses(setup.deadline_s), default.misses(setup.deadline_s)
    ratio = baton.throughput() / default.throughput() if default.throughput() else float("nan")
    verdict = "neither arm missed: no contest" if md == 0 else "met" if mb <= GOAL_MISSES * md else "NOT met"
    print(
        f"goal: misses at most {GOAL_MISSES:.0%} of the default's ({verdict}); "
        f"bulk throughput >= {GOAL_THROUGHPUT} ({'met' if ratio >= GOAL_THROUGHPUT else 'NOT met'}); no bulk wait "
        f"past {setup.max_wait_s} s ({'met' if baton.longest_bulk_wait() <= setup.max_wait_s else 'NOT met'})"
    )
    print(
        f"deadline misses: Baton {mb} of {m} ({pct(mb, m):.1f} %), default {md} of {n} ({pct(md, n):.1f} %); "
        f"bulk throughput Baton/default {ratio:.2f}; longest bulk wait {baton.longest_bulk_wait():.0f} s"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urgent", type=bounded_int(1, 200), help="urgent runs an arm (default 12; quick 4)")
    parser.add_argument("--bulk", type=bounded_int(1, 400), help="bulk runs an arm (default 24; quick 6)")
    parser.add_argument(
        "--step-seconds",
        type=bounded_float(0.1, 60, " s"),
        help="seconds the agent takes to answer a step (default 3; quick 1)",
    )
    parser.add_argument("--slots", type=bounded_int(1, 8), help="the agent's pool slots (default 2)")
    parser.add_argument(
        "--rounds", type=bounded_int(1, 20), default=1, help="rounds of both arms (default 1)"
    )
    parser.add_argument(
        "--warmup",
        type=bounded_int(0, 50),
        default=WARMUP,
        help=f"unmeasured runs of each DAG first (default {WARMUP}: the fewest the prediction learns from)",
    )
    parser.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=57, help="the arrivals' seed (57)")
    parser.add_argument(
        "--quick", action="store_true", help="the smoke run's sizes: 4 urgent, 6 bulk, 1 s steps"
    )
    parser.add_argument("--keep", type=Path, help="use this (new or empty) directory instead of a temp dir")
    server_argument(parser)
    attach_arguments(parser)
    args = parser.parse_args()
    sizes = QUICK if args.quick else {"urgent": 12, "bulk": 24, "step_seconds": 3.0}
    urgent = args.urgent or sizes["urgent"]
    bulk = args.bulk or sizes["bulk"]
    step_s = args.step_seconds or sizes["step_seconds"]
    if args.write_dags:
        return write_dags_only(
            parser,
            lambda dags: write_dags(dags, Setup(urgent, bulk, step_s, args.slots or 2)),
            args.write_dags,
        )
    if args.attach:
        if args.keep or args.step_seconds or args.slots:
            parser.error(
                "--attach measures the DAGs as --write-dags wrote them: no --keep, --step-seconds or --slots"
            )
        airflow = attached(parser, args.attach)
        store = attached_store(parser, airflow)
        try:
            setup = read_setup(airflow, urgent, bulk)
        except (OSError, KeyError, StopIteration, ValueError, TypeError, AttributeError) as error:
            parser.error(
                f"--attach: this benchmark's DAGs are not there as --write-dags writes them ({error!r})"
            )
        return run_bench(airflow, lambda: bench(airflow, setup, store, args.rounds, args.seed, args.warmup))

    setup = Setup(urgent, bulk, step_s, args.slots or 2)
    with ExitStack() as stack:
        base = workdir(stack, args.keep, "baton-priorities-")
        settings = write_dags(base / "dags", setup)
        dbs = Databases(parser, stack, args.server, "baton_priorities", ("meta", "store"))
        settings["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = dbs.url("meta", "postgresql+psycopg2")
        settings["AIRFLOW_CONN_BATON_STORE"] = dbs.url("store", "postgresql")
        settings["AIRFLOW__CORE__PARALLELISM"] = str(max(4, setup.slots + 2))  # above the pool: it binds
        airflow = Standalone(base / "home", dags_folder=base / "dags", settings=settings)
        if args.keep:
            print(f"dags folder and AIRFLOW_HOME kept in {base}")
        return run_bench(
            airflow, lambda: bench(airflow, setup, dbs.url("store"), args.rounds, args.seed, args.warmup)
        )


if __name__ == "__main__":
    sys.exit(main())
