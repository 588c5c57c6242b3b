"""Optimisation suggestions from a window's figures: each names its target, the figures it rests on (``why``)
and what to try. Only what the figures show is said: a suggestion needs enough tries behind it, and a step
is proposed for speeding up only when its time matters (``MIN_SLOW_STEP_S``, ``MIN_SLOW_STEP_SHARE``)."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

MIN_TRIES = 5  # a step's figures say something from this many tries on
MIN_FAILURES = 3
SLOW_RUNS = 3  # a step is "the slowest" over at least this many successful tries
#: a step worth speeding up takes this long on average: under it, its time is of the order of what Airflow
#: spends around any task (the scheduler's pick-up and a task's start, 0.2-0.5 s a task in
#: docs/architecture.md's benchmarks) a few times over, and the most a faster step wins back is seconds a run
MIN_SLOW_STEP_S = 5.0
#: ... and at least this share of its workflow's mean run of the window: halving it shortens a run by at
#: least an eighth (a step of a run of hours is not worth a suggestion for its seconds)
MIN_SLOW_STEP_SHARE = 0.25
LOW_SPEEDUP = (
    1.2  # the steps' work / wall time below this: the steps overlap little, or runs wait between them
)
MANY_QUESTIONS = 0.2  # a share of runs that asked a person
FEW_AUTO = 0.5  # a share of context conflicts their strategy resolved


def suggest(
    figures: dict[str, Any], rows: list[Any], run_means: dict[str, float] | None = None
) -> list[dict[str, Any]]:
    """``figures``: analytics' run figures; ``rows``: per workflow, step and agent, the window's tries,
    failures, successful seconds and circuits opened; ``run_means``: per workflow, its finished runs' mean
    duration in the window (a step of a workflow with none is not proposed for speeding up)."""
    steps, agents = _by_step(rows), _by_agent(rows)
    found = [_failing_step(steps), _slowest_step(steps, run_means or {}), _circuit(agents)]
    found += [_speedup(figures), _questions(figures), _conflicts(figures)]
    return [s for s in found if s is not None]


def _by_step(rows: list[Any]) -> dict[tuple[str, str], list[float]]:
    """(workflow, step) -> [tries, failures, successful seconds] (the agents' summed)."""
    steps: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for row in rows:
        if row.step and row.tries:
            totals = steps[(row.workflow, row.step)]
            totals[0] += row.tries
            totals[1] += row.failures
            totals[2] += float(row.ok_seconds or 0.0)
    return steps


def _by_agent(rows: list[Any]) -> dict[str, int]:
    opened: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.agent and row.breaker_opens:
            opened[row.agent] += int(row.breaker_opens)
    return opened


def _failing_step(steps: dict[tuple[str, str], list[float]]) -> dict[str, Any] | None:
    total = sum(failures for _, failures, _ in steps.values())
    if total < MIN_FAILURES:
        return None
    (workflow, step), (tries, failures, _) = max(steps.items(), key=lambda item: (item[1][1], item[0]))
    share = failures / total
    return {
        "kind": "failing_step",
        "target": {"workflow": workflow, "step": step},
        "why": (
            f"{workflow}.{step} failed {int(failures)} of its {int(tries)} tries ({failures / tries:.0%}): "
            f"{share:.0%} of the {int(total)} failed tries of the window"
        ),
        "try": "read its errors (baton errors --workflow) and give it retries, a fallback agent or a route",
    }


def _slowest_step(
    steps: dict[tuple[str, str], list[float]], run_means: dict[str, float]
) -> dict[str, Any] | None:
    """The slowest step whose time matters: ``MIN_SLOW_STEP_S`` on average and ``MIN_SLOW_STEP_SHARE`` of its
    workflow's mean run; set against the next slowest step of the window."""
    means = {
        key: seconds / (tries - failures)
        for key, (tries, failures, seconds) in steps.items()
        if tries - failures >= SLOW_RUNS
    }
    if len(means) < 2:
        return None
    ranked = sorted(means.items(), key=lambda item: (-item[1], item[0]))
    worth = [
        index
        for index, ((workflow, _), mean) in enumerate(ranked)
        if mean >= MIN_SLOW_STEP_S and mean >= MIN_SLOW_STEP_SHARE * run_means.get(workflow, math.inf)
    ]
    if not worth:
        return None
    index = worth[0]
    (workflow, step), mean = ranked[index]
    run_mean = run_means[workflow]
    beside = (
        f"the next slowest step {ranked[1][1]:.1f} s"
        if index == 0
        else f"each slower step is under {MIN_SLOW_STEP_SHARE:.0%} of its workflow's mean run"
    )
    return {
        "kind": "slowest_step",
        "target": {"workflow": workflow, "step": step},
        "why": (
            f"its successful tries took {mean:.1f} s on average, {mean / run_mean:.0%} of a {workflow} run's "
            f"mean {run_mean:.1f} s; {beside}"
        ),
        "try": "split it into a fan-out, route it to a faster agent, or cache what it recomputes",
    }


def _circuit(opened: dict[str, int]) -> dict[str, Any] | None:
    if not opened:
        return None
    agent, times = max(opened.items(), key=lambda item: (item[1], item[0]))
    return {
        "kind": "unstable_agent",
        "target": {"agent": agent},
        "why": f"its circuit opened {times} time(s) in the window (the most of any agent)",
        "try": "give its steps a fallback candidate, lower its concurrency, or look at its provider",
    }


def _speedup(figures: dict[str, Any]) -> dict[str, Any] | None:
    """Under 1, the runs' time went mostly outside their steps (no parallelism would help); from 1 to
    ``LOW_SPEEDUP``, the steps ran mostly one after another."""
    ratio = figures.get("step_work_ratio")
    if ratio is None or ratio >= LOW_SPEEDUP or figures.get("step_work_runs", 0) < MIN_TRIES:
        return None
    runs = figures["step_work_runs"]
    if ratio <= 1:
        return {
            "kind": "time_between_steps",
            "target": {},
            "why": (
                f"no parallel speed-up: the steps' work added up to only {ratio:.2f}× the wall time of "
                f"{runs} finished runs, on average; at least {1 - ratio:.0%} of it went outside the steps"
            ),
            "try": (
                "open a slow run's timeline (Coordination) for the gaps: a pool's queue (more slots), a retry's "
                "delay, a person's answer (a deadline or a better agent before the question)"
            ),
        }
    return {
        "kind": "little_parallelism",
        "target": {},
        "why": (
            f"the steps' work added up to {ratio:.2f}× the wall time of {runs} finished runs, on average: "
            "they mostly ran one after another"
        ),
        "try": "drop needs that a step does not read, or fan a long step out over its items",
    }


def _questions(figures: dict[str, Any]) -> dict[str, Any] | None:
    rate = figures.get("human_intervention_rate")
    if rate is None or rate < MANY_QUESTIONS or figures.get("runs", 0) < MIN_TRIES:
        return None
    return {
        "kind": "many_questions",
        "target": {},
        "why": f"{figures['runs_with_questions']} of the {figures['runs']} runs ({rate:.0%}) asked a person",
        "try": "see which steps escalate (their agents all failed) and give them a better agent or a check",
    }


def _conflicts(figures: dict[str, Any]) -> dict[str, Any] | None:
    rate = figures.get("conflict_auto_resolution_rate")
    if rate is None or rate >= FEW_AUTO or figures.get("conflicts", 0) < MIN_FAILURES:
        return None
    return {
        "kind": "unresolved_conflicts",
        "target": {},
        "why": f"only {rate:.0%} of the {figures['conflicts']} context conflicts were resolved by their strategy",
        "try": "give the keys the writers share a merge strategy, or let one writer own each key",
    }
