"""Benchmark: a labelled incident campaign on a running Airflow (issue 18) — how soon Baton's monitor
detects each injected fault, how soon the service recovers, and how many of its alerts were false.

What runs: ``airflow standalone`` (LocalExecutor, parallelism 4, PostgreSQL for Airflow's metadata,
Baton's store and a business database: throwaway databases on ``--server``, dropped at the end) with a
dags folder of dags/baton_workflows.py, dags/baton_monitor.py (the monitor, every minute) and
bench/workflows/incidents/: the roster (one LLM connection per agent, the offline model with a delay),
``incident_traffic`` (drafts fanned out over two capable writers, then analyse, summarise, check) and
``incident_orders`` (a sensor on the business database's ``orders`` table), and monitoring.yaml (the
default detectors and runbooks with windows of minutes, baselines from the warm-up).

Traffic with natural noise: a run of incident_traffic every ``--period`` seconds on average
(exponential gaps, seeded), an order inserted every ``--order-period`` seconds on average; the models
answer after their connection's delay (analyst 1.5 s, the others 0.2 s) plus the machine's own noise.

The labelled faults, once a first run of the traffic succeeded (the service runs; at most ``READY_S``) and
``--warmup`` minutes more, one every ``--stagger`` minutes, each ``--fault``
minutes long, each on its own agent or sensor (so an alert belongs to one fault at most):

- ``error``: incident_writer_a's model fails 30 % of its calls (``BATON_FAULTS`` window);
- ``slow``: incident_analyst's model answers three times slower;
- ``cost``: incident_summarizer's calls cost four times the tokens (a blown-up prompt);
- ``sensor``: the benchmark stops inserting orders, so incident_orders' sensor finds no rows;
- ``worker``: the worker of incident_checker's tasks is lost: every try of the ``check`` step is killed
  (SIGKILL of its task process) while it runs; Airflow retries them.

Then ``--tail`` minutes of steady traffic for the incidents to resolve. Scoring, from the events:
an alert is an incident opened; it is true when a fault on its scope (the agent, or ``sensor:<workflow>``)
was active when it opened or had ended at most ``ATTRIBUTION`` before, else false. Detection delay: the
first true alert's opening minus the fault's start. Recovery time: from the fault's start until the
service was whole again: the runbook's mitigation (the failing agent's circuit opened, so its work goes
to the other writer) when a runbook could fix it, else the incident's resolution after the fault ended.
A fault never alerted is a miss, left out of both means and listed.

Run from the repository root (about 16 minutes with the defaults)::

    .venv/bin/python bench/incidents.py [--only error,slow] [--warmup 5] [--fault 3] [--tail 4]

It prints the campaign, a line per fault, the false alerts, and last
``MTTD N s, MTTR N s, false positives N of M alerts (P %)``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cli_types import SEED_MAX, bounded_float, bounded_int, subset
from harness import (
    Databases,
    effective_settings,
    other_airflows,
    print_environment,
    run_bench,
    server_argument,
    sync_pools,
    workdir,
)
from sqlalchemy import Text, cast, func, select, text

from baton.events import schema
from baton.events.store import engine_for
from devtools.faults import environment
from devtools.standalone import Standalone

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "workflows" / "incidents"
TRAFFIC, ORDERS = "incident_traffic", "incident_orders"
READY_S = 600.0  # the longest wait for the first run of the traffic to succeed, before the warm-up starts
ATTRIBUTION = 180.0  # an alert this long after its fault ended still belongs to it
DELAYS = {"writer_a": 0.2, "writer_b": 0.2, "analyst": 1.5, "summarizer": 0.2, "checker": 0.2, "clerk": 0.2}
RUNNER = re.compile(rb"^airflow worker -- (\S+)")  # a task runner's process title


@dataclass
class Fault:
    name: str
    scope: str  # where its incidents are: agent:<name> or sensor:<workflow>
    what: str
    mitigated_by: str | None = None  # the runbook action that restores the service, if any
    start: float = 0.0
    end: float = 0.0


FAULTS = {
    "error": Fault(
        "error", "agent:incident_writer_a", "incident_writer_a's model fails 30 %", "open_circuit"
    ),
    "slow": Fault("slow", "agent:incident_analyst", "incident_analyst's model x3 slower"),
    "cost": Fault("cost", "agent:incident_summarizer", "incident_summarizer's tokens x4"),
    "sensor": Fault("sensor", f"sensor:{ORDERS}", "no new orders for incident_orders' sensor"),
    "worker": Fault("worker", "agent:incident_checker", "the worker of incident_checker's tasks lost"),
}


def windows(faults: list[Fault]) -> list[dict[str, Any]]:
    """The ``BATON_FAULTS`` windows of the model faults (the others the benchmark does itself)."""
    kinds = {
        "error": ("error", "incidents_writer_a", {"rate": 0.3}),
        "slow": ("slow", "incidents_analyst", {"factor": 3}),
        "cost": ("cost", "incidents_summarizer", {"factor": 4}),
    }
    return [
        {
            "kind": kinds[f.name][0],
            "conn": kinds[f.name][1],
            "start": f.start,
            "end": f.end,
            **kinds[f.name][2],
        }
        for f in faults
        if f.name in kinds
    ]


def write_dags(dags: Path) -> None:
    (dags / "workflows").mkdir(parents=True)
    for name in ("baton_workflows.py", "baton_monitor.py"):
        shutil.copyfile(ROOT / "dags" / name, dags / name)
    for name in ("agents.yaml", "monitoring.yaml"):
        shutil.copyfile(HERE / name, dags / name)
    for workflow in (TRAFFIC, ORDERS):
        shutil.copyfile(HERE / "workflows" / f"{workflow}.yaml", dags / "workflows" / f"{workflow}.yaml")


def settings_for(dbs: Databases, faults: list[Fault], seed: int, clock: Path) -> dict[str, str]:
    connections = {
        f"AIRFLOW_CONN_INCIDENTS_{agent.upper()}": json.dumps(
            {"conn_type": "pydanticai", "extra": {"model": "baton:offline", "offline_delay_s": delay}}
        )
        for agent, delay in DELAYS.items()
    }
    env = environment(seed=seed, windows=windows(faults), clock=str(clock))
    env["BATON_EXTENSIONS"] += ",devtools.bench_skills"
    return {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": dbs.url("meta", "postgresql+psycopg2"),
        "AIRFLOW_CONN_BATON_STORE": dbs.url("store", "postgresql"),
        "AIRFLOW_CONN_INCIDENTS_BUSINESS": dbs.url("biz", "postgresql"),
        **connections,
        **env,
    }


# --- the traffic and the faults the benchmark makes itself --------------------------------------------


class Campaign:
    """The threads of the campaign: runs triggered, orders inserted, the lost worker's tasks killed."""

    def __init__(self, airflow: Standalone, dbs: Databases, args: argparse.Namespace):
        self.airflow, self.args = airflow, args
        self.faults: dict[str, Fault] = {}  # none until the schedule starts (open_faults)
        self.store = engine_for(dbs.url("store"))
        self.biz = engine_for(dbs.url("biz"))
        self.stop = threading.Event()
        self.counts = {"runs_triggered": 0, "trigger_errors": 0, "succeeded": 0, "failed": 0}
        self.counts.update(orders=0, tasks_killed=0)
        self.rng = random.Random(args.seed)

    def open_faults(self, faults: list[Fault]) -> None:
        self.faults = {f.name: f for f in faults}

    def active(self, name: str, now: float | None = None) -> bool:
        fault = self.faults.get(name)
        now = time.time() if now is None else now
        return fault is not None and fault.start <= now < fault.end

    def traffic(self) -> None:
        n = 0
        while not self.stop.wait(self.rng.expovariate(1 / self.args.period)):
            n += 1
            try:
                response = self.airflow.trigger(TRAFFIC, {"n": n})
                ok = response.status_code == 200
            except httpx.HTTPError:  # a busy API server: counted, and the traffic goes on
                ok = False
            self.counts["runs_triggered" if ok else "trigger_errors"] += 1

    def orders(self) -> None:
        rng = random.Random(self.args.seed + 1)
        with self.biz.begin() as conn:
            conn.execute(text("CREATE TABLE orders (seq SERIAL PRIMARY KEY, customer TEXT, amount NUMERIC)"))
        while not self.stop.wait(rng.expovariate(1 / self.args.order_period)):
            if self.active("sensor"):
                continue
            with self.biz.begin() as conn:
                conn.execute(
                    text("INSERT INTO orders (customer, amount) VALUES (:c, :a)"),
                    {"c": f"customer {rng.randrange(1000)}", "a": rng.randrange(10, 500)},
                )
            self.counts["orders"] += 1

    def killer(self) -> None:
        """While the worker is lost, SIGKILL every running try of ``check`` (its task process)."""
        while not self.stop.wait(0.2):
            if self.active("worker"):
                self.counts["tasks_killed"] += kill_running(self.store, "check")

    def run(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=t, daemon=True) for t in (self.traffic, self.orders, self.killer)]
        for thread in threads:
            thread.start()
        return threads


