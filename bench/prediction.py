"""Benchmark (no Airflow): calibration of the remaining-duration prediction (issue 57) on held-back history.

``baton.coordination.prediction.RemainingModel`` predicts, from the event store, the time still to go until
a run ends, with quantiles. This measures how often a held-back run's actual remaining time falls inside its
predicted 90 % interval [p05, p95]: at the run's start and at the start of each of its steps (with the agent
that did the step). Goal: 85 to 95 %.

The history (seeded, synthetic; nothing here is measured from a real deployment) is written through the
store's own API (``EventStore.append``: ``run.started``, ``step.started``, ``agent.selected``,
``step.succeeded`` / ``step.failed`` + ``step.retried``, ``run.succeeded`` / ``run.failed``) into a throwaway
SQLite store (or, with ``--server``, a throwaway PostgreSQL database made by bench/harness.py's
``Databases``). It is not the model's own assumption: one workflow of five steps, ``fetch``, then
``research`` and ``enrich`` in parallel, then ``write`` (once both ended), then ``review``; each step routed
to one of two or three agents with their own speeds (lognormal of different medians and spreads, one agent
Pareto-tailed); a queue wait before each step (mostly seconds, now and then a minute); a try failing with
chance 4 % (the retry 30 s later, maybe on another agent); 3 % of runs failing for good (the model leaves
failed runs out; they are not scored either); every duration drifting slowly, +20 % from the first run to
the last. Runs arrive about every ten minutes.

The runs are sorted by start; the model is read with ``before`` = the start of the first of the last 30 %
(``--limit`` runs at most, as the scheduler reads it: the newest that ended before then), and scored on the
runs of those last 30 % that succeeded. ``--store URL --workflow NAME`` scores an existing store the same
way instead (its last ``--eval-runs`` succeeded runs at most).

Run from the repository root::

    .venv/bin/python bench/prediction.py [--runs 2000] [--seed 57] [--limit 500]

It prints the coverage at each point, the median interval width, how many runs, the model's read time, and
last ``p90 coverage N.N %`` (the run's start and every step's start, pooled). The test suite runs it with
``--runs 200``. This is a benchmark, not a test: it exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime

import numpy as np
from cli_types import SEED_MAX, bounded_int
from harness import Databases

from baton.coordination.prediction import MAX_LIMIT, RemainingModel, RunRecord, read_history
from baton.events.event import Event
from baton.events.migrations import upgrade
from baton.events.store import EventStore, engine_for

WORKFLOW = "prediction_bench"
START = datetime(2026, 1, 5, tzinfo=UTC)
ARRIVAL_S = 600.0  # mean seconds between two runs' starts
DRIFT = 0.20  # every duration, from the first run to the last
TRY_FAILS, RUN_FAILS, RETRY_DELAY_S = 0.04, 0.03, 30.0
# per step, its agents: (name, share of the runs, how a try's duration is drawn)
AGENTS = {
    "fetch": [("fetch_fast", 0.6, ("lognormal", 20, 0.4)), ("fetch_slow", 0.4, ("lognormal", 35, 0.6))],
    "research": [
        ("research_fast", 0.4, ("lognormal", 60, 0.5)),
        ("research_slow", 0.35, ("lognormal", 120, 0.7)),
        ("research_tail", 0.25, ("pareto", 50, 2.2)),
    ],
    "enrich": [("enrich_a", 0.5, ("lognormal", 80, 0.3)), ("enrich_b", 0.5, ("lognormal", 50, 0.9))],
    "write": [("write_a", 0.7, ("lognormal", 40, 0.5)), ("write_b", 0.3, ("lognormal", 60, 0.4))],
    "review": [
        ("review_a", 0.5, ("lognormal", 15, 1.0)),
        ("review_b", 0.3, ("lognormal", 25, 0.3)),
        ("review_c", 0.2, ("pareto", 12, 1.8)),
    ],
}
AFTER = {"fetch": (), "research": ("fetch",), "enrich": ("fetch",), "write": ("research", "enrich"),
         "review": ("write",)}  # fmt: skip


class Run:
    """One synthetic run: its events, in the order they happened."""

    def __init__(self, rng: np.random.Generator, run_id: str, start: float, slow: float):
        self.rng, self.run_id, self.slow, self.events = rng, run_id, slow, []
        self.failed = False
        self.add("run.started", start)

    def add(self, kind: str, at: float, **fields) -> None:
        ts = datetime.fromtimestamp(at, UTC)
        self.events.append(Event(type=kind, run_id=self.run_id, workflow=WORKFLOW, ts=ts, **fields))

    def draw(self, how: tuple) -> float:
        family, scale, shape = how
        if family == "pareto":
            return self.slow * scale * (1.0 + self.rng.pareto(shape))
        return self.slow * float(self.rng.lognormal(np.log(scale), shape))

    def wait(self) -> float:
        busy = self.rng.random() < 0.1
        return float(self.rng.exponential(3.0) + (self.rng.exponential(60.0) if busy else 0.0))

    def step(self, name: str, ready: float) -> float | None:
        """The step's tries from ``ready``; its end, or None when it failed for good."""
        agents = AGENTS[name]
        at, pick = ready + self.wait(), self.rng.choice(len(agents), p=[a[1] for a in agents])
        for try_number in (1, 2, 3):
            agent, _, how = agents[pick]
            scope = {"step": name, "try_number": try_number}
            self.add("step.started", at, **scope)
            self.add("agent.selected", at, agent=agent, payload={"agent": agent}, **scope)
            took = self.draw(how)
            if self.rng.random() >= TRY_FAILS:
                self.add("step.succeeded", at + took, agent=agent, payload={"duration_s": took}, **scope)
                return at + took
            took *= self.rng.random()
            self.add("step.failed", at + took, agent=agent, payload={"will_retry": try_number < 3}, **scope)
            if try_number < 3:
                self.add("step.retried", at + took, payload={"next_try": try_number + 1}, **scope)
            at += took + RETRY_DELAY_S + self.wait()
            pick = pick if self.rng.random() < 0.5 else self.rng.choice(len(agents))
        return None

    def play(self, start: float) -> None:
        ends: dict[str, float] = {}
        doomed = self.rng.choice(list(AGENTS)) if self.rng.random() < RUN_FAILS else None
        for name in AGENTS:  # in an order where every step comes after those it waits for
            ready = max((ends[up] for up in AFTER[name]), default=start)
            end = self.step(name, ready)
            if end is None or name == doomed:
                over = (end or ready) + 1.0
                self.add("run.failed", over, payload={"duration_s": over - start})
                self.failed = True
                return
            ends[name] = end
        end = ends["review"] + float(self.rng.exponential(2.0))
        self.add("run.succeeded", end, payload={"duration_s": end - start})


