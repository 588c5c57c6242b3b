"""Benchmark: faults of the platform itself (issue 56) — the fault campaign of bench/faults.py on the
production topology, while PostgreSQL restarts, the scheduler and a worker are killed and Redis restarts.

The topology is devtools.topology's (docker-compose.yaml's without Docker: api-server, scheduler, dag
processor, triggerer and two Celery workers of concurrency 2, each supervised as compose's ``restart:
always`` does), on a PostgreSQL cluster and a Redis server of the benchmark's own (devtools.servers, on free
ports, removed at the end), so that restarting them touches nothing else on the machine. Airflow's metadata
and Baton's store are two databases of that cluster. The workflow, its agents and the agent faults are
bench/faults.py's (``fault_campaign``: extract -> post -> confirm and the compensation; 10 % model errors,
2 % timeouts, 5 % invalid outputs, 10 % of posts failing after the post), and Baton's monitor
(``baton_monitor``, every minute, ``dags/monitoring.yaml``'s settings) runs beside it.

Once the monitor has looked at the platform once (a run of it triggered at the start: a fault before its
first look could not be told from what it first finds), ``--runs`` runs (default 1,000) are triggered
through REST. As they finish, the platform
faults come one at a time, each when its share of the runs has finished and at least ``--gap`` seconds
(default 60) after the one before (a tick of the monitor between them; in a small campaign, whose runs end
together, the last faults may come after its runs have ended: each fault records how many runs were in
flight):

- 10 %: PostgreSQL restarted fast (``pg_ctl restart -m fast``: every connection cut);
- 25 %: the scheduler's process group SIGKILLed (the supervisor starts it again);
- 40 %: the process group of a Celery worker with a Baton step running on it SIGKILLed (the step's try
  is lost and retried; the supervisor starts the worker again); worker-1, idle, when no step started
  within a minute (recorded as not busy);
- 55 %: Redis restarted (empty: the queued Celery messages are gone; Airflow requeues the task instances
  after ``task_queued_timeout``, set to 180 s here);
- 70 %: PostgreSQL stopped, left down ``--down`` seconds (default 30), started.

Then the benchmark waits for every run to end and reads Airflow (REST), Baton's events and the partner's
records as bench/faults.py does, asks ``baton verify --dry-run`` whether the store agrees with Airflow's
record, audits the budgets' ledger (bench/ledger_audit.py: a per-run and a per-day budget on the
workflow, sized not to bind, in which every model call reserves and settles; no window over its limit, no
reservation still held once the runs ended, the ledger agreeing with its events), and reads the monitor's
incidents: a platform fault is detected when an incident of kind ``platform`` on its component opened
within 5 minutes after it, or, open already (the component failed shortly before), counted it within that
time, and has resolved since.

Run from the repository root (PostgreSQL's and Redis's programs installed, as for the tests):

    .venv/bin/python bench/faults_platform.py [--runs 1000] [--seed 7] [--down 30] [--gap 60] [--keep DIR]

This is a benchmark, not a test: it prints the figures and exits 0 whatever they are (1 when the
campaign cannot run, or a process of the topology outlives it). Its last line::

    completion rate: N.NN % (target 99.95 %); lost events N; duplicated effects N; uncompensated failures N;
    platform faults detected N of N
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import faults as campaign_of
import httpx
import ledger_audit
from cli_types import bounded_float, bounded_int
from demo.http_service import PartnerService
from harness import Databases, run_bench, sync_pools, workdir
from sqlalchemy import Text, cast, select

from baton.events import schema
from baton.events.store import engine_for
from baton.ops.monitor import platform as platform_probe
from baton.ops.monitor.state import load_state
from devtools.faults import Faults
from devtools.servers import PrivatePostgres, PrivateRedis
from devtools.supervise import signal_group
from devtools.topology import CeleryTopology

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "faults_platform.json"
TARGET = 0.9995
DETECT_WITHIN = timedelta(minutes=5)  # the seeds' detection goal
MONITOR = "baton_monitor"
SCHEDULE = (  # (share of the runs finished, the fault, the component its incident names)
    (0.10, "postgres_restart", "postgres"),
    (0.25, "scheduler_kill", "scheduler"),
    (0.40, "worker_kill", "worker"),
    (0.55, "redis_restart", "broker"),
    (0.70, "postgres_down", "postgres"),
)


def monitor_baseline(store_url: str, deadline: float) -> bool:
    """Whether the monitor has seen the platform once, by ``deadline``: its state saved with the PostgreSQL
    server's start time and the broker's run id. A fault before that first tick is what the monitor finds,
    not a change it can see (as for a monitor deployed after the fact), so no fault comes before it."""
    engine = engine_for(store_url)
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                saved = load_state(conn, platform_probe.STATE)
            if isinstance(saved, dict) and saved.get("postgres_started") and saved.get("broker_run_id"):
                return True
            time.sleep(1)
    finally:
        engine.dispose()
    return False


def busy_worker(store_url: str, names: list[str], deadline: float) -> str | None:
    """A worker (of ``names``) on which a Baton step's try has started and not ended, once there is one."""
    engine = engine_for(store_url)
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                for *_, payload in campaign_of.running_tries(conn, lambda p: p.get("worker") in names, 50):
                    return payload["worker"]
            time.sleep(0.2)
    finally:
        engine.dispose()
    return None


