"""Benchmark: a fault campaign (issue 5) — 1,000 runs of a 3-step workflow on a running Airflow with
injected faults and one task process killed with SIGKILL mid-campaign.

The workflow, ``fault_campaign`` (bench/workflows/workflows/fault_campaign.yaml, its agents
bench/workflows/agents.yaml): ``extract`` (an LLM agent on the offline model) -> ``post`` (the
``http_post`` skill: the order to the demo partner API, an idempotent effect with an
``Idempotency-Key``; ``compensate``: a post to ``/orders/cancel``) -> ``confirm`` (an LLM agent), then
Baton's ``_compensate`` task. Every step has 3 retries (1 s, exponential, at most 8 s) and
``agent_timeout`` 4 s. A temp dags folder holds a copy of dags/baton_workflows.py, a roster of the two
agents (bench/harness.py's, whose ``http_post`` may reach 127.0.0.1; none of the demo's agents), and the
workflow.

How faults are injected: the environment variable ``BATON_FAULTS`` of the Airflow the benchmark starts
(a test-only setting: nothing in a template or a connection can switch it on; see
include/baton/agents/faults.py). With it, each request to the offline model draws, from a hash of the
seed, the run, step, map index, try and the request's position in its conversation (a re-ask is a new
request): ``error`` (10 %: an ``InjectedModelError``, a pydantic-ai ``ModelHTTPError`` 503, fails the
try), ``timeout`` (2 %: the model hangs ``hang_s`` 20 s, and the step's ``agent_timeout`` of 4 s fails
the try with ``AgentTimeout``), ``invalid`` (5 %: an answer missing a required field and carrying one
the schema does not have, so pydantic-ai asks again, up to the step's ``output_retries`` of 2); and
``fail_after: {post: 0.10}`` fails 10 % of the post step's tries right after the post (its effect done,
so the retry must reuse it, not post again). The draws being repeatable, the benchmark recomputes them
from the event store afterwards and compares them with what happened.

The campaign: PostgreSQL for Airflow's metadata DB and for Baton's store (two throwaway databases on
``--server``, dropped at the end), ``airflow standalone`` with LocalExecutor, parallelism 4 and
scripts/env.sh's scheduler tuning (scheduler_idle_sleep_time 0.1, min_heartbeat_interval 1, the
forkserver with the agent runtime preloaded), ``max_active_runs`` 12, the demo partner API
(demo.http_service.PartnerService) in this process on 127.0.0.1. ``--runs`` runs (default 1,000) are
triggered through REST (``POST /api/v2/dags/fault_campaign/dagRuns``, one by one, all at the start;
they queue). When half have finished, one task runner of a Baton step in the middle of its work
(``step.started`` recorded, no end; found by its command line ``airflow worker -- <task instance
id>``) is killed with SIGKILL. Then the benchmark waits for every run to end and reads Airflow (REST),
Baton's events (the store) and the partner's records.

Report (a table, and bench/results/faults.json): runs, succeeded, failed, completion rate (goal >=
99.9 %); failed runs fully compensated (every completed step with ``compensate`` has
``compensation.succeeded``, ``saga.completed`` says so, and the partner got the cancel post; goal: all);
events lost (per run: ``run.started``, the run's end matching Airflow's state, an end for every
started try, every task instance's final state in the events; goal 0); duplicated side effects
(the partner's 2xx posts by ``Idempotency-Key`` and by run; goal 0); injected faults by kind, as drawn
and as observed; wall time; the killed task's fate.

Run from the repository root:

    .venv/bin/python bench/faults.py [--runs 1000] [--seed 7] [--keep DIR]

``--write-dags DIR`` writes the workflow and its agents into a dags folder and prints the settings its
Airflow needs (the LLM connection, and ``BATON_FAULTS`` with the rates given, scoped by its ``workflows``
to this campaign, so that the Airflow's other work sees no fault); ``--attach AIRFLOW_HOME`` then runs the
campaign on that running Airflow, with the faults it has (the test suite's tiny run does so on its shared
Airflow: tests/bench/test_smoke_airflow.py). Only the campaign's own runs, events and posts are counted,
and no results file is written unless ``--results`` names one (the figures are that Airflow's).

This is a benchmark, not a test: it prints the figures and exits 0 whatever they are (1 when the
campaign cannot run, or an Airflow process outlives it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from cli_types import bounded_float, bounded_int
from demo.http_service import PartnerService
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
    run_bench,
    server_argument,
    sync_pools,
    workdir,
    write_dags_only,
    write_new,
)
from sqlalchemy import Text, cast, select

from baton.events import schema
from baton.events.store import engine_for
from devtools.faults import ENV, Faults, environment, request_parts
from devtools.standalone import Standalone

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
DAG_ID = "fault_campaign"
STEPS = ("extract", "post", "confirm")
LLM_STEPS = ("extract", "confirm")
FACTS = ("run.started", "run.succeeded", "run.failed", "step.started", "step.succeeded", "step.failed")
SAGA = "_compensate"
CONN = "baton_faults_llm"
GOAL_COMPLETION = 0.999
RESULTS = HERE / "results" / "faults.json"
PAGE = 100  # the REST API's maximum page size
POLL = 3.0  # seconds between two looks at the runs' states
OUTPUT_RETRIES = 2  # the steps' output_retries (the template's default)
RUNNER = re.compile(rb"^airflow worker -- ([0-9a-f-]{36})$")  # a task runner's title: its TI's id


def template() -> dict[str, Any]:
    return yaml.safe_load((HERE / "workflows" / "workflows" / f"{DAG_ID}.yaml").read_text())


def write_dags(dags: Path, faults: dict[str, Any]) -> dict[str, str]:
    """The campaign's workflow in ``dags`` and its two agents added to the roster there (Baton's loader and
    a roster of the benchmark's own, which lets ``http_post`` reach 127.0.0.1, where they are missing); the settings its
    Airflow needs: the agents' LLM connection and ``faults``, scoped to this workflow."""
    workflow = dags / "workflows" / f"{DAG_ID}.yaml"
    none_exists(workflow)
    roster = (HERE / "workflows" / "agents.yaml").read_text(encoding="utf-8")
    baton_dags(dags, roster.split("\nagents:\n", 1)[1], ("order_extractor", "order_confirmer"))
    write_new(workflow, (HERE / "workflows" / "workflows" / f"{DAG_ID}.yaml").read_text(encoding="utf-8"))
    connection = {"conn_type": "pydanticai", "extra": {"model": "baton:offline"}}
    return {
        f"AIRFLOW_CONN_{CONN.upper()}": json.dumps(connection),
        **environment(**faults, workflows=[DAG_ID]),
    }