def generate(store: EventStore, runs: int, seed: int) -> tuple[int, int]:
    """``runs`` synthetic runs appended to ``store``, in the order their events happened; (events, failed)."""
    rng = np.random.default_rng(seed)
    events, failed, at = [], 0, START.timestamp()
    for i in range(runs):
        at += float(rng.exponential(ARRIVAL_S))
        run = Run(rng, f"run_{i:06d}", at, 1.0 + DRIFT * i / max(runs - 1, 1))
        run.play(at)
        events.extend(run.events)
        failed += run.failed
    events.sort(key=lambda e: e.ts)
    for chunk in range(0, len(events), 5_000):
        store.append(events[chunk : chunk + 5_000])
    return len(events), failed


def score(model: RemainingModel, held: list[RunRecord]) -> dict[str, list[tuple[bool, float]]]:
    """Per point (the run's start, each step's start, the middle of each step): whether the actual remaining
    time fell inside [p05, p95], and the interval's width."""
    points: dict[str, list[tuple[bool, float]]] = {}

    def check(point: str, predicted, actual: float) -> None:
        if predicted is not None:
            inside = predicted.p05 <= actual <= predicted.p95
            points.setdefault(point, []).append((inside, predicted.p95 - predicted.p05))

    for record in held:
        check("run start", model.remaining(), record.total)
        for name, span in record.steps.items():
            actual = record.ended - span.start
            check(f"step {name}", model.remaining(name, span.agent), actual)
            check("any agent*", model.remaining(name), actual)
            half = (span.end - span.start) / 2
            check("mid-step*", model.remaining(name, span.agent, elapsed_s=half), actual - half)
    return points