class Injector:
    """The platform faults of :data:`SCHEDULE`, each carried out once its share of the runs has finished."""

    def __init__(
        self,
        topology: CeleryTopology,
        servers: tuple[PrivatePostgres, PrivateRedis],
        args: argparse.Namespace,
    ):
        self.topology, (self.postgres, self.redis) = topology, servers
        self.runs, self.down_s, self.gap_s = args.runs, args.down, args.gap
        self.done: list[dict[str, Any]] = []
        self.last = -self.gap_s

    def _kill(self, name: str) -> None:
        with self.topology.supervisor.lock:
            process = self.topology.processes[name]
        signal_group(process.pid, signal.SIGKILL)  # not topology.kill(): the supervisor must see it die

    def _postgres_down(self) -> None:
        self.postgres.stop("fast")
        time.sleep(self.down_s)  # the outage itself, not a wait for something
        self.postgres.start()

    def carry_out(self, name: str) -> dict[str, Any]:
        actions: dict[str, Callable[[], Any]] = {
            "postgres_restart": self.postgres.restart,
            "scheduler_kill": lambda: self._kill("scheduler"),
            "redis_restart": self.redis.restart,
            "postgres_down": self._postgres_down,
        }
        record: dict[str, Any] = {"fault": name, "at": datetime.now(UTC)}
        if name == "worker_kill":  # one with a step running on it, if one has within a minute
            workers = [self.topology.worker_name(i) for i in range(1, self.topology.workers + 1)]
            busy = busy_worker(self.topology.store_url, workers, time.monotonic() + 60)
            record |= {"at": datetime.now(UTC), "worker": busy or workers[0], "busy": busy is not None}
            self._kill(record["worker"])
        else:
            actions[name]()
        record["back_at"] = datetime.now(UTC)
        return record

    def due(self, finished: int, in_flight: int) -> None:
        """The next fault, once its share of the runs has finished and ``--gap`` has passed since the one
        before (so that each is a fault of its own to the monitor, whose tick is a minute)."""
        if len(self.done) == len(SCHEDULE) or time.monotonic() - self.last < self.gap_s:
            return
        share, name, component = SCHEDULE[len(self.done)]
        if finished < share * self.runs:
            return
        record = {
            **self.carry_out(name),
            "component": component,
            "finished_runs": finished,
            "in_flight": in_flight,
        }
        self.last = time.monotonic()
        print(f"  fault {name} at {finished} runs finished: {json.dumps(record, default=str)}", flush=True)
        self.done.append(record)


def states(client: httpx.Client, before: Any) -> Any | None:
    """The runs' states, or None while the api-server cannot answer (its database is away)."""
    try:
        return campaign_of.run_states(client) - before
    except (httpx.HTTPError, KeyError, ValueError):
        return None


def wait_all(client: httpx.Client, injector: Injector, runs: int, before: Any, deadline: float) -> bool:
    """Poll until every run has ended (True) or the deadline (False), carrying out the faults as they fall
    due."""
    started = last = time.monotonic()
    while time.monotonic() < deadline:
        counts = states(client, before)
        if counts is None:
            time.sleep(campaign_of.POLL)
            continue
        finished = counts["success"] + counts["failed"]
        injector.due(finished, counts["running"] + counts["queued"])
        now = time.monotonic()
        if now - last >= 30 or finished >= runs:
            last = now
            print(f"  {now - started:7.0f} s: {finished}/{runs} finished ({counts['failed']} failed), "
                  f"{counts['running']} running, {counts['queued']} queued", flush=True)  # fmt: skip
        if finished >= runs and len(injector.done) == len(SCHEDULE):
            return True
        time.sleep(campaign_of.POLL)
    return False


def incidents(store_url: str) -> list[dict[str, Any]]:
    """The monitor's platform incidents' transitions (opened, updated, resolved), in order."""
    engine = engine_for(store_url)
    e = schema.events.c
    kinds = ["incident.opened", "incident.updated", "incident.resolved"]
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(e.type, e.ts, cast(e.payload, Text)).where(e.type.in_(kinds)).order_by(e.seq)
            ).all()
    finally:
        engine.dispose()
    seen = []
    for kind, ts, payload in rows:
        body = json.loads(payload)
        if body.get("kind") == "platform":
            seen.append(
                {"type": kind, "at": ts, "where": body.get("where"), "incident": body.get("incident_id")}
            )
    return seen