def run_states(airflow: Standalone) -> dict[str, int]:
    """How many runs of the traffic workflow succeeded and failed so far (Airflow's REST API): -1 for a count
    Airflow refused; one it was too busy to answer in time is left out (the last one read stands)."""
    counts = {}
    for state, key in (("success", "succeeded"), ("failed", "failed")):
        try:
            response = airflow.api("GET", f"/dags/{TRAFFIC}/dagRuns", params={"state": state, "limit": 1})
        except httpx.TimeoutException:  # an api-server busy past the client's timeout (a loaded machine, the
            continue  # SQLite writer held by the scheduler): only this poll is lost
        counts[key] = response.json().get("total_entries", 0) if response.status_code == 200 else -1
    return counts


def task_runners() -> set[int]:
    pids = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if RUNNER.match((proc / "cmdline").read_bytes()):
                    pids.add(int(proc.name))
            except OSError:
                continue
    return pids


def kill_running(store: Any, step: str) -> int:
    """SIGKILL the task process of every try of ``step`` started (its pid recorded) and not ended."""
    e = schema.events.c
    runners = task_runners()
    if not runners:
        return 0
    with store.connect() as conn:
        started = conn.execute(
            select(e.run_id, e.try_number, cast(e.payload, Text))
            .where(e.type == "step.started", e.step == step, e.workflow == TRAFFIC)
            .order_by(e.seq.desc())
            .limit(50)
        ).all()
        ended = {  # of those 50 tries' runs only: this runs five times a second while the worker is lost
            (r, t)
            for r, t in conn.execute(
                select(e.run_id, e.try_number).where(
                    e.step == step,
                    e.type.in_(["step.succeeded", "step.failed"]),
                    e.run_id.in_({run_id for run_id, _, _ in started}),
                )
            )
        }
    killed = 0
    for run_id, try_number, payload in started:
        pid = json.loads(payload).get("pid")
        if pid in runners and (run_id, try_number) not in ended:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


