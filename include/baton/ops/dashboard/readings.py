"""The analytics' figures in words that cannot be misread: each reading is the figure as shown (``value``), the
words after it (``label``: what it is, and the counts it rests on) and what it counts over which runs
(``over``, the page's title). A rate of no runs reads "no ...", not 0 %; a p95 of fewer than
``MIN_PERCENTILE_RUNS`` runs reads as the longest run it is close to; the steps' work against the runs' wall
time is a parallel speed-up only when it is over 1."""

from __future__ import annotations

import math
from typing import Any

#: a p95 says something from this many durations on: with fewer, 5 % of the runs is less than one run, and
#: statistics' inclusive p95 is an interpolation between the longest two (of one run, that run itself)
MIN_PERCENTILE_RUNS = 20

OWN_RUNS = (
    "Baton's own runs (the monitor's, compensations, incident pages) are left out"  # of every workflow's
)


def read(figures: dict[str, Any], workflow: str | None) -> list[dict[str, str]]:
    """One reading per figure the page shows, in its order: runs, success rate, parallel speed-up, conflicts
    auto-resolved, human intervention, duration."""
    whose = f"the runs of {workflow}" if workflow is not None else "your workflows' runs"
    whose += " started in the window"
    readings = [
        _runs(figures, whose),
        _success(figures, whose),
        _speedup(figures, whose),
        _conflicts(figures, whose),
        _people(figures, whose),
        _duration(figures, whose),
    ]
    if workflow is None:
        for reading in readings:
            reading["over"] += f"; {OWN_RUNS}"
    return readings


def _reading(figure: str, value: str, label: str, over: str) -> dict[str, str]:
    return {"figure": figure, "value": value, "label": label, "over": over}


def percent(rate: float) -> str:
    return f"{100 * rate:.1f} %"


def seconds(value: float) -> str:
    """As the pages' ``fmtS`` shows a length of time: seconds under 90 s, minutes under 90 min, then hours."""
    if value < 90:
        return f"{math.floor(value + 0.5)} s"
    if value < 5400:
        return f"{math.floor(value / 60 + 0.5)} min"
    return f"{value / 3600:.1f} h"


def _runs(f: dict[str, Any], whose: str) -> dict[str, str]:
    running = f" ({f['running']} still running)" if f["running"] else ""
    return _reading("runs", str(f["runs"]), f"runs{running}", f"{whose}, finished or still running")


def _rate(
    f: dict[str, Any], figure: str, name: str, counts: str | None, none: str, over: str
) -> dict[str, str]:
    """A rate's reading: its percentage with the ``counts`` it rests on, or "–" and ``none`` when it rests on
    nothing (``counts`` None)."""
    if counts is None:
        return _reading(figure, "–", f"{name}: {none}", over)
    return _reading(figure, percent(f[figure]), f"{name}: {counts}", over)


def _success(f: dict[str, Any], whose: str) -> dict[str, str]:
    counts = f"{f['succeeded']} of {f['finished']} finished run(s) succeeded" if f["finished"] else None
    over = f"the finished runs among {whose}; a run still running counts once it ends"
    return _rate(f, "success_rate", "success rate", counts, "no run finished in the window", over)


def _speedup(f: dict[str, Any], whose: str) -> dict[str, str]:
    over = (
        f"the {f['step_work_runs']} finished run(s) with their steps' times among {whose}: each run's steps' "
        "summed time divided by its wall time, averaged"
    )
    ratio = f["step_work_ratio"]
    if ratio is None:
        return _reading(
            "step_work_ratio", "–", "parallel speed-up: no finished run with its steps' times", over
        )
    if ratio > 1:
        label = (
            f"parallel speed-up: the steps' work added up to {ratio:.2f}× the runs' wall time (one after "
            f"another, the steps alone would take at least {ratio:.2f}× as long as the runs did)"
        )
        return _reading("step_work_ratio", f"{ratio:.2f}×", label, over)
    label = (
        f"parallel speed-up: the steps' work added up to only {ratio:.2f}× the runs' wall time; at least "
        f"{1 - ratio:.0%} of it went outside the steps (waiting to be scheduled, for a slot, a person or a retry)"
    )
    return _reading("step_work_ratio", "no", label, over)


def _conflicts(f: dict[str, Any], whose: str) -> dict[str, str]:
    counts = (
        f"{f['conflicts_auto_resolved']} of {f['conflicts']} context conflict(s), by their strategy"
        if f["conflicts"]
        else None
    )
    over = f"the context conflicts of {whose} that ended: resolved by their key's strategy, or escalated"
    return _rate(
        f, "conflict_auto_resolution_rate", "conflicts auto-resolved", counts, "no context conflict", over
    )


def _people(f: dict[str, Any], whose: str) -> dict[str, str]:
    counts = f"{f['runs_with_questions']} of {f['runs']} run(s) asked a person" if f["runs"] else None
    over = f"{whose}, finished or still running, that asked a person at least once"
    return _rate(f, "human_intervention_rate", "human intervention", counts, "no run in the window", over)


def _duration(f: dict[str, Any], whose: str) -> dict[str, str]:
    over = f"the finished runs among {whose}, from their start to their end"
    timed = f["timed_runs"]
    if not timed:
        return _reading("p95_duration_s", "–", "p95 duration: no run finished in the window", over)
    if timed < MIN_PERCENTILE_RUNS:
        label = f"longest of {timed} finished run(s) (a p95 needs {MIN_PERCENTILE_RUNS})"
        return _reading("max_duration_s", seconds(f["max_duration_s"]), label, over)
    label = f"p95 duration of {timed} finished runs (the longest {seconds(f['max_duration_s'])})"
    return _reading("p95_duration_s", seconds(f["p95_duration_s"]), label, over)