def detected(faults: list[dict[str, Any]], seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each fault with the first platform incident on its component that opened, or counted one more
    anomaly (it was open already: the same component failed shortly before), within DETECT_WITHIN of it;
    detected when that incident has resolved since."""
    out = []
    for fault in faults:
        hit = next(
            (
                t for t in seen
                if t["type"] != "incident.resolved" and t["where"] == fault["component"] and "back_at" in fault
                and fault["at"] - timedelta(seconds=5) <= t["at"] <= fault["back_at"] + DETECT_WITHIN
            ),
            None,
        )  # fmt: skip
        resolved = hit and next(
            (t["at"] for t in seen if t["type"] == "incident.resolved" and t["incident"] == hit["incident"]
             and t["at"] >= hit["at"]),
            None,
        )  # fmt: skip
        out.append(
            {
                **fault,
                "seen_at": hit["at"] if hit else None,
                "as": hit["type"] if hit else None,
                "resolved_at": resolved or None,
                "detected": bool(resolved),
            }
        )
    return out


def verify_findings(topology: CeleryTopology) -> dict[str, Any]:
    done = topology.command("baton", "verify", "--dry-run", "--since", "1d", "--format", "json", timeout=600)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    findings = [line for line in lines if "summary" not in line]
    kinds: dict[str, int] = {}
    for finding in findings:
        kinds[finding.get("kind", "?")] = kinds.get(finding.get("kind", "?"), 0) + 1
    return {"exit": done.returncode, "findings": len(findings), "by_kind": kinds, "first": findings[:10]}


def wait_detected(store_url: str, faults: list[dict[str, Any]], deadline: float) -> list[dict[str, Any]]:
    """The platform incidents' transitions once every fault carried out is seen and resolved (after the
    monitor's quiet time), or as they are at the deadline."""
    while True:
        seen = incidents(store_url)
        if all(f["detected"] for f in detected(faults, seen)) or time.monotonic() > deadline:
            return seen
        time.sleep(5)


def campaign(
    topology: CeleryTopology,
    servers: tuple[PrivatePostgres, PrivateRedis],
    partner: PartnerService,
    args: argparse.Namespace,
    out: dict[str, Any],
) -> int:
    began = time.monotonic()
    topology.start(timeout=600)
    print(
        f"topology healthy after {time.monotonic() - began:.0f} s (2 Celery workers, private PostgreSQL and Redis)"
    )
    if not sync_pools(topology):
        return 1
    store_url = topology.store_url
    injector = Injector(topology, servers, args)
    headers = {"Authorization": f"Bearer {topology.token()}"}
    with httpx.Client(base_url=f"{topology.url}/api/v2", headers=headers, timeout=60) as client:
        for dag_id in (campaign_of.DAG_ID, MONITOR):
            if topology.wait_for_dag(dag_id)["is_paused"]:
                client.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        # a tick now rather than at the next minute: the monitor's first look at the platform
        client.post(f"/dags/{MONITOR}/dagRuns", json={"logical_date": None}).raise_for_status()
        if not monitor_baseline(store_url, time.monotonic() + 300):
            print(
                "the monitor did not look at the platform within 300 s: no fault could be seen",
                file=sys.stderr,
            )
            return 1
        print(f"the monitor's first look at the platform after {time.monotonic() - began:.0f} s", flush=True)
        before = campaign_of.run_states(client)
        started = time.monotonic()
        run_ids = campaign_of.trigger_all(client, partner.url(""), args.runs)
        out["trigger_s"] = round(time.monotonic() - started, 1)
        print(f"{len(run_ids)} runs triggered through REST in {out['trigger_s']} s", flush=True)
        finished = wait_all(client, injector, args.runs, before, started + args.timeout)
        out["wall_s"], out["timed_out"] = round(time.monotonic() - started, 1), not finished
        out["platform_faults"] = injector.done
        out["restarts"] = [
            {"component": r.name, "cause": r.cause, "delay_s": r.delay} for r in topology.supervisor.history
        ]
        ours = set(run_ids)
        runs = {
            r["dag_run_id"]: r
            for r in campaign_of.paged(client, f"/dags/{campaign_of.DAG_ID}/dagRuns", "dag_runs")
        }
        runs = {run_id: run for run_id, run in runs.items() if run_id in ours}
        tis = campaign_of.paged(
            client, f"/dags/{campaign_of.DAG_ID}/dagRuns/~/taskInstances", "task_instances"
        )
        tis = [ti for ti in tis if ti["dag_run_id"] in ours]
        out["killed"] = {}
        campaign_of.analyse(out, runs, tis, store_url, partner, args)
        out["budgets"] = ledger_audit.audit(store_url, campaign_of.DAG_ID, args.budgets)
    out["verify"] = verify_findings(topology)
    seen = wait_detected(store_url, injector.done, time.monotonic() + args.resolve_wait)
    out["detection"] = detected(injector.done, seen)
    out["platform_incidents"] = seen
    return 0


def report(out: dict[str, Any]) -> None:
    r, ev, se, c = out["runs"], out["events"], out["side_effects"], out["compensation"]
    print()
    print(f"faults of the agents: {out['faults']}")
    print(f"runs: {r['triggered']} triggered, {r['succeeded']} succeeded, {r['failed']} failed, "
          f"other {r['other']}; wall {out['wall_s']:.0f} s{' (timed out)' if out['timed_out'] else ''}")  # fmt: skip
    print(f"component restarts by the supervisor: {json.dumps(out['restarts'])}")
    print(f"baton verify --dry-run: exit {out['verify']['exit']}, {out['verify']['findings']} finding(s) "
          f"{out['verify']['by_kind']}")  # fmt: skip
    for fault in out["detection"]:
        seen = (
            f"{fault['as']} after {(fault['seen_at'] - fault['at']).total_seconds():.0f} s"
            if fault["as"]
            else "no incident"
        )
        resolved = (
            f"resolved {(fault['resolved_at'] - fault['at']).total_seconds():.0f} s after"
            if fault["resolved_at"]
            else "not resolved"
        )
        print(f"  {fault['fault']:<18} at {fault['at']:%H:%M:%S}: {seen}, {resolved}")
    print(ledger_audit.line(out["budgets"]))
    if ev["lost_detail"]:
        print(f"lost events (first runs): {json.dumps(ev['lost_detail'])[:2000]}")
    uncompensated = c["failed_runs"] - c["fully_compensated"]
    found = sum(f["detected"] for f in out["detection"])
    print(  # the headline, last
        f"completion rate: {100 * r['completion_rate']:.2f} % (target {100 * TARGET:.2f} %); lost events {ev['lost']}; "
        f"duplicated effects {se['duplicates']}; uncompensated failures {uncompensated}; "
        f"platform faults detected {found} of {len(SCHEDULE)}"
    )


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=bounded_int(10, 10_000), default=1000, help="runs to trigger (default 1000)"
    )
    parser.add_argument("--seed", type=int, default=7, help="the agent faults' seed (default 7)")
    parser.add_argument(
        "--timeout", type=bounded_float(60, 604_800, " s"), help="give up waiting after this many seconds"
    )
    parser.add_argument(
        "--down",
        type=bounded_float(1, 600, " s"),
        default=30.0,
        help="seconds PostgreSQL stays down (default 30)",
    )
    parser.add_argument(
        "--gap",
        type=bounded_float(10, 3600, " s"),
        default=60.0,
        help="seconds at least between faults (default 60)",
    )
    parser.add_argument("--keep", type=Path, help="use this (new or empty) directory instead of a temp dir")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args()
    args.timeout = args.timeout or 900 + 20 * args.runs
    args.resolve_wait = 600.0  # the monitor's quiet time (3 minutes) and a few ticks
    return args