# --- the scoring -------------------------------------------------------------------------------------


@dataclass
class Alert:
    incident_id: str
    kind: str
    where: str
    opened: float
    resolved: float | None = None
    actions: list[tuple[str, float]] = field(default_factory=list)
    fault: str | None = None


def read_alerts(store: Any) -> list[Alert]:
    e = schema.events.c
    alerts: dict[str, Alert] = {}
    with store.connect() as conn:
        rows = conn.execute(
            select(e.type, cast(e.payload, Text), e.ts)
            .where(e.workflow == "baton_monitor", e.type.like("incident.%"))
            .order_by(e.seq)
        ).all()
    for kind, raw, ts in rows:
        payload, at = json.loads(raw), ts.replace(tzinfo=ts.tzinfo or UTC).timestamp()
        incident = payload.get("incident_id")
        if kind == "incident.opened":
            alerts[incident] = Alert(incident, payload["kind"], payload["where"], at)
        elif incident in alerts and kind == "incident.resolved":
            alerts[incident].resolved = at
        elif incident in alerts and kind == "incident.action" and "do" in (payload.get("detail") or {}):
            alerts[incident].actions.append((payload["detail"]["do"], at))
    return list(alerts.values())


def observed(store: Any, scope: str, start: float, end: float) -> str:
    """What the events say of ``scope`` between two times: calls, failures, median latency and tokens
    per call of an agent; firings of a sensor."""
    e = schema.events.c
    since, until = (datetime.fromtimestamp(t, UTC) for t in (start, end))
    kind, _, name = scope.partition(":")
    with store.connect() as conn:
        if kind == "sensor":
            fired = conn.execute(
                select(func.count()).where(
                    e.type == "trigger.fired", e.workflow == f"{name}__sensor", e.ts >= since, e.ts < until
                )
            ).scalar()
            return f"{fired} firings ({60 * fired / (end - start):.1f} a minute)"
        rows = conn.execute(
            select(e.type, cast(e.payload, Text)).where(
                e.agent == name,
                e.type.in_(
                    ["step.succeeded", "step.failed", "subtask.succeeded", "subtask.failed", "model.called"]
                ),
                e.ts >= since,
                e.ts < until,
            )
        ).all()
    done = [(kind, json.loads(raw)) for kind, raw in rows if not kind.startswith("model.")]
    failed = [p for kind, p in done if kind.endswith(".failed")]
    took = sorted(
        p.get("duration_s", p.get("latency_s", 0)) for kind, p in done if kind.endswith(".succeeded")
    )
    tokens = [json.loads(raw).get("input_tokens", 0) for kind, raw in rows if kind == "model.called"]
    classes = ", ".join(sorted({p.get("error_class", "?") for p in failed}))
    return (
        f"{len(done)} calls, {len(failed)} failed{f' ({classes})' if classes else ''}, "
        f"median {took[len(took) // 2] if took else float('nan'):.2f} s, "
        f"{sum(tokens) / len(tokens) if tokens else 0:.0f} input tokens a call"
    )


