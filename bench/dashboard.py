"""Benchmark: the dashboard's GET routes (issue 21) on a PostgreSQL store of 1,000,000 events over 10,000 runs.

Two throwaway PostgreSQL databases (``--server``, default ``$BATON_TEST_PG`` or 127.0.0.1:5432, dropped at the
end) are migrated with ``baton.events.migrations.upgrade`` and filled by COPY with a synthetic history: the
big one with ``--events`` events over ``--runs`` runs (default 1,000,000 over 10,000), the baseline with
``--baseline-events`` (default 10,000) over as many runs in proportion. The runs start over the last
``--days`` days (default 7) up to now; the last ten minutes' runs are still running. Five workflows of 4 to
5 steps, two of them fanning a step out over items (as many as the events per run ask: the other runs are
short); every try picks one of its step's two agents, fails 8 % of the time (retried once on the other agent:
a reassignment; a second failure fails the run, and its saga compensates the steps done), fan-out items fail 3 %
(reassigned), a circuit opens on some failures, 10 % of the runs meet a context conflict (a fifth of them
escalated), onboarding asks a reviewer and 4 % of the other runs ask a person. The dashboard's projections
are then rebuilt from the events once (``projections.rebuild``, as after any bulk load), and ANALYZE runs.

Then each route is called ``--calls`` times (default 50) on each store, alternating big and baseline, through
Baton's FastAPI app in-process (TestClient; the authentication dependency overridden, the store given as the
routes' dependency), each call different: the runs' pages by state and workflow, walking on by their cursor;
the agents' board; the Gantt chart of a random run; analytics over 1 hour to a year, of all or one workflow.

Run from the repository root:

    .venv/bin/python bench/dashboard.py [--events 1000000] [--runs 10000] [--calls 50]

It prints how each store was filled and each route's p50/p95 (ms) on both, and last
``slowest endpoint p95 N ms`` (the big store's; goal < 300). Always exits 0 once the figures are printed.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

from cli_types import SEED_MAX, bounded_int
from harness import Databases, server_argument
from sqlalchemy import select, text

from baton.events import projections, schema
from baton.events.migrations import upgrade
from baton.events.store import EventStore, engine_for

COLUMNS = ("run_id", "workflow", "template_version", "step", "map_index", "try_number", "agent", "type")
COPY = f"COPY baton_events ({', '.join(COLUMNS)}, payload, ts, idempotency_key) FROM STDIN"
WORKFLOWS = {  # steps, the step that fans out (or None)
    "lead_scoring": (("fetch_lead", "enrich", "score", "route"), None),
    "market_research": (("plan", "search", "summarize", "report"), "search"),
    "invoice_processing": (("ingest", "extract", "validate", "post", "notify"), "extract"),
    "customer_onboarding": (("kyc", "account", "welcome", "review"), None),
    "supply_chain": (("forecast", "order", "confirm", "ship"), None),
}
AGENTS = ("researcher", "writer", "extractor", "scorer", "reviewer_bot", "browser", "searcher", "summarizer")
ENDPOINTS = ("runs", "agents", "gantt", "analytics")
SHORT = 24  # the events of a run without a fan-out, about


class History:
    """The synthetic events of a store, as COPY rows, in each run's order (see the module's docstring)."""

    def __init__(self, events: int, runs: int, days: float, seed: int, now: datetime, sink: Any):
        self.target, self.runs, self.rng, self.now, self.sink = events, runs, random.Random(seed), now, sink
        self.start = now - timedelta(days=days)
        self.span = timedelta(days=days)
        self.count = 0
        self.kinds: Counter = Counter()
        self.run_ids: list[str] = []

    def fill(self) -> None:
        names = list(WORKFLOWS)
        for index in range(self.runs):
            left_runs, left_events = self.runs - index, max(0, self.target - self.count)
            workflow = names[index % len(names)]
            started = self.start + self.span * (index / self.runs) + timedelta(seconds=self.rng.random() * 30)
            Story(self, f"{workflow}__{index:06d}", workflow, started, left_events / left_runs).tell()

    def add(self, run: str, workflow: str, kind: str, ts: datetime, payload: dict, **where: Any) -> None:
        step, map_index, tries, agent = (
            where.get("step"),
            where.get("map_index", -1),
            where.get("tries", 0),
            where.get("agent"),
        )
        key = f"{run}|{step or ''}|{map_index}|{tries}|{kind}" + (
            f"|{where['key']}" if where.get("key") else ""
        )
        body = json.dumps(payload, separators=(",", ":"))
        self.sink((run, workflow, 1, step, map_index, tries, agent, kind, body, ts, key))
        self.count += 1
        self.kinds[kind] += 1


class Story:
    """One run told as events: its steps in order, each try on one of the step's agents, a fan-out's items
    side by side, what failed, conflicted or asked a person, and the saga of a failed run."""

    def __init__(self, history: History, run: str, workflow: str, started: datetime, budget: float):
        self.h, self.run, self.workflow, self.t, self.rng = history, run, workflow, started, history.rng
        self.steps, self.fans = WORKFLOWS[workflow]
        self.budget, self.done, self.failed = budget, [], False
        self.running = started > history.now - timedelta(minutes=10)  # the newest runs go on

    def event(self, kind: str, payload: dict | None = None, **where: Any) -> None:
        self.h.add(self.run, self.workflow, kind, self.t, payload or {}, **where)

    def tell(self) -> None:
        self.h.run_ids.append(self.run)
        self.event("run.started", {"run_type": "scheduled", "conf_keys": [], "conf_sha256": ""})
        began = self.t
        for number, step in enumerate(self.steps):
            if self.running and number >= len(self.steps) // 2:
                self.step_try(step, 1, self.agents(step)[0], finish=False)
                return
            if not self.step(step):
                break
        if self.failed:
            self.saga()
        kind = "run.failed" if self.failed else "run.succeeded"
        self.event(kind, {"duration_s": round((self.t - began).total_seconds(), 3)})

    def agents(self, step: str) -> tuple[str, str]:
        first = sum(map(ord, step)) % len(AGENTS)
        return AGENTS[first], AGENTS[(first + 3) % len(AGENTS)]

    def step(self, step: str) -> bool:
        for tries in (1, 2):
            agent = self.agents(step)[(tries - 1) % 2]
            if self.step_try(step, tries, agent, finish=True):
                self.done.append(step)
                return True
        self.failed = True
        return False

    def step_try(self, step: str, tries: int, agent: str, finish: bool) -> bool:
        where = {"step": step, "tries": tries, "agent": agent}
        self.event("step.started", {"pid": 1, "hostname": "w1", "pool": f"baton_agent_{agent}"}, **where)
        self.event(
            "agent.selected",
            {"agent": agent, "candidates": list(self.agents(step)), "reason": "ranked"},
            **where,
        )
        began = self.t
        if step == self.fans:
            self.fan_out(step, tries)
        self.t += timedelta(seconds=self.rng.uniform(2, 30))
        if not finish:
            if self.rng.random() < 0.5:
                self.event("approval.requested", {"subject": "check", "kind": "escalation"}, **where)
            return False
        if self.rng.random() < 0.08:
            return self.fail(where)
        cost = {
            "model": "m",
            "input_tokens": 900,
            "output_tokens": 200,
            "cost": round(self.rng.uniform(0.001, 0.02), 5),
        }
        self.event(
            "model.called",
            {**cost, "latency_s": 1.2, "prompt_sha256": "ab" * 32, "prompt_chars": 3000},
            **where,
        )
        self.extras(step, where)
        self.event(
            "output.recorded", {"sha256": "cd" * 32, "size": 60, "output": {"ok": True, "n": tries}}, **where
        )
        self.event("step.succeeded", {"duration_s": round((self.t - began).total_seconds(), 3)}, **where)
        return True

    def fail(self, where: dict) -> bool:
        error = {
            "error_class": "AgentError",
            "error": "the model timed out",
            "will_retry": where["tries"] < 2,
        }
        self.event("step.failed", error, **where)
        if self.rng.random() < 0.1:
            until = (self.t + timedelta(minutes=2)).isoformat()
            opened = {"agent": where["agent"], "failures": 3, "until": until}
            self.event("agent.breaker_opened", opened, key=f"{where['agent']}@{until}", **where)
        if where["tries"] < 2:
            self.event("step.retried", {"next_try": where["tries"] + 1}, **where)
        return False

    def extras(self, step: str, where: dict) -> None:
        """A context conflict, a question to a person: now and then."""
        if self.rng.random() < 0.1 / len(self.steps):
            conflict = {"key": "summary", "strategy": "merge", "base_version": 1, "current_version": 2}
            self.event(
                "context.conflict", {**conflict, "writer": step, "other_writer": "other"}, key="c", **where
            )
            outcome = (
                "escalated"
                if self.rng.random() < 0.2
                else self.rng.choice(("merged", "retried", "overwrote"))
            )
            self.event(
                "context.resolved",
                {"key": "summary", "strategy": "merge", "outcome": outcome},
                key="c",
                **where,
            )
        if step == "review" or self.rng.random() < 0.04 / len(self.steps):
            self.event("approval.requested", {"subject": "check", "kind": "review"}, key="review", **where)
            self.t += timedelta(seconds=self.rng.uniform(30, 600))
            self.event(
                "approval.answered", {"chosen": ["Approve"], "by": "reviewer_1"}, key="review", **where
            )

    def fan_out(self, step: str, tries: int) -> None:
        fanning = sum(
            fans is not None for _, fans in WORKFLOWS.values()
        )  # their items make up the others' few
        wanted = (self.budget * len(WORKFLOWS) - (len(WORKFLOWS) - fanning) * SHORT) / fanning - SHORT
        items = max(1, int(self.rng.uniform(0.5, 1.5) * max(0.0, wanted) / 4.2))
        began, longest = self.t, 0.0
        for item in range(items):
            self.t = began + timedelta(seconds=(item // 8) * 3.0)  # eight at a time
            longest = max(longest, self.item(step, tries, str(item)))
        self.t = began + timedelta(seconds=longest)

    def item(self, step: str, tries: int, sub: str) -> float:
        start, took = self.t, 0.0
        for attempt, agent in enumerate(self.agents(sub), start=1):
            where = {"step": step, "tries": tries, "agent": agent, "key": f"{sub}#{attempt}"}
            self.event("subtask.started", {"subtask": sub, "attempt": attempt}, **where)
            self.event("agent.selected", {"agent": agent, "subtask": sub, "reason": "ranked"}, **where)
            latency = round(self.rng.uniform(1, 6), 3)
            self.t, took = self.t + timedelta(seconds=latency), took + latency
            if attempt == 1 and self.rng.random() < 0.03:
                self.event(
                    "subtask.failed",
                    {"subtask": sub, "attempt": 1, "error": "timeout", "reassigned": True},
                    **where,
                )
                continue
            model = {
                "model": "m",
                "cost": 0.002,
                "latency_s": latency,
                "prompt_sha256": "ef" * 32,
                "prompt_chars": 800,
            }
            self.event("model.called", model, **where)
            self.event(
                "subtask.succeeded",
                {"subtask": sub, "attempt": attempt, "latency_s": latency, "sha256": "0" * 64, "size": 20},
                **where,
            )
            break
        self.t = start
        return took

    def saga(self) -> None:
        plan = list(reversed(self.done))
        self.event("saga.started", {"plan": plan, "failed_steps": []}, step="_compensate", key="s")
        for target in plan:
            where = {"step": target, "key": f"s|{target}|1"}
            self.event("compensation.started", {"target": target, "attempt": 1}, **where)
            self.t += timedelta(seconds=self.rng.uniform(1, 5))
            self.event("compensation.succeeded", {"target": target, "attempt": 1}, **where)
        self.event(
            "saga.completed", {"outcome": "compensated", "compensated": plan}, step="_compensate", key="s"
        )


def fill(url: str, events: int, runs: int, days: float, seed: int, now: datetime) -> tuple[History, dict]:
    """Migrate, COPY the history in, add circuits and load, rebuild the projections, ANALYZE: the store's
    history and how long each part took."""
    engine = engine_for(url)
    upgrade(engine)
    took: dict[str, float] = {}
    began = time.perf_counter()
    raw = engine.raw_connection()
    try:
        with raw.driver_connection.cursor() as cursor, cursor.copy(COPY) as copy:
            history = History(events, runs, days, seed, now, copy.write_row)
            history.fill()
        raw.driver_connection.commit()
    finally:
        raw.close()
    took["generated and copied"] = time.perf_counter() - began
    _circuits_and_load(engine, now)
    began = time.perf_counter()
    projections.rebuild(EventStore(engine))
    took["rebuilt"] = time.perf_counter() - began
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    return history, took


def _circuits_and_load(engine: Any, now: datetime) -> None:
    """Two agents' circuits (one open with a cap, one half-open) and a few calls running now."""
    with engine.begin() as conn:
        for agent, failures, until, cap in (
            ("browser", 5, now + timedelta(minutes=2), 2),
            ("searcher", 1000, None, None),
        ):
            values = {"consecutive_failures": failures, "opened_until": until, "concurrency_cap": cap}
            conn.execute(schema.agent_health.insert().values(agent=agent, updated_at=now, **values))
        for slot, agent in enumerate(AGENTS[:4]):
            expires = now + timedelta(minutes=5)
            conn.execute(
                schema.agent_slots.insert().values(
                    agent=agent, slot=slot, holder="h", acquired_at=now, expires_at=expires
                )
            )