# --- the campaign ------------------------------------------------------------------------------------


def trigger_all(client: httpx.Client, service: str, runs: int) -> list[str]:
    run_ids = []
    for i in range(runs):
        response = client.post(
            f"/dags/{DAG_ID}/dagRuns",
            json={"logical_date": None, "conf": {"service": service, "order": i}},
        )
        if response.status_code != 200:
            raise BenchError(f"triggering run {i} gave {response.status_code}: {response.text[:500]}")
        run_ids.append(response.json()["dag_run_id"])
    return run_ids


def paged(client: httpx.Client, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        response = client.get(path, params={**params, "limit": PAGE, "offset": len(items)})
        response.raise_for_status()
        page = response.json()
        items += page[key]
        if not page[key] or len(items) >= page["total_entries"]:
            return items


def run_states(client: httpx.Client) -> Counter:
    """How many runs are in each state (one small request per state: cheap for the API server)."""
    counts: Counter = Counter()
    for state in ("queued", "running", "success", "failed"):
        response = client.get(f"/dags/{DAG_ID}/dagRuns", params={"state": state, "limit": 1})
        response.raise_for_status()
        counts[state] = response.json()["total_entries"]
    return counts


ENDS = ("step.succeeded", "step.failed", "step.skipped")


def running_tries(
    conn: Any, wanted: Callable[[dict], bool], limit: int
) -> Iterator[tuple[str, str, int, dict]]:
    """Of the newest ``limit`` tries of the campaign's steps that started, those whose ``step.started`` payload
    ``wanted`` accepts and that have no end yet (run id, step, try, payload), newest first. ``wanted`` is asked
    first: a try it refuses costs no second query."""
    e = schema.events.c
    started = conn.execute(
        select(e.run_id, e.step, e.try_number, cast(e.payload, Text))
        .where(e.type == "step.started", e.step.in_(STEPS), e.workflow == DAG_ID)
        .order_by(e.seq.desc())
        .limit(limit)
    ).all()
    for run_id, step, try_number, text in started:
        payload = json.loads(text)
        if not wanted(payload):
            continue
        ended = conn.execute(
            select(e.seq).where(
                e.run_id == run_id, e.step == step, e.try_number == try_number, e.type.in_(ENDS)
            )
        ).first()
        if ended is None:
            yield run_id, step, try_number, payload


def kill_one_task(store_url: str, deadline: float) -> dict[str, Any] | None:
    """SIGKILL one task runner of a Baton step in the middle of its work: its ``step.started`` is
    recorded (with its pid) and the try has no end yet. Found by its title ``airflow worker -- <ti id>``."""
    engine = engine_for(store_url)
    while time.monotonic() < deadline:
        runners = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().rstrip(b"\0")
            except OSError:
                continue
            match = RUNNER.match(argv)
            if match:
                runners[int(proc.name)] = match.group(1).decode()
        if runners:
            with engine.connect() as conn:
                for run_id, step, try_number, payload in running_tries(
                    conn, lambda p, live=runners: p.get("pid") in live, 200
                ):
                    pid = payload["pid"]
                    os.kill(pid, signal.SIGKILL)
                    return {
                        "pid": pid,
                        "ti_id": runners[pid],
                        "run_id": run_id,
                        "step": step,
                        "try_number": try_number,
                        "at": datetime.now(UTC).isoformat(),
                    }
        time.sleep(0.02)
    return None


def campaign(
    airflow: Standalone, store_url: str, partner: PartnerService, args: argparse.Namespace, out: dict
) -> int:
    # the campaign's template only: an attached Airflow's folder may hold others, broken on purpose
    checked = airflow.command("baton", "validate", str(airflow.dags_folder / "workflows" / f"{DAG_ID}.yaml"))
    if checked.returncode != 0:
        print(f"baton validate failed:\n{checked.stdout[-2000:]}{checked.stderr[-2000:]}", file=sys.stderr)
        return 1
    others = other_airflows(airflow)
    began = time.monotonic()
    airflow.start(timeout=600)
    if not airflow.attached:
        print(f"airflow standalone healthy after {time.monotonic() - began:.0f} s (PostgreSQL metadata DB)")
    if not sync_pools(airflow):
        return 1
    headers = {"Authorization": f"Bearer {airflow.token()}"}
    with httpx.Client(base_url=f"{airflow.url}/api/v2", headers=headers, timeout=60) as client:
        if airflow.wait_for_dag(DAG_ID)["is_paused"]:
            client.patch(f"/dags/{DAG_ID}", json={"is_paused": False}).raise_for_status()
        out["settings"] = effective_settings(airflow)
        before = run_states(client)  # an attached Airflow may have run the campaign before: not counted

        started = time.monotonic()
        out["started_at"] = datetime.now(UTC).isoformat()
        run_ids = trigger_all(client, partner.url(""), args.runs)
        out["trigger_s"] = round(time.monotonic() - started, 1)
        print(f"{len(run_ids)} runs triggered through REST in {out['trigger_s']} s")

        killed: dict[str, Any] | None = None
        deadline = started + args.timeout
        last = 0.0
        while True:
            states = run_states(client) - before
            finished = states["success"] + states["failed"]
            now = time.monotonic()
            if killed is None and not args.no_kill and finished >= len(run_ids) // 2:
                killed = kill_one_task(store_url, now + 300) or {"error": "no task found to kill"}
                print(f"killed with SIGKILL at {finished} runs finished: {killed}")
            if now - last >= 30 or finished == len(run_ids):
                last = now
                print(
                    f"  {now - started:7.0f} s: {finished}/{len(run_ids)} finished "
                    f"({states['success']} succeeded, {states['failed']} failed), "
                    f"{states['running']} running, {states['queued']} queued",
                    flush=True,
                )
            if finished >= len(run_ids) or now > deadline:
                break
            time.sleep(POLL)
        out["wall_s"] = round(time.monotonic() - started, 1)
        out["timed_out"] = finished < len(run_ids)
        others += other_airflows(airflow)
        out["other_airflow_pids"] = sorted(set(others))
        out["load_average"] = Path("/proc/loadavg").read_text().split()[:3]

        ours = set(run_ids)
        runs = {r["dag_run_id"]: r for r in paged(client, f"/dags/{DAG_ID}/dagRuns", "dag_runs")}
        runs = {run_id: run for run_id, run in runs.items() if run_id in ours}
        tis = paged(client, f"/dags/{DAG_ID}/dagRuns/~/taskInstances", "task_instances")
        tis = [ti for ti in tis if ti["dag_run_id"] in ours]
        out["killed"] = killed
        events = analyse(out, runs, tis, store_url, partner, args)
        if killed and "run_id" in killed:
            killed["drawn_for_its_try"] = predicted_try(
                args.faults, killed["run_id"], killed["step"], killed["try_number"]
            )[0]
            killed["fate"] = fate(client, killed, events.get(killed["run_id"], []), store_url, partner)
    return 0


# --- the analysis ------------------------------------------------------------------------------------


def read_events(store_url: str) -> dict[str, list[dict[str, Any]]]:
    engine = engine_for(store_url)
    e = schema.events.c
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    query = (
        select(e.seq, e.run_id, e.step, e.map_index, e.try_number, e.type, cast(e.payload, Text))
        .where(e.workflow == DAG_ID)
        .order_by(e.seq)
    )
    with engine.connect() as conn:
        for seq, run_id, step, map_index, try_number, kind, payload in conn.execute(query):
            by_run[run_id].append(
                {
                    "seq": seq,
                    "step": step,
                    "map_index": map_index,
                    "try": try_number,
                    "type": kind,
                    "payload": json.loads(payload),
                }
            )
    return by_run


def lost_events(run: dict, tis: list[dict], events: list[dict]) -> list[str]:
    """What the events of one run miss against Airflow's view of it (empty: nothing lost)."""
    missing = []
    types = Counter(e["type"] for e in events)
    if not types["run.started"]:
        missing.append("run.started")
    terminal = {"success": "run.succeeded", "failed": "run.failed"}.get(run["state"])
    if terminal and not types[terminal]:
        missing.append(terminal)
    ends: dict[tuple[str, int], list[str]] = defaultdict(list)
    for e in events:
        if e["type"] in ("step.succeeded", "step.failed", "step.skipped"):
            ends[(e["step"], e["try"])].append(e["type"])
    for e in events:
        if e["type"] == "step.started" and not ends.get((e["step"], e["try"])):
            missing.append(f"{e['step']} try {e['try']}: an end for its step.started")
    expected = {"success": "step.succeeded", "failed": "step.failed", "skipped": "step.skipped"}
    expected |= {"upstream_failed": "step.skipped", "removed": "step.skipped"}
    for ti in tis:
        kind = expected.get(ti["state"])
        if kind is None:
            missing.append(f"{ti['task_id']}: Airflow state {ti['state']} is not final")
            continue
        tries = [t for (step, t) in ends if step == ti["task_id"]]
        last = max(tries, default=None)
        if last is None:
            missing.append(f"{ti['task_id']}: any event of its end ({kind})")
        elif kind not in ends[(ti["task_id"], last)]:
            missing.append(f"{ti['task_id']} try {last}: {kind} (Airflow: {ti['state']})")
        if ti["try_number"] and last is not None and last != ti["try_number"]:
            missing.append(f"{ti['task_id']}: the end of try {ti['try_number']} (events end at try {last})")
    return missing


def predicted_try(faults: Faults, run_id: str, step: str, try_number: int) -> tuple[str, int]:
    """What the seeded draws say one try of a step does — ``ok`` or the error class that fails it —
    and how many re-asks its invalid answers cost."""
    if step not in LLM_STEPS:
        return ("InjectedFault" if faults.fails_after(step, run_id, try_number) else "ok"), 0
    request = 0
    while True:
        kind = faults.model_fault(*request_parts(run_id, step, -1, "", try_number, request))
        if kind == "error":
            return "InjectedModelError", request
        if kind == "timeout":
            return "AgentTimeout", request
        if kind != "invalid":
            return "ok", request
        if request == OUTPUT_RETRIES:
            return "OutputInvalid", request  # no valid output after output_retries re-asks
        request += 1


def observed_try(events: list[dict], step: str, try_number: int) -> tuple[str, int | None] | None:
    """What the events say one try did (``ok`` or the error class), with the re-asks of a successful
    LLM try (its ``model.called`` requests - 1); None when the try has no end."""
    mine = [e for e in events if e["step"] == step and e["try"] == try_number]
    failed = next((e for e in mine if e["type"] == "step.failed"), None)
    if failed is not None:
        return failed["payload"].get("error_class", "?"), None
    if not any(e["type"] == "step.succeeded" for e in mine):
        return None
    if step not in LLM_STEPS:
        return "ok", 0
    called = next((e for e in mine if e["type"] == "model.called"), None)
    return "ok", (called["payload"].get("requests", 1) - 1) if called else None


def analyse(
    out: dict, runs: dict, tis: list[dict], store_url: str, partner: PartnerService, args: argparse.Namespace
) -> dict[str, list[dict[str, Any]]]:
    """Fill ``out`` with the campaign's figures; the events read, by run."""
    faults = args.faults
    events = {run_id: mine for run_id, mine in read_events(store_url).items() if run_id in runs}
    tis_by_run: dict[str, list[dict]] = defaultdict(list)
    for ti in tis:
        tis_by_run[ti["dag_run_id"]].append(ti)
    posts = partner.posts()
    orders = defaultdict(list)
    cancels = defaultdict(list)
    for p in posts:
        body = p["body"] if isinstance(p["body"], dict) else {}
        if p["status"] < 300 and p["path"] == "/orders":
            orders[body.get("run")].append(p)
        elif p["status"] < 300 and p["path"] == "/orders/cancel":
            cancels[body.get("run")].append(p)

    states = Counter(r["state"] for r in runs.values())
    succeeded, failed = states["success"], states["failed"]
    out["runs"] = {
        "triggered": args.runs,
        "finished": succeeded + failed,
        "succeeded": succeeded,
        "failed": failed,
        "other": {k: v for k, v in states.items() if k not in ("success", "failed")},
        "completion_rate": round(succeeded / args.runs, 5) if args.runs else None,
        "goal": GOAL_COMPLETION,
    }

    # Failed runs: fully compensated?
    failed_runs = []
    for run_id, run in runs.items():
        if run["state"] != "failed":
            continue
        mine = events.get(run_id, [])
        done = {e["step"] for e in mine if e["type"] == "step.succeeded" and e["step"] in STEPS}
        undone = {e["payload"].get("target") for e in mine if e["type"] == "compensation.succeeded"}
        saga = [e["payload"] for e in mine if e["type"] == "saga.completed"]
        need = done & {"post"}  # the steps that declare compensate
        partner_undone = bool(cancels.get(run_id)) or not need
        full = need <= undone and partner_undone and bool(saga) and saga[-1]["outcome"] != "partial"
        left = bool(orders.get(run_id)) and not cancels.get(run_id)
        failed_runs.append(
            {
                "run_id": run_id,
                "failed_steps": sorted(
                    ti["task_id"]
                    for ti in tis_by_run[run_id]
                    if ti["state"] == "failed" and ti["task_id"] != SAGA
                ),
                "completed": sorted(done),
                "compensated": sorted(undone),
                "saga": saga[-1] if saga else None,
                "partner_cancel_posts": len(cancels.get(run_id, [])),
                "fully_compensated": full,
                "effect_left_without_undo": left,
            }
        )
    out["failed_runs"] = failed_runs
    out["compensation"] = {
        "failed_runs": len(failed_runs),
        "fully_compensated": sum(r["fully_compensated"] for r in failed_runs),
        "with_something_to_undo": sum(bool(r["completed"]) for r in failed_runs),
        "effects_left_without_undo": sum(r["effect_left_without_undo"] for r in failed_runs),
    }

    # Events lost.
    lost = {}
    duplicated = 0
    for run_id, run in runs.items():
        missing = lost_events(run, tis_by_run[run_id], events.get(run_id, []))
        if missing:
            lost[run_id] = missing
        facts = Counter(
            (e["step"], e["try"], e["type"])
            for e in events.get(run_id, [])
            if e["type"]
            in ("run.started", "run.succeeded", "run.failed", "step.started", "step.succeeded", "step.failed")
        )
        duplicated += sum(n - 1 for n in facts.values() if n > 1)
    out["events"] = {
        "stored": sum(len(v) for v in events.values()),
        "runs_without_any_event": sum(1 for r in runs if r not in events),
        "lost": sum(len(v) for v in lost.values()),
        "runs_with_lost_events": len(lost),
        "lost_detail": dict(list(lost.items())[:20]),
        "duplicated_facts": duplicated,
    }

    # Side effects.
    by_key = partner.by_key()
    out["side_effects"] = {
        "posts_2xx": sum(1 for p in posts if p["status"] < 300),
        "orders": sum(len(v) for v in orders.values()),
        "cancels": sum(len(v) for v in cancels.values()),
        "keys_posted_more_than_once": sum(1 for n in by_key.values() if n > 1),
        "runs_with_more_than_one_order": sum(1 for v in orders.values() if len(v) > 1),
        "runs_with_more_than_one_cancel": sum(1 for v in cancels.values() if len(v) > 1),
        "keyless_posts": sum(1 for p in posts if not p["idempotency_key"]),
        "succeeded_runs_without_their_order": sum(
            1 for r, run in runs.items() if run["state"] == "success" and not orders.get(r)
        ),
        "succeeded_runs_with_a_cancel": sum(
            1 for r, run in runs.items() if run["state"] == "success" and cancels.get(r)
        ),
    }
    out["side_effects"]["duplicates"] = (
        out["side_effects"]["keys_posted_more_than_once"]
        + out["side_effects"]["runs_with_more_than_one_order"]
    )

    # Injected faults: as drawn (recomputed from the seed) and as observed (the events).
    drawn: Counter = Counter()
    seen: Counter = Counter()
    failures_by_step: dict[str, Counter] = defaultdict(Counter)
    reasks: Counter = Counter()
    mismatches = []
    killed = out.get("killed") or {}
    for run_id, mine in events.items():
        for e in mine:
            if e["type"] == "step.failed" and e["step"] in STEPS:
                failures_by_step[e["step"]][e["payload"].get("error_class", "?")] += 1
        tries = {(e["step"], e["try"]) for e in mine if e["type"] == "step.started" and e["step"] in STEPS}
        for step, try_number in sorted(tries):
            outcome, asked = predicted_try(faults, run_id, step, try_number)
            drawn[(step, outcome)] += 1
            reasks["drawn in successful tries" if outcome == "ok" else "drawn in failed tries"] += asked
            found = observed_try(mine, step, try_number)
            if found is not None:
                seen[(step, found[0])] += 1
                reasks["seen in successful tries"] += found[1] or 0
            the_killed = killed.get("run_id") == run_id and killed.get("step") == step
            if the_killed and killed.get("try_number") == try_number:
                continue
            expected = (outcome, asked if outcome == "ok" else None)
            if found != expected:
                mismatches.append(
                    {"run_id": run_id, "step": step, "try": try_number, "drawn": expected, "seen": found}
                )
    out["faults_injected"] = {
        "tries_started": sum(drawn.values()),
        "drawn_by_step_and_outcome": {f"{s} {k}": n for (s, k), n in sorted(drawn.items())},
        "seen_by_step_and_outcome": {f"{s} {k}": n for (s, k), n in sorted(seen.items())},
        "step_failures_by_error_class": {s: dict(c) for s, c in sorted(failures_by_step.items())},
        "model_re_asks": dict(reasks),
        "tries_differing_from_the_draw": len(mismatches),
        "differing_detail": mismatches[:20],
    }
    return events


def fate(
    client: httpx.Client, killed: dict, run_events: list[dict], store_url: str, partner: PartnerService
) -> dict[str, Any]:
    """What became of the killed task: Airflow's view, Baton's events of its step, the run, its effects."""
    run_id, step = killed["run_id"], killed["step"]
    ti = client.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{step}").json()
    tries = client.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{step}/tries").json()
    run = client.get(f"/dags/{DAG_ID}/dagRuns/{run_id}").json()
    events = [
        {
            "try": e["try"],
            "type": e["type"],
            **{
                k: e["payload"][k]
                for k in ("error_class", "error", "recorded_by", "pid")
                if k in e["payload"]
            },
        }
        for e in run_events
        if e["step"] == step
    ]
    orders = [
        p["idempotency_key"]
        for p in partner.posts("/orders")
        if isinstance(p["body"], dict) and p["body"].get("run") == run_id and p["status"] < 300
    ]
    engine = engine_for(store_url)
    s = schema.agent_slots.c
    with engine.connect() as conn:
        slots = [dict(r._mapping) for r in conn.execute(select(s.agent, s.slot, s.holder, s.expires_at))]
    return {
        "airflow_tries": [
            {"try": t.get("try_number"), "state": t.get("state"), "pid": t.get("pid")}
            for t in tries.get("task_instances", [])
        ],
        "final_state": ti.get("state"),
        "final_try": ti.get("try_number"),
        "run_state": run.get("state"),
        "events": events,
        "order_posts_of_its_run": len(orders),
        "distinct_keys_of_those_posts": len(set(orders)),
        "agent_slots_held_at_the_end": [{**x, "expires_at": str(x["expires_at"])} for x in slots],
    }


# --- the report ----------------------------------------------------------------------------------------


def report(out: dict) -> None:
    r, c, ev, se, fi = (
        out["runs"],
        out["compensation"],
        out["events"],
        out["side_effects"],
        out["faults_injected"],
    )
    ok = lambda good: "ok" if good else "MISSED"  # noqa: E731
    print()
    print(f"settings: {out['settings']}; template defaults: {out['template_defaults']}")
    print(f"faults: {out['faults']}")
    if out.get("other_airflow_pids"):
        print(f"  warning: other Airflow processes ran meanwhile (pids {out['other_airflow_pids']}): noisy")
    rows = [
        ("runs triggered", r["triggered"], ""),
        ("succeeded", r["succeeded"], ""),
        ("failed", r["failed"], ""),
        (
            "completion rate",
            f"{r['completion_rate']:.2%}",
            f"goal >= 99.9 %: {ok(r['completion_rate'] >= GOAL_COMPLETION)}",
        ),
        (
            "failed runs fully compensated",
            f"{c['fully_compensated']} of {c['failed_runs']}",
            f"goal all: {ok(c['fully_compensated'] == c['failed_runs'])}"
            + f" ({c['with_something_to_undo']} had a completed post to undo)",
        ),
        ("events lost", ev["lost"], f"goal 0: {ok(ev['lost'] == 0)} ({ev['stored']} events stored)"),
        (
            "duplicated side effects",
            se["duplicates"],
            f"goal 0: {ok(se['duplicates'] == 0)} ({se['orders']} orders, {se['cancels']} cancels posted)",
        ),
        (
            "wall time",
            f"{out['wall_s']:.0f} s",
            f"{out['wall_s'] / max(r['triggered'], 1):.2f} s a run; triggering took {out['trigger_s']} s",
        ),
    ]
    print(f"{'':<32}{'':>14}")
    for name, value, note in rows:
        print(f"{name:<32}{value!s:>14}   {note}")
    print("injected faults (tries of the 3 steps; drawn = recomputed from the seed, seen = the events):")
    keys = sorted(set(fi["drawn_by_step_and_outcome"]) | set(fi["seen_by_step_and_outcome"]))
    for key in keys:
        print(
            f"  {key:<36}drawn {fi['drawn_by_step_and_outcome'].get(key, 0):>6}"
            f"   seen {fi['seen_by_step_and_outcome'].get(key, 0):>6}"
        )
    asks = fi["model_re_asks"]
    print(
        "  model re-asks (invalid answers asked again): in successful tries drawn "
        f"{asks.get('drawn in successful tries', 0)}, seen {asks.get('seen in successful tries', 0)}; "
        f"in tries that failed anyway drawn {asks.get('drawn in failed tries', 0)}"
    )
    print(
        f"  tries whose outcome differs from the draw (the killed one aside): {fi['tries_differing_from_the_draw']}"
    )
    print(f"  step failures by error class: {fi['step_failures_by_error_class']}")
    killed = out.get("killed")
    if killed:
        print(f"killed task: {json.dumps(killed, default=str)[:3000]}")
    if out["failed_runs"]:
        print("failed runs:")
        for run in out["failed_runs"][:20]:
            print(f"  {json.dumps(run, default=str)}")
    if ev["lost_detail"]:
        print(f"lost events (first runs): {json.dumps(ev['lost_detail'])[:3000]}")
    print(  # the headline, last
        f"completion rate: {r['completion_rate']:.2%} of {r['triggered']} runs (goal >= 99.9 %); "
        f"{c['fully_compensated']} of {c['failed_runs']} failed runs compensated, {ev['lost']} events lost, "
        f"{se['duplicates']} duplicated side effects"
    )


RATES = {  # the faults' flags: dest -> (flag, key in BATON_FAULTS, default, help)
    "seed": ("--seed", "seed", 7, "the faults' seed"),
    "error": ("--error", "error", 0.10, "agent error rate per model request"),
    "timeout_rate": ("--timeout-rate", "timeout", 0.02, "agent timeout rate per request"),
    "invalid": ("--invalid", "invalid", 0.05, "invalid output rate per request"),
    "post_error": ("--post-error", "fail_after", 0.10, "rate of post tries failing after the post"),
    "hang": ("--hang", "hang_s", 20.0, "seconds a 'timeout' request hangs"),
}


def arguments() -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=bounded_int(1, 10_000), default=1000, help="runs to trigger (default 1000)"
    )
    for dest, (flag, _, default, text) in RATES.items():  # no default: --attach tells given from left out
        parser.add_argument(flag, dest=dest, type=type(default), help=f"{text} (default {default})")
    parser.add_argument("--no-kill", action="store_true", help="do not kill a task mid-campaign")
    parser.add_argument(
        "--timeout", type=bounded_float(1, 604_800, " s"), help="give up waiting after this many seconds"
    )
    server_argument(parser)
    parser.add_argument(
        "--results",
        type=Path,
        help=f"JSON results (default {RESULTS}; with --attach, none unless given: an attached run's figures "
        "are that Airflow's, not the benchmark's)",
    )
    parser.add_argument("--keep", type=Path, help="use this (new or empty) directory instead of a temp dir")
    attach_arguments(parser)
    args = parser.parse_args()
    args.timeout = args.timeout or 600 + 20 * args.runs
    return parser, args