def attribute(alerts: list[Alert], faults: list[Fault]) -> None:
    for alert in alerts:
        for fault in faults:
            if alert.where == fault.scope and fault.start <= alert.opened <= fault.end + ATTRIBUTION:
                alert.fault = fault.name


def score(fault: Fault, alerts: list[Alert]) -> tuple[float | None, float | None, str]:
    """(detection delay, recovery time, how it recovered) of one fault; None when missed or unrecovered."""
    mine = sorted((a for a in alerts if a.fault == fault.name), key=lambda a: a.opened)
    if not mine:
        return None, None, "missed"
    detected = mine[0].opened - fault.start
    if fault.mitigated_by:
        done = [at for a in mine for do, at in a.actions if do == fault.mitigated_by]
        if done:
            return detected, min(done) - fault.start, f"{fault.mitigated_by} by the runbook"
    ends = [a.resolved for a in mine if a.resolved is not None and a.resolved >= fault.end]
    if ends and all(a.resolved is not None for a in mine):
        return detected, max(ends) - fault.start, "resolved after the fault ended"
    return detected, None, "not resolved by the end of the campaign"


def report(
    store: Any, faults: list[Fault], alerts: list[Alert], began: float, counts: dict[str, int]
) -> None:
    attribute(alerts, faults)
    print(f"traffic: {counts}")
    first = min(f.start for f in faults)
    print("what the events say of each fault's scope, in the warm-up and during the fault:")
    for fault in faults:
        print(f"  {fault.scope:<28} warm-up: {observed(store, fault.scope, began, first)}")
        print(f"  {'':<28} fault:   {observed(store, fault.scope, fault.start, fault.end)}")
    delays, recoveries = [], []
    for fault in faults:
        detected, recovered, how = score(fault, alerts)
        n = sum(a.fault == fault.name for a in alerts)
        at = f"t+{fault.start - began:4.0f} s, {(fault.end - fault.start) / 60:.1f} min"
        if detected is None:
            print(f"  {fault.name:<7} {fault.what:<48} {at}: MISSED")
            continue
        delays.append(detected)
        shown = f"recovered in {recovered:5.0f} s ({how})" if recovered is not None else how
        print(
            f"  {fault.name:<7} {fault.what:<48} {at}: detected in {detected:4.0f} s, {shown}; {n} alert(s)"
        )
        if recovered is not None:
            recoveries.append(recovered)
    false = [a for a in alerts if a.fault is None]
    for alert in false:
        print(f"  false positive: {alert.kind} at {alert.where}, t+{alert.opened - began:.0f} s")
    missed = sum(score(f, alerts)[0] is None for f in faults)
    print(f"detected {len(faults) - missed} of {len(faults)} faults; {len(alerts)} alerts")
    mttd = sum(delays) / len(delays) if delays else float("nan")
    mttr = sum(recoveries) / len(recoveries) if recoveries else float("nan")
    share = 100 * len(false) / len(alerts) if alerts else 0.0
    print(
        f"MTTD {mttd:.0f} s, MTTR {mttr:.0f} s, false positives {len(false)} of {len(alerts)} alerts ({share:.1f} %)"
    )


# --- main ----------------------------------------------------------------------------------------------


def schedule(args: argparse.Namespace, t0: float = 0.0) -> list[Fault]:
    """The faults of ``--only``, each in its window: seconds after ``t0``, when the traffic starts."""
    names = args.only or list(FAULTS)  # checked by its argparse type
    return [
        replace(
            FAULTS[name],
            start=t0 + 60 * (args.warmup + i * args.stagger),
            end=t0 + 60 * (args.warmup + i * args.stagger + args.fault),
        )
        for i, name in enumerate(names)
    ]