class Caller:
    """Calls the routes on one store through the app in-process, each call with other parameters."""

    def __init__(self, client: Any, store: EventStore, run_ids: list[str], seed: int):
        self.client, self.store, self.run_ids, self.rng = client, store, run_ids, random.Random(seed)
        self.cursors: dict[tuple, str | None] = {}

    def call(self, endpoint: str) -> float:
        from baton.plugin import dashboard_api

        path, params = getattr(self, endpoint)()
        self.client.app.dependency_overrides[dashboard_api.event_store] = lambda: self.store
        began = time.perf_counter()
        answer = self.client.get(f"/api/dashboard/{path}", params=params)
        took = (time.perf_counter() - began) * 1000
        if answer.status_code != 200:
            raise SystemExit(f"GET {path} {params}: {answer.status_code} {answer.text[:500]}")
        if endpoint == "runs":
            self.cursors[tuple(sorted((k, v) for k, v in params.items() if k != "before"))] = answer.json()[
                "next"
            ]
        return took

    def runs(self) -> tuple[str, dict]:
        params = {"state": self.rng.choice(("all", "running", "finished")), "limit": 50}
        if self.rng.random() < 0.5:
            params["workflow"] = self.rng.choice(list(WORKFLOWS))
        cursor = self.cursors.get(tuple(sorted(params.items())))
        return "runs", {**params, **({"before": cursor} if cursor else {})}

    def agents(self) -> tuple[str, dict]:
        return "agents", {}

    def gantt(self) -> tuple[str, dict]:
        return f"runs/{self.rng.choice(self.run_ids)}/gantt", {}

    def analytics(self) -> tuple[str, dict]:
        params: dict[str, Any] = {"hours": self.rng.choice((1, 24, 168, 720, 24 * 366))}
        if self.rng.random() < 0.5:
            params["workflow"] = self.rng.choice(list(WORKFLOWS))
        return "analytics", params