def report(
    points: dict[str, list[tuple[bool, float]]], held: int, model: RemainingModel, read_ms: float
) -> None:
    print(f"model: {model.runs} succeeded runs read ({model.events_read:,} events) in {read_ms:.0f} ms; "
          f"{held} held-back succeeded runs scored")  # fmt: skip
    print(f"{'point':<16} {'n':>6} {'in [p05, p95]':>14} {'median width s':>15}")
    for point in sorted(points, key=lambda p: (p != "run start", p.endswith("*"), p)):
        inside, width = np.array([r[0] for r in points[point]]), np.array([r[1] for r in points[point]])
        print(f"{point:<16} {inside.size:>6} {100 * inside.mean():>13.1f}% {np.median(width):>15.1f}")
    print(
        "*: not in the headline: every step's start with the agent left out; half of the step already spent"
    )
    headline = [inside for point, rows in points.items() if not point.endswith("*") for inside, _ in rows]
    print(f"p90 coverage {100 * np.mean(headline) if headline else 0.0:.1f} %")


def evaluate(store: EventStore, workflow: str, limit: int, eval_runs: int) -> int:
    records, _ = read_history(store, workflow, limit=eval_runs)
    records.sort(key=lambda r: r.started)
    if len(records) < 10:
        print(f"{len(records)} succeeded runs of {workflow}: too few to hold any back")
        print("p90 coverage 0.0 %")
        return 0
    split = records[int(0.7 * len(records))].started
    before = datetime.fromtimestamp(split, UTC)
    began = time.perf_counter()
    model = RemainingModel.from_store(store, workflow, limit=limit, before=before)
    read_ms = 1000 * (time.perf_counter() - began)
    held = [r for r in records if r.started >= split]
    report(score(model, held), len(held), model, read_ms)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=bounded_int(20, 100_000), default=2_000, help="synthetic runs")
    parser.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=57)
    parser.add_argument("--limit", type=bounded_int(1, MAX_LIMIT), default=500, help="runs the model reads")
    parser.add_argument(
        "--server", help="a PostgreSQL server (SQLAlchemy URL) for the store instead of SQLite"
    )
    parser.add_argument(
        "--store", help="score this existing store (a SQLAlchemy URL) instead; needs --workflow"
    )
    parser.add_argument("--workflow", help="the workflow of --store to score")
    parser.add_argument("--eval-runs", type=bounded_int(10, MAX_LIMIT), default=MAX_LIMIT,
                        help="with --store: the newest succeeded runs read, 70 %% to learn, 30 %% scored")  # fmt: skip
    return parser


def main() -> int:
    parser = _parser()
    args = parser.parse_args()
    if bool(args.store) != bool(args.workflow):
        parser.error("--store and --workflow go together")
    if args.store:
        store = EventStore(engine_for(args.store))
        return evaluate(store, args.workflow, args.limit, args.eval_runs)
    with ExitStack() as stack:
        if args.server:
            url = Databases(parser, stack, args.server, "baton_bench_prediction", ("store",)).url("store")
        else:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="baton-prediction-"))
            url = f"sqlite:///{folder}/store.db"
        engine = engine_for(url)
        stack.callback(engine.dispose)
        upgrade(engine)
        store = EventStore(engine)
        began = time.perf_counter()
        count, failed = generate(store, args.runs, args.seed)
        print(f"history: {args.runs:,} runs ({failed} failed), {count:,} events, written in "
              f"{time.perf_counter() - began:.1f} s to {engine.dialect.name}")  # fmt: skip
        return evaluate(store, WORKFLOW, args.limit, min(args.runs, MAX_LIMIT))


if __name__ == "__main__":
    sys.exit(main())