def chosen_faults(args: argparse.Namespace) -> dict[str, Any]:
    """``BATON_FAULTS`` from the flags (each one left out takes its default)."""
    faults: dict[str, Any] = {}
    for dest, (_, key, default, _) in RATES.items():
        value = default if getattr(args, dest) is None else getattr(args, dest)
        faults[key] = {"post": value} if key == "fail_after" else value
    return faults


def refuse_rates_with_attach(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--attach`` runs with the faults that Airflow has: a rate flag (or ``--keep``) with it is refused."""
    given = [flag for dest, (flag, *_) in RATES.items() if getattr(args, dest) is not None]
    if args.keep:
        given.append("--keep")
    if given:
        parser.error(
            f"--attach runs with the faults that Airflow has: no {', '.join(given)} with it (give the rates "
            "to --write-dags before that Airflow starts)"
        )


def attached_faults(parser: argparse.ArgumentParser, airflow: Standalone) -> dict[str, Any]:
    """The faults the attached Airflow injects (its ``--write-dags`` settings), or the parser's error."""
    try:
        faults = json.loads(airflow.settings[ENV])
        if not isinstance(faults, dict) or faults.get("workflows") != [DAG_ID]:
            raise ValueError(f"they are not scoped to {DAG_ID} alone")
        Faults(**faults)
    except KeyError:
        parser.error(f"--attach: the Airflow of {airflow.home} injects no faults: write its dags folder with "
                     "--write-dags before it starts")  # fmt: skip
    except (ValueError, TypeError, RecursionError) as error:
        parser.error(f"--attach: the faults of the Airflow of {airflow.home} are not this benchmark's "
                     f"({str(error)[:300]}): write its dags folder with --write-dags")  # fmt: skip
    return faults


def main() -> int:
    parser, args = arguments()
    airflow = None
    if args.attach and not args.write_dags:  # (--write-dags comes first, as in the other benchmarks)
        refuse_rates_with_attach(parser, args)
        airflow = attached(parser, args.attach)
        store_url = attached_store(parser, airflow)
    faults = attached_faults(parser, airflow) if airflow else chosen_faults(args)
    try:
        args.faults = Faults(**faults)  # checked before anything is written or starts
    except ValueError as error:
        parser.error(str(error))
    if args.write_dags:
        return write_dags_only(parser, lambda dags: write_dags(dags, faults), args.write_dags)
    out: dict[str, Any] = {"faults": faults, "template_defaults": template()["defaults"]}
    with ExitStack() as stack:
        partner = stack.enter_context(PartnerService())
        if airflow is None:
            base = workdir(stack, args.keep, "baton-faults-")
            settings = write_dags(base / "dags", faults)
            dbs = Databases(parser, stack, args.server, "baton_faults", ("meta", "store"))
            print(f"throwaway databases {', '.join(dbs.names.values())} on {args.server.rsplit('/', 1)[0]}")
            store_url = dbs.url("store")
            settings |= {
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": dbs.url("meta", "postgresql+psycopg2"),
                "AIRFLOW_CONN_BATON_STORE": dbs.url("store", "postgresql"),
            }
            airflow = Standalone(base / "home", dags_folder=base / "dags", settings=settings)
        status = run_bench(airflow, lambda: campaign(airflow, store_url, partner, args, out))
        if args.keep:
            print(f"dags folder and AIRFLOW_HOME kept in {base}")
        results = args.results or (None if args.attach else RESULTS)
        if "runs" in out:
            if results is not None:
                results.parent.mkdir(parents=True, exist_ok=True)
                results.write_text(json.dumps(out, indent=2, default=str) + "\n", encoding="utf-8")
                print(f"results written to {results}")
            report(out)  # its headline last
        return status


if __name__ == "__main__":
    sys.exit(main())
