"""A run's remaining duration, with quantiles, from the event store's history of its workflow (issue 57).

Read by the scheduler's weight rule, so the reads are bounded and cheap: ``RemainingModel.from_store`` makes
two selects on ``baton_events``, whatever the store's size: the ends of the last ``limit`` runs of the
workflow that succeeded (newest first, by the (workflow, step, seq) index), then those runs' starts, their
steps' starts and ends and the agents chosen for them (by the (run_id, seq) index; at most ``MAX_ROWS``
rows). It reads the events, not the projections: no catch-up (a write) from the scheduler, and a step's
first try's start, which ``baton_task_state`` (the latest try's) does not keep.

The method: empirical quantiles of what really happened, no distribution assumed. A historical run gives,
for each step it ran, a pair: the step's own duration (its first try's start to its last try's end: retries
and their delays included) and the time from that step's end to the run's end. The time still to go from
the start of ``step`` is the pair's sum, taken together from the same run: whatever ran in parallel, waited
in a queue or followed the step is as it was in that run, so no independence across the rest of the DAG is
assumed, and a slow step's shorter wait for a parallel branch is kept. ``agent`` keeps the pairs of the runs
in which that agent did the step, when there are ``min_agent_runs`` of them (else every agent's). Time
already spent in the step (``elapsed_s``) keeps the pairs whose step took longer, less that time (the
conditional distribution; beyond the history's reach, an exponential tail: ``baton.optimize.duration``).
The quantiles are predictive ("weibull" positions, i/(n+1)): a [p05, p95] interval holds 90 % of new runs
even on a few dozen pairs; bench/prediction.py measures that on held-back history.

Only succeeded runs: a failed run ends at its failure, which says nothing of when a run that goes on to
finish will, and counting those ends would shorten every prediction: the optimistic side, the one that
misses deadlines. A run still running has no end and is not read. Durations from timestamps that go
backwards (clocks, a lost event) are left out, pair by pair.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import String, and_, or_, select, type_coerce

from baton.events import schema
from baton.events.log import EventLog
from baton.events.summaries import seconds
from baton.optimize import duration

MIN_RUNS = 5  # fewer ended runs (of the workflow, or of the step) than this: no prediction
MIN_AGENT_RUNS = 10  # fewer runs of the step by the agent than this: every agent's runs of the step
MAX_LIMIT = 5_000  # the most runs one model reads, whatever ``limit`` asks
MAX_ROWS = 200_000  # the most events one model reads (a fan-out of Airflow-mapped tasks is many rows a run)
MAX_CACHED = 4_096  # answers at a step's start kept per model (steps x agents: a few dozen in practice)
LEVELS = (0.05, 0.10, 0.50, 0.90, 0.95)
STEP_ENDS = ("step.succeeded", "step.failed")
STEP_LEVEL_CHOICE = "%|agent.selected"  # a step's own choice; a fan-out item's key ends with its item


@dataclass(frozen=True)
class Remaining:
    """Seconds still to go until the run ends: predictive quantiles, and the history they rest on."""

    p10: float
    p50: float
    p90: float
    p95: float
    runs: int  # how many ended runs of history it rests on
    p05: float = 0.0
    agent: str | None = None  # the agent whose runs of the step it rests on (None: every agent's)
    samples: tuple[float, ...] = field(default=(), repr=False, compare=False)  # sorted

    def miss_risk(self, seconds_left: float) -> float:
        """P(remaining > seconds_left), in [0, 1], never rising with ``seconds_left``: 1 for a deadline
        already past, from the samples when there are some, else from the quantiles."""
        if self.samples:
            return duration.survival(np.asarray(self.samples), float(seconds_left))
        if math.isnan(seconds_left) or seconds_left < 0:
            return 1.0
        points = np.maximum.accumulate([0.0, self.p05, self.p10, self.p50, self.p90, self.p95])
        levels = [1.0, 0.95, 0.90, 0.50, 0.10, 0.05]
        if seconds_left <= points[-1]:
            return float(np.interp(seconds_left, points, levels))
        if not math.isfinite(seconds_left):
            return 0.0
        return float(0.05 * math.exp(-(seconds_left - points[-1]) / max(self.p95 - self.p50, 1e-9)))


@dataclass(frozen=True)
class StepSpan:
    """A step of a historical run: its first try's start, its last try's end (epoch seconds), its agent."""

    start: float
    end: float
    agent: str | None


@dataclass(frozen=True)
class RunRecord:
    """A historical run that succeeded: its start and end (epoch seconds) and its steps that ran."""

    run_id: str
    started: float
    ended: float
    steps: Mapping[str, StepSpan]

    @property
    def total(self) -> float:
        return self.ended - self.started


class RemainingModel:
    """The remaining durations of a workflow's runs, from the ended runs of its history (module docstring)."""

    def __init__(
        self,
        records: Sequence[RunRecord],
        *,
        min_runs: int = MIN_RUNS,
        min_agent_runs: int = MIN_AGENT_RUNS,
        events_read: int = 0,
    ):
        self.runs = len(records)  # the ended runs read
        self.events_read = events_read
        self.min_runs, self.min_agent_runs = max(1, min_runs), max(1, min_agent_runs)
        self._totals = np.array([r.total for r in records], dtype=float)
        self._steps = _pairs(records)
        self._at_start: dict[tuple[str | None, str | None], Remaining | None] = {}

    @classmethod
    def from_store(
        cls, store: EventLog, workflow: str, *, limit: int = 500, before: datetime | None = None
    ) -> RemainingModel:
        """The model of ``workflow`` from its last ``limit`` (at most ``MAX_LIMIT``) runs that succeeded,
        those that ended before ``before`` when given (a naive one is UTC)."""
        records, read = read_history(store, workflow, limit=limit, before=before)
        return cls(records, events_read=read)

    def steps(self) -> list[str]:
        """The steps the history knows, by name."""
        return sorted(self._steps)

    def remaining(
        self, step: str | None = None, agent: str | None = None, elapsed_s: float = 0.0
    ) -> Remaining | None:
        """From the start of ``step`` (None: from the run's start) to the run's end; ``agent`` conditions on
        who does the step (every agent's runs of it when that agent has fewer than ``min_agent_runs``);
        ``elapsed_s`` already spent in the step (or the run), counted from its first try's start (the
        durations longer than that, less it). None when the history is too thin (fewer than ``min_runs``
        ended runs of the workflow, or of the step)."""
        if self.runs < self.min_runs:
            return None
        elapsed = float(elapsed_s) if math.isfinite(elapsed_s) and elapsed_s > 0 else 0.0
        key = (step, agent)
        if elapsed == 0 and key in self._at_start:
            return self._at_start[key]
        if step is None:
            found = _summarize(duration.residual(self._totals, elapsed), self._totals.size, None)
        else:
            found = self._from_step(step, agent, elapsed)
        if elapsed == 0 and len(self._at_start) < MAX_CACHED:
            self._at_start[key] = found  # what the scheduler asks most: a step about to start
        return found

    def _from_step(self, step: str, agent: str | None, elapsed: float) -> Remaining | None:
        pairs = self._steps.get(step)
        if pairs is None or pairs.own.size < self.min_runs:
            return None
        own, after, used = pairs.own, pairs.after, None
        mine = pairs.by_agent.get(agent) if agent is not None else None
        if mine is not None and mine.size >= self.min_agent_runs:
            own, after, used = own[mine], after[mine], agent
        return _summarize(duration.residual(own, elapsed, then=after), own.size, used)


