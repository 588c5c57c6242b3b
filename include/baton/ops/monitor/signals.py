"""Signals: per-minute buckets of what the events say, per scope, folded incrementally into the store.

:func:`fold` reads the events after the monitor's cursor (a bounded batch, in sequence order), adds them
to their minute's bucket of each signal, and moves the cursor, in one transaction: each event is counted
exactly once, however often or concurrently the monitor runs, and a tick costs the events since the last
one, not the history. :func:`counts` and :func:`points` read a signal's buckets back for the detectors;
buckets older than ``retention`` are deleted by :func:`purge`.

Signals folded (scope ``agent:<name>`` unless said):

- ``failure_rate``: a step or fan-out item done by the agent (total), failed (bad); per workflow too
  (``workflow:<id>``: runs, failed runs);
- ``latency``: each successful step's or item's duration (the bucket's mean is its point);
- ``tokens`` and ``cost``: each model call's tokens and cost;
- ``queue_wait``: the seconds each call waited for a free load slot of the agent (``agent.selected``'s
  ``queue_wait_s``: 0 when a slot was free);
- ``reask_rate``: each model call (total), and those that needed more than one request (bad: the
  answer broke the output schema and the model was asked again);
- ``schema_failure_rate``: a step or item done by the agent (total), failed because its answers broke
  the output schema on every ask (bad: ``error_class`` ``OutputInvalid``);
- ``escalation_rate`` (scope ``workflow:<id>``): each step that ended and each hand-off of a step to a
  person because every agent failed (``approval.requested`` of kind ``escalation``: total and bad);
- ``sensor_silence`` (scope ``sensor:<workflow>``): each time a workflow's sensor fired (``trigger.fired``),
  the value the second of the minute of its latest firing (kept as the largest, not summed);
- ``runs_started`` (scope ``workflow:<id>``): each scheduled run's start (``run.started`` of ``run_type``
  scheduled), its time as the value: a minute's mean is the start itself (``baton.ops.monitor.schedules``);
- ``sensor_lag`` (scope ``sensor:<workflow>``): how late a sensor saw the rows it fired on
  (``trigger.fired``'s ``lag_s``: from the oldest new row's ``time_column`` to the firing; only sensors
  that declare a ``time_column``).

Events are folded in sequence order up to the first one younger than ``SETTLE`` (it and the ones after it
wait for the next tick): a writer's transaction that took a sequence number and commits a moment later is
then visible before the cursor passes it, and an event stamped before a later one's sequence number is
never skipped.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, case, delete, func, or_, select

from baton.errors import OutputInvalid
from baton.events import schema
from baton.events.store import EventStore
from baton.ops.detectors import Counts, Events, Points
from baton.ops.monitor.state import load_state, save_state

BUCKET = timedelta(minutes=1)
SETTLE = timedelta(seconds=5)
RETENTION = timedelta(days=35)
BATCH = 50_000
CURSOR = "cursor"
LATEST = ("sensor_silence",)  # event signals whose value is the second of their minute's latest event

_DONE = {"step.succeeded": False, "subtask.succeeded": False, "step.failed": True, "subtask.failed": True}
FAILED = tuple(kind for kind, failed in _DONE.items() if failed)  # the bad events of an agent's failure_rate
SCHEMA_FAILED = OutputInvalid.__name__  # the error class of the bad events of schema_failure_rate
# Failures an agent did not make: a budget refused its call before it started (its breaker ignores them
# too). They are not its calls at all in failure_rate; a burst of refusals is not an agent incident.
NOT_THE_AGENTS = ("BudgetExceeded",)
_FOLDED = (
    *_DONE,
    "model.called",
    "run.started",
    "run.succeeded",
    "run.failed",
    "trigger.fired",
    "approval.requested",
    "agent.selected",
)
SENSOR_DAG_SUFFIX = "__sensor"  # baton.compile.build.SENSOR_SUFFIX: a sensor's events are its DAG's

Key = tuple[str, str, datetime]


def _bucket(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


def _add(acc: dict[Key, list[float]], kind: str, scope: str, ts: datetime, bad: int = 0, value: float = 0.0):
    cell = acc[(kind, scope, _bucket(ts))]
    cell[0] += 1
    cell[1] += bad
    cell[2] += value


def _fold_event(acc: dict[Key, list[float]], kind: str, agent: str | None, workflow: str, payload: Any, ts):
    if kind in ("run.succeeded", "run.failed"):
        _add(acc, "failure_rate", f"workflow:{workflow}", ts, bad=int(kind == "run.failed"))
        return
    if kind == "run.started":  # a scheduled run's start, at its second: the bucket's mean is that time
        if (payload or {}).get("run_type") == "scheduled":
            _add(acc, "runs_started", f"workflow:{workflow}", ts, value=ts.timestamp())
        return
    if kind == "trigger.fired":
        sensor = f"sensor:{workflow.removesuffix(SENSOR_DAG_SUFFIX)}"
        cell = acc[("sensor_silence", sensor, _bucket(ts))]  # the latest firing's second in its minute
        cell[0], cell[2] = cell[0] + 1, max(cell[2], (ts - _bucket(ts)).total_seconds())
        if (lag := _seconds((payload or {}).get("lag_s"))) is not None:
            _add(acc, "sensor_lag", sensor, ts, value=lag)
        return
    payload = payload or {}
    if kind in ("step.succeeded", "step.failed"):
        _add(acc, "escalation_rate", f"workflow:{workflow}", ts)
    elif kind == "approval.requested":
        if bad_payload("escalation_rate", payload):
            _add(acc, "escalation_rate", f"workflow:{workflow}", ts, bad=1)
        return
    if agent is None:
        return
    scope = f"agent:{agent}"
    if kind in _DONE:
        if payload.get("error_class") in NOT_THE_AGENTS:
            return
        _add(acc, "failure_rate", scope, ts, bad=int(_DONE[kind]))
        _add(acc, "schema_failure_rate", scope, ts, bad=int(bad_payload("schema_failure_rate", payload)))
        took = _seconds(payload.get("duration_s", payload.get("latency_s")))
        if not _DONE[kind] and took is not None:
            _add(acc, "latency", scope, ts, value=took)
    elif kind == "agent.selected":
        if (wait := _seconds(payload.get("queue_wait_s", 0.0))) is not None:
            _add(acc, "queue_wait", scope, ts, value=wait)
    elif kind == "model.called":
        _add(
            acc,
            "tokens",
            scope,
            ts,
            value=float(payload.get("input_tokens", 0) + payload.get("output_tokens", 0)),
        )
        _add(acc, "cost", scope, ts, value=float(payload.get("cost", 0.0)))
        _add(acc, "reask_rate", scope, ts, bad=int(reasked(payload)))


def _seconds(value: Any) -> float | None:
    """A duration from a payload, or None when it is not a finite number of seconds >= 0 (one bad value
    must not turn a bucket's sum into infinity or NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def bad_payload(kind: str, payload: Any) -> bool:
    """Whether an event of the types that can make ``kind`` bad (see ``postmortem``) does, by its payload."""
    payload = payload or {}
    if kind == "reask_rate":
        return reasked(payload)
    if kind == "schema_failure_rate":
        return payload.get("error_class") == SCHEMA_FAILED
    if kind == "escalation_rate":
        return payload.get("kind") == "escalation"
    if kind == "failure_rate":
        return payload.get("error_class") not in NOT_THE_AGENTS
    return True


def reasked(payload: Any) -> bool:
    """Whether a ``model.called`` needed more than one request (a bad event of ``reask_rate``)."""
    requests = (payload or {}).get("requests", 1)
    return isinstance(requests, int) and requests > 1


def _cursor(conn: Connection) -> int:
    value = load_state(conn, CURSOR, lock=True)  # one folder at a time
    return int(value["seq"]) if value else 0


def fold(store: EventStore, now: datetime | None = None, batch: int = BATCH) -> int:
    """Fold the next events (at most ``batch``) into the signal buckets; how many were read."""
    now = now or datetime.now(UTC)
    e = schema.events.c
    with store.engine.begin() as conn:
        after = _cursor(conn)
        rows = conn.execute(
            select(e.seq, e.type, e.agent, e.workflow, e.payload, e.ts)
            .where(e.seq > after)
            .order_by(e.seq)
            .limit(batch)
        ).all()
        settled = now - SETTLE
        young = next((i for i, row in enumerate(rows) if row[5] > settled), len(rows))
        rows = rows[:young]  # in sequence order up to the first young one: none is ever skipped
        if not rows:
            return 0
        acc: dict[Key, list[float]] = defaultdict(lambda: [0, 0, 0.0])
        for _, kind, agent, workflow, payload, ts in rows:
            if kind in _FOLDED:
                _fold_event(acc, kind, agent, workflow, payload, ts)
        _upsert(conn, acc)
        save_state(conn, CURSOR, {"seq": rows[-1][0]}, now)
    return len(rows)


def _upsert(conn: Connection, acc: dict[Key, list[float]]) -> None:
    if not acc:
        return
    table = schema.signal_buckets
    values = [
        {"kind": k, "scope": s, "bucket": b, "total": int(t), "bad": int(bad), "value_sum": v}
        for (k, s, b), (t, bad, v) in acc.items()
    ]
    statement = schema.insert_for(conn.dialect.name)(table)
    kept, new = table.c.value_sum, statement.excluded.value_sum
    kinds = or_(*(table.c.kind == kind for kind in LATEST))  # not IN: its list cannot go in executemany
    latest = case((kinds, case((new > kept, new), else_=kept)), else_=kept + new)
    statement = statement.on_conflict_do_update(
        index_elements=["kind", "scope", "bucket"],
        set_={
            "total": table.c.total + statement.excluded.total,
            "bad": table.c.bad + statement.excluded.bad,
            "value_sum": latest,
        },
    )
    for start in range(0, len(values), 500):
        conn.execute(statement, values[start : start + 500])


def purge(store: EventStore, now: datetime, retention: timedelta = RETENTION) -> int:
    """Delete the buckets older than ``retention``; how many."""
    with store.engine.begin() as conn:
        return conn.execute(
            delete(schema.signal_buckets).where(schema.signal_buckets.c.bucket < now - retention)
        ).rowcount


def scopes(store: EventStore, kind: str, since: datetime) -> list[str]:
    """The scopes with a bucket of ``kind`` since ``since``."""
    b = schema.signal_buckets.c
    with store.engine.connect() as conn:
        return sorted(conn.scalars(select(b.scope).where(b.kind == kind, b.bucket >= since).distinct()))


def _rows(store: EventStore, kind: str, scope: str, since: datetime) -> list[Any]:
    b = schema.signal_buckets.c
    query = select(b.bucket, b.total, b.bad, b.value_sum).where(
        b.kind == kind, b.scope == scope, b.bucket >= since
    )
    with store.engine.connect() as conn:
        return conn.execute(query.order_by(b.bucket)).all()


def _epoch(buckets: Iterable[datetime]) -> np.ndarray:
    return np.array([b.timestamp() for b in buckets], dtype=float)


def _ends(buckets: Iterable[datetime], until: datetime | None) -> np.ndarray:
    """Each bucket at its end, the current one at ``until``: the time by which its events had happened,
    so that a detector's window of N minutes takes every bucket it overlaps. At a bucket's start, a
    2-minute window judged at 12:04:07 would take only 12:03 and the seconds of 12:04: half its data."""
    ends = _epoch(buckets) + BUCKET.total_seconds()
    return np.minimum(ends, until.timestamp()) if until is not None else ends


def counts(
    store: EventStore, kind: str, scope: str, since: datetime, until: datetime | None = None
) -> Counts:
    """A rate signal's buckets since ``since``: calls and bad ones per minute, each at its end (the
    current minute's at ``until``: see :func:`_ends`)."""
    rows = _rows(store, kind, scope, since)
    return Counts(_ends((r[0] for r in rows), until), [r[1] for r in rows], [r[2] for r in rows])


def points(
    store: EventStore, kind: str, scope: str, since: datetime, until: datetime | None = None
) -> Points:
    """A value signal's buckets since ``since``: each minute's mean, at the minute's end (see :func:`_ends`)."""
    rows = [r for r in _rows(store, kind, scope, since) if r[1] > 0]
    return Points(_ends((r[0] for r in rows), until), [r[3] / r[1] for r in rows])


def events(store: EventStore, kind: str, scope: str, reach: timedelta) -> Events:
    """An event signal's buckets as the times things happened, over ``reach`` before the LAST event, not
    before now: a silence longer than the detector's reach is still measured against the rate before it.
    Each minute's events are at its start but its latest, which is at its own second (:data:`LATEST`):
    a silence is measured from the last event, not from the start of its minute (which made a sensor
    firing every few seconds look a minute silent just after each minute began)."""
    b = schema.signal_buckets.c
    with store.engine.connect() as conn:
        last = conn.scalar(select(func.max(b.bucket)).where(b.kind == kind, b.scope == scope))
    if last is None:
        return Events([])
    rows = [r for r in _rows(store, kind, scope, last - reach) if r[1] > 0]
    starts, many = _epoch(r[0] for r in rows), np.array([int(r[1]) for r in rows], dtype=np.int64)
    times = np.repeat(starts, many)
    if kind in LATEST and len(times):  # each minute's latest event at its second
        latest = np.cumsum(many) - 1
        times[latest] = starts + np.clip([float(r[3]) for r in rows], 0.0, BUCKET.total_seconds() - 1e-6)
    return Events(times)