def main() -> int:
    args = arguments()
    faults = campaign_of.chosen_faults(
        argparse.Namespace(**{**dict.fromkeys(campaign_of.RATES), "seed": args.seed})
    )
    args.faults = Faults(**faults)
    out: dict[str, Any] = {"faults": faults}
    with ExitStack() as stack:
        partner = stack.enter_context(PartnerService())
        postgres = stack.enter_context(PrivatePostgres())
        redis = stack.enter_context(PrivateRedis())
        base = workdir(stack, args.keep, "baton-platform-")
        dags = base / "dags"
        settings = campaign_of.write_dags(dags, faults)
        args.budgets = ledger_audit.declare(dags, campaign_of.DAG_ID, args.runs)
        shutil.copyfile(ROOT / "dags" / "baton_monitor.py", dags / "baton_monitor.py")
        shutil.copyfile(ROOT / "dags" / "monitoring.yaml", dags / "monitoring.yaml")
        parser = argparse.ArgumentParser()
        dbs = Databases(parser, stack, postgres.url, "baton_platform", ("meta", "store"))
        settings["AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT"] = "180"
        topology = CeleryTopology(
            base / "home", dbs.url("meta"), dbs.url("store"), redis.url, workers=2, concurrency=2,
            dags_folder=dags, settings=settings,
        )  # fmt: skip
        status = run_bench(topology, lambda: campaign(topology, (postgres, redis), partner, args, out))
        if "detection" in out:
            args.results.parent.mkdir(parents=True, exist_ok=True)
            args.results.write_text(json.dumps(out, indent=2, default=str) + "\n", encoding="utf-8")
            print(f"results written to {args.results}")
            report(out)  # its headline last
        return status


if __name__ == "__main__":
    sys.exit(main())