@dataclass(frozen=True)
class _Pairs:
    own: np.ndarray  # each run's step duration
    after: np.ndarray  # ... and the time from the step's end to the run's end, in the same run
    by_agent: dict[str | None, np.ndarray]  # ... and who did it: the indices of each agent's runs


def _pairs(records: Iterable[RunRecord]) -> dict[str, _Pairs]:
    """Per step, the (own, after, agent) of every run in which it ran with times that do not go back."""
    found: dict[str, list[tuple[float, float, str | None]]] = {}
    for record in records:
        for name, span in record.steps.items():
            own, after = span.end - span.start, record.ended - span.end
            if own >= 0 and after >= 0 and span.start >= record.started:
                found.setdefault(name, []).append((own, after, span.agent))
    made = {}
    for name, rows in found.items():
        by_agent: dict[str | None, list[int]] = {}
        for i, (_, _, agent) in enumerate(rows):
            by_agent.setdefault(agent, []).append(i)
        made[name] = _Pairs(
            np.array([p[0] for p in rows], dtype=float),
            np.array([p[1] for p in rows], dtype=float),
            {agent: np.array(indices, dtype=int) for agent, indices in by_agent.items()},
        )
    return made


def _summarize(samples: np.ndarray, runs: int, agent: str | None) -> Remaining | None:
    if samples.size == 0:
        return None
    p05, p10, p50, p90, p95 = (float(q) for q in duration.quantiles(samples, LEVELS))
    return Remaining(p10, p50, p90, p95, runs, p05=p05, agent=agent, samples=tuple(samples.tolist()))


