"""The workflow analytics of a window (the Management tab): runs, success rate, the steps' work against the
runs' wall time (a parallel speed-up when over 1), context conflicts' auto-resolution rate, human
intervention rate, mean, p95 and longest duration, a trend for a chart, each figure in words that say what
it counts over which runs (``readings.py``), and suggestions derived from the figures (``suggestions.py``).

Reads the window's rows of ``baton_run_summary`` (one per run, by its start) and of ``baton_step_hours``
(per hour, workflow, step and agent): a year's window costs its runs and its hours, not its events."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from baton.events import schema
from baton.events.projections import percentile
from baton.events.store import EventStore
from baton.ops.dashboard.common import SYSTEM_WORKFLOWS, iso, rounded
from baton.ops.dashboard.readings import MIN_PERCENTILE_RUNS, read
from baton.ops.dashboard.suggestions import suggest

MAX_HOURS = 24 * 366
MAX_BUCKETS = 168  # the trend's points: hourly up to a week, wider buckets beyond


def report(store: EventStore, hours: float, workflow: str | None = None, now: datetime | None = None) -> dict:
    """The figures of the runs that started in the last ``hours`` (of ``workflow``; of every workflow but
    Baton's own, :data:`~baton.ops.dashboard.common.SYSTEM_WORKFLOWS`, when None)."""
    if not (0 < hours <= MAX_HOURS) or not math.isfinite(hours):
        raise ValueError(f"hours is a number over 0 and at most {MAX_HOURS}, not {hours!r}")
    now = now or datetime.now(UTC)
    since = now - timedelta(hours=hours)
    store.catch_up()  # its projections, from the log: every event stored before this read
    with store.engine.connect() as conn:
        runs = _runs(conn, since, now, workflow)
        steps = _steps(conn, since, now, workflow)
    figures = _figures(runs)
    return {
        "since": iso(since),
        "until": iso(now),
        "hours": hours,
        "workflow": workflow,
        **figures,
        "readings": read(figures, workflow),
        "trend": _trend(runs, since, now, hours),
        "suggestions": suggest(figures, steps, _mean_durations(runs)),
    }


# A run as the figures read it: a plain tuple (a year's window is every run of it: 10,000 rows read once,
# each field by its index, none through an ORM type per row)
WORKFLOW, STARTED, STATE, DURATION, WORK, QUESTIONS, AUTO, ESCALATED = range(8)


def _epoch(dialect: str, column: Any) -> Any:
    """A timestamp column as epoch seconds, computed by the database (PostgreSQL's timestamptz; SQLite's
    text, which the store writes in UTC: through julianday, exact to a millisecond, which the reader rounds to)."""
    if dialect == "postgresql":
        return func.extract("epoch", column)
    return (func.julianday(column) - 2440587.5) * 86400.0


def _runs(conn: Connection, since: datetime, now: datetime, workflow: str | None) -> list[tuple]:
    """The window's runs as tuples (``WORKFLOW`` ... ``ESCALATED``; ``STARTED`` in epoch seconds)."""
    r = schema.run_summary.c
    query = select(
        r.workflow,
        _epoch(conn.dialect.name, r.started_at),
        r.state,
        r.duration_s,
        r.work_s,
        r.questions,
        r.conflicts_auto,
        r.conflicts_escalated,
    ).where(r.started_at >= since, r.started_at <= now)
    query = (
        query.where(r.workflow == workflow)
        if workflow is not None
        else query.where(r.workflow.not_in(SYSTEM_WORKFLOWS))
    )
    return [tuple(row) for row in conn.execute(query)]


def _steps(conn: Connection, since: datetime, now: datetime, workflow: str | None) -> list[Any]:
    """Per workflow, step and agent over the window's hours (the first one whole): tries, failures, the
    successful tries' seconds, circuits opened."""
    h = schema.step_hours.c
    query = select(
        h.workflow,
        h.step,
        h.agent,
        func.sum(h.tries).label("tries"),
        func.sum(h.failures).label("failures"),
        func.sum(h.ok_seconds).label("ok_seconds"),
        func.sum(h.breaker_opens).label("breaker_opens"),
    ).where(h.hour >= since.replace(minute=0, second=0, microsecond=0), h.hour <= now)
    query = (
        query.where(h.workflow == workflow)
        if workflow is not None
        else query.where(h.workflow.not_in(SYSTEM_WORKFLOWS))
    )
    return conn.execute(query.group_by(h.workflow, h.step, h.agent)).all()


def _figures(runs: list[tuple]) -> dict[str, Any]:
    finished = [r for r in runs if r[STATE] != "running"]
    succeeded = sum(1 for r in finished if r[STATE] == "success")
    durations = sorted(float(r[DURATION]) for r in finished if r[DURATION] is not None)
    ratios = [r[WORK] / r[DURATION] for r in finished if r[WORK] and r[DURATION]]
    ratio = rounded(statistics.fmean(ratios), 2) if ratios else None
    auto = sum(r[AUTO] for r in runs)
    escalated = sum(r[ESCALATED] for r in runs)
    asked = sum(1 for r in runs if r[QUESTIONS] > 0)
    return {
        "runs": len(runs),
        "running": len(runs) - len(finished),
        "finished": len(finished),
        "succeeded": succeeded,
        "success_rate": _ratio(succeeded, len(finished)),
        # each finished run's steps' summed seconds over its wall time, averaged: over 1, the steps overlapped
        # (one after another they would take at least this many times as long); at or under 1, no speed-up
        "step_work_ratio": ratio,
        "step_work_runs": len(ratios),
        "parallel_speedup": ratio,  # deprecated: step_work_ratio's number, a speed-up only when over 1
        "conflicts": auto + escalated,
        "conflicts_auto_resolved": auto,
        "conflict_auto_resolution_rate": _ratio(auto, auto + escalated),
        "runs_with_questions": asked,
        "human_intervention_rate": _ratio(asked, len(runs)),
        "mean_duration_s": rounded(statistics.fmean(durations), 1) if durations else None,
        "p95_duration_s": rounded(percentile(durations, 95), 1),  # read it with timed_runs: see readings.py
        "max_duration_s": rounded(durations[-1], 1) if durations else None,
        "timed_runs": len(durations),
    }


def _mean_durations(runs: list[tuple]) -> dict[str, float]:
    """Per workflow, the mean duration of its finished runs of the window (what a step's time is set against)."""
    durations: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        if run[STATE] != "running" and run[DURATION]:
            durations[run[WORKFLOW]].append(float(run[DURATION]))
    return {workflow: statistics.fmean(values) for workflow, values in durations.items()}


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _trend(runs: list[tuple], since: datetime, now: datetime, hours: float) -> dict[str, Any]:
    """Runs, failures and durations per bucket of whole hours (one hour up to a week's window, wider beyond
    so that a chart has at most ``MAX_BUCKETS`` points), from the window's first whole hour. A bucket's p95
    of fewer than ``min_percentile_runs`` finished runs is an interpolation between its longest two (of one
    run, that run): a chart draws its longest run instead, which each bucket gives too."""
    width = max(1, math.ceil(hours / MAX_BUCKETS))
    first = since.replace(minute=0, second=0, microsecond=0)
    step = timedelta(hours=width)
    count = int((now - first) / step) + 1
    origin, seconds = first.timestamp(), step.total_seconds()
    grouped: dict[int, list[tuple]] = defaultdict(list)
    for run in runs:
        grouped[min(count - 1, max(0, int((round(float(run[STARTED]), 3) - origin) // seconds)))].append(run)
    buckets = []
    for index in range(count):
        members = grouped.get(index, [])
        durations = sorted(float(r[DURATION]) for r in members if r[DURATION] is not None)
        buckets.append(
            {
                "start": iso(first + index * step),
                "runs": len(members),
                "failures": sum(1 for r in members if r[STATE] == "failed"),
                "timed_runs": len(durations),
                "p95_duration_s": rounded(percentile(durations, 95), 1),
                "max_duration_s": rounded(durations[-1], 1) if durations else None,
            }
        )
    return {"bucket_hours": width, "min_percentile_runs": MIN_PERCENTILE_RUNS, "buckets": buckets}
