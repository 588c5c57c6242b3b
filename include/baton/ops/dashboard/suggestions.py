"""Optimisation suggestions from a window's figures: each names its target, the figures it rests on (``why``)
and what to try. Only what the figures show is said: a suggestion needs enough tries behind it."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

MIN_TRIES = 5  # a step's figures say something from this many tries on
MIN_FAILURES = 3
SLOW_RUNS = 3  # a step is "the slowest" over at least this many successful tries
LOW_SPEEDUP = 1.2  # mean work / wall time below this: the steps mostly wait on each other
MANY_QUESTIONS = 0.2  # a share of runs that asked a person
FEW_AUTO = 0.5  # a share of context conflicts their strategy resolved


def suggest(figures: dict[str, Any], rows: list[Any]) -> list[dict[str, Any]]:
    """``figures``: analytics' run figures; ``rows``: per workflow, step and agent, the window's tries,
    failures, successful seconds and circuits opened."""
    steps, agents = _by_step(rows), _by_agent(rows)
    found = [_failing_step(steps), _slowest_step(steps), _circuit(agents)]
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


def _slowest_step(steps: dict[tuple[str, str], list[float]]) -> dict[str, Any] | None:
    means = {
        key: seconds / (tries - failures)
        for key, (tries, failures, seconds) in steps.items()
        if tries - failures >= SLOW_RUNS
    }
    if len(means) < 2:
        return None
    ranked = sorted(means.items(), key=lambda item: (-item[1], item[0]))
    (workflow, step), mean = ranked[0]
    return {
        "kind": "slowest_step",
        "target": {"workflow": workflow, "step": step},
        "why": f"its successful tries took {mean:.1f} s on average; the next slowest step {ranked[1][1]:.1f} s",
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
    speedup = figures.get("parallel_speedup")
    if speedup is None or speedup >= LOW_SPEEDUP or figures.get("finished", 0) < MIN_TRIES:
        return None
    return {
        "kind": "little_parallelism",
        "target": {},
        "why": f"the runs' steps worked {speedup:.2f} times their wall time on average: they mostly wait on each other",
        "try": "drop needs that a step does not read, or fan a long step out over its items",
    }


def _questions(figures: dict[str, Any]) -> dict[str, Any] | None:
    rate = figures.get("human_intervention_rate")
    if rate is None or rate < MANY_QUESTIONS or figures.get("runs", 0) < MIN_TRIES:
        return None
    return {
        "kind": "many_questions",
        "target": {},
        "why": f"{rate:.0%} of the runs asked a person",
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