def measure(callers: dict[str, Caller], calls: int) -> dict[str, dict[str, list[float]]]:
    """Each route ``calls`` times on each store (after two unmeasured calls), alternating the stores."""
    times = {name: {e: [] for e in ENDPOINTS} for name in callers}
    for round_ in range(calls + 2):
        for endpoint in ENDPOINTS:
            for name, caller in callers.items():
                took = caller.call(endpoint)
                if round_ >= 2:
                    times[name][endpoint].append(took)
    return times


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def report(times: dict[str, dict[str, list[float]]]) -> int:
    head = f"{'route':<10} {'calls':>5}  {'p50 ms':>8} {'p95 ms':>8}   {'baseline p50':>12} {'p95':>8}"
    print(f"\n{head}   {'p95 ratio':>9}")
    for endpoint in ENDPOINTS:
        big, small = times["big"][endpoint], times["baseline"][endpoint]
        ratio = p(big, 95) / p(small, 95)
        print(
            f"{endpoint:<10} {len(big):>5}  {p(big, 50):>8.1f} {p(big, 95):>8.1f}   {p(small, 50):>12.1f} "
            f"{p(small, 95):>8.1f}   {ratio:>9.2f}"
        )
    return round(max(p(times["big"][e], 95) for e in ENDPOINTS))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", type=bounded_int(100, 20_000_000), default=1_000_000, help="events in the big store"
    )
    parser.add_argument(
        "--runs", type=bounded_int(1, 1_000_000), default=10_000, help="runs in the big store"
    )
    parser.add_argument(
        "--baseline-events", type=bounded_int(100, 1_000_000), default=10_000, help="events in the baseline"
    )
    parser.add_argument(
        "--calls", type=bounded_int(1, 10_000), default=50, help="measured calls per route and store"
    )
    parser.add_argument("--days", type=bounded_int(1, 366), default=7, help="the days the runs started over")
    parser.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=21)
    server_argument(parser)
    args = parser.parse_args()
    if args.runs > args.events:
        parser.error("--runs is at most --events (a run has at least one event)")
    import logging

    from fastapi.testclient import TestClient

    from baton.plugin import dashboard_api
    from baton.plugin.api import app

    for name in ("httpx", "httpx2"):  # one log line per measured call would bury the figures
        logging.getLogger(name).setLevel(logging.WARNING)
    now = datetime.now(UTC)
    small = min(args.baseline_events, args.events)
    sizes = {
        "big": (args.events, args.runs),
        "baseline": (small, max(1, round(args.runs * small / args.events))),
    }
    with ExitStack() as stack:
        dbs = Databases(parser, stack, args.server, "baton_bench_dashboard", tuple(sizes))
        callers = {}
        app.dependency_overrides[dashboard_api.READ_RUNS] = lambda: None
        client = TestClient(app)
        for name, (events, runs) in sizes.items():
            history, took = fill(dbs.url(name), events, runs, args.days, args.seed, now)
            mix = ", ".join(f"{k} {v:,}" for k, v in history.kinds.most_common(8))
            print(f"{name}: {history.count:,} events over {runs:,} runs ({mix}, ...)")
            print("  " + ", ".join(f"{k} in {v:.1f} s" for k, v in took.items()))
            store = EventStore(engine_for(dbs.url(name)))
            with store.engine.connect() as conn:
                sample = list(conn.scalars(select(schema.run_summary.c.run_id)))
            callers[name] = Caller(client, store, sample, args.seed)
        slowest = report(measure(callers, args.calls))
        for caller in callers.values():
            caller.store.engine.dispose()
    print(f"slowest endpoint p95 {slowest} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