def campaign(airflow: Standalone, dbs: Databases, args: argparse.Namespace) -> int:
    others = other_airflows(airflow)
    began = time.monotonic()
    airflow.start(timeout=600)
    print(f"airflow standalone healthy after {time.monotonic() - began:.0f} s (PostgreSQL metadata DB)")
    if not sync_pools(airflow):  # each agent's pool: a task in a missing one never runs
        return 1
    for dag_id in (TRAFFIC, f"{ORDERS}__sensor", ORDERS, "baton_monitor"):
        airflow.wait_for_dag(dag_id)
        airflow.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
    run = Campaign(airflow, dbs, args)  # traffic first, no fault yet
    run.run()
    if not first_success(airflow, run.counts):
        run.stop.set()
        return 1
    # The schedule starts now, once the service runs (on a loaded machine the first runs took minutes: a warm-up
    # counted from the unpause had measured nothing): Airflow's processes read the model faults' windows as
    # seconds after the time in the clock file (none is open before it exists), the benchmark's own are timed here.
    t0 = time.time()
    args.clock.write_text(repr(t0))
    args.faults = schedule(args, t0)
    run.open_faults(args.faults)
    first = min(f.start for f in args.faults)
    print(f"{(first - t0) / 60:.1f} minutes of warm-up before the first fault")
    end = max(f.end for f in args.faults) + 60 * args.tail
    while time.time() < end:
        time.sleep(min(60.0, max(0.0, end - time.time())))
        run.counts.update(run_states(airflow))
        print(f"  t+{time.time() - t0:5.0f} s: {run.counts}", flush=True)
    run.stop.set()
    others += other_airflows(airflow)
    print_environment(effective_settings(airflow), others)
    report(run.store, args.faults, read_alerts(run.store), t0, run.counts)
    return 0


def first_success(
    airflow: Standalone, counts: dict[str, int], timeout: float = READY_S, every: float = 2.0
) -> bool:
    """Wait until a run of the traffic workflow succeeded (the service runs: there is something to measure),
    polling its runs' states into ``counts`` every ``every`` seconds; False, said on stderr, after ``timeout``."""
    started = time.monotonic()
    print("traffic starts", flush=True)
    while time.monotonic() - started < timeout:
        time.sleep(every)
        counts.update(run_states(airflow))
        if counts.get("succeeded", 0) > 0:
            print(
                f"the first run of {TRAFFIC} succeeded after {time.monotonic() - started:.0f} s", flush=True
            )
            return True
    print(
        f"error: no run of {TRAFFIC} succeeded within {timeout:.0f} s of the traffic's start: nothing to "
        f"measure (so far: {counts})",
        file=sys.stderr,
    )
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    minutes = bounded_float(0.5, 30, " minutes")
    parser.add_argument(
        "--only",
        type=subset(tuple(FAULTS)),
        help=f"a comma-separated subset of the faults: {','.join(FAULTS)}",
    )
    parser.add_argument("--warmup", type=minutes, default=5.0, help="minutes of steady traffic first")
    parser.add_argument("--fault", type=minutes, default=3.0, help="minutes each fault lasts")
    parser.add_argument(
        "--stagger",
        type=bounded_float(0, 10, " minutes"),
        default=0.5,
        help="minutes between two faults' starts",
    )
    parser.add_argument("--tail", type=minutes, default=4.0, help="minutes of steady traffic after the last")
    parser.add_argument(
        "--period", type=bounded_float(2, 300, " s"), default=15.0, help="mean seconds between two runs"
    )
    parser.add_argument(
        "--order-period",
        type=bounded_float(1, 300, " s"),
        default=5.0,
        help="mean seconds between two orders",
    )
    parser.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=7)
    server_argument(parser)
    parser.add_argument("--keep", type=Path, help="use this (new or empty) directory instead of a temp dir")
    args = parser.parse_args(argv)
    args.faults = schedule(args)  # seconds after the traffic's start, which is known once Airflow is ready
    total = max(f.end for f in args.faults) + 60 * args.tail
    print(
        f"incident campaign: {len(args.faults)} fault(s), about {total / 60:.0f} minutes once Airflow is up"
    )
    with ExitStack() as stack:
        base = workdir(stack, args.keep, "baton-incidents-")
        write_dags(base / "dags")
        dbs = Databases(parser, stack, args.server, "baton_incidents", ("meta", "store", "biz"))
        args.clock = base / "clock"
        airflow = Standalone(
            base / "home", base / "dags", settings_for(dbs, args.faults, args.seed, args.clock)
        )
        return run_bench(airflow, lambda: campaign(airflow, dbs, args))


if __name__ == "__main__":
    sys.exit(main())