# --- the reads --------------------------------------------------------------------------------------------


def read_history(
    store: EventLog, workflow: str, *, limit: int = 500, before: datetime | None = None
) -> tuple[list[RunRecord], int]:
    """The last ``limit`` (at most ``MAX_LIMIT``) runs of ``workflow`` that succeeded (before ``before``,
    by their end, when given), newest first, and the number of events read for them (two selects). With
    ``before``, the workflow's newer events are passed over first: a backtest's read, not the scheduler's."""
    limit = max(0, min(int(limit), MAX_LIMIT))
    if limit == 0:
        return [], 0
    e = schema.events.c
    ends = select(e.run_id, e.ts, e.payload).where(
        e.workflow == workflow, e.step.is_(None), e.type == "run.succeeded"
    )
    if before is not None:
        ends = ends.where(e.ts < (before if before.tzinfo else before.replace(tzinfo=UTC)))
    with store.engine.connect() as conn:
        ended = {
            row.run_id: (row.ts, row.payload)
            for row in conn.execute(ends.order_by(e.seq.desc()).limit(limit))
        }
        if not ended:
            return [], 0
        rows = conn.execute(_facts(list(ended), conn.dialect.name)).all()
    truncated = len(rows) >= MAX_ROWS
    return _records(workflow, ended, rows, truncated), len(ended) + len(rows)


def _facts(run_ids: list[str], dialect: str) -> Any:
    """The runs' starts, their steps' starts and ends, and the agents chosen for their steps, newest first.
    The workflow is checked in Python (``_records``: a run id is Airflow's, unique within its DAG): filtered in
    SQL, SQLite read every event of the workflow by its (workflow, step, seq) index instead of the runs'
    by (run_id, seq): unbounded. On SQLite the times are read as their text (``_epoch`` parses it):
    SQLAlchemy's parse of SQLite's datetimes took three quarters of the read (130 ms of 8,300 rows, 32 ms as
    text)."""
    e = schema.events.c
    kinds = ("run.started", "step.started", *STEP_ENDS)
    chosen = and_(e.type == "agent.selected", e.idempotency_key.like(STEP_LEVEL_CHOICE))
    ts = type_coerce(e.ts, String).label("ts") if dialect == "sqlite" else e.ts
    return (
        select(e.run_id, e.workflow, e.step, e.agent, e.type, ts)
        .where(e.run_id.in_(run_ids), or_(e.type.in_(kinds), chosen))
        .order_by(e.seq.desc())
        .limit(MAX_ROWS)
    )


def _records(
    workflow: str, ended: dict[str, tuple[datetime, Any]], rows: Sequence[Any], truncated: bool
) -> list[RunRecord]:
    """A record per run, from its end and its rows (newest first). A run's start is its ``run.started``, or
    its end less the duration its end says; a run with neither (or whose start the row cap cut off) is left
    out."""
    starts: dict[str, float] = {}
    spans: dict[str, dict[str, list[Any]]] = {}  # run -> step -> [first start, last end, agent]
    for run_id, of, step, agent, kind, ts in rows:  # unpacked: a Row's attributes cost 2 us each
        if of != workflow:
            continue
        at = _epoch(ts)
        if kind == "run.started":
            starts[run_id] = min(at, starts.get(run_id, at))
        elif step is not None:
            span = spans.setdefault(run_id, {}).setdefault(step, [math.inf, -math.inf, None])
            if kind == "step.started":
                span[0] = min(span[0], at)
            elif kind in STEP_ENDS:
                span[1] = max(span[1], at)
            span[2] = span[2] or agent  # newest first: the latest try's agent
    records = []
    for run_id, (ended_at, payload) in ended.items():
        end = ended_at.timestamp()
        start = starts.get(run_id)
        if start is None and not truncated:
            took = seconds((payload or {}).get("duration_s") if isinstance(payload, dict) else None)
            start = end - took if took is not None else None
        if start is None or not start <= end:
            continue
        steps = {
            name: StepSpan(first, last, agent)
            for name, (first, last, agent) in spans.get(run_id, {}).items()
            if math.isfinite(first) and math.isfinite(last)
        }
        records.append(RunRecord(run_id, start, end, steps))
    return records


def _epoch(value: datetime | str) -> float:
    """Epoch seconds of a stored time: a datetime (naive is UTC) or SQLite's text of one (UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
