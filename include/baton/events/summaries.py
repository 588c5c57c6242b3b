"""The projections of the events: the pages' read models, caught up from the log after the appends'
transactions (the store is handed ``apply`` through ``baton.events.projections.PROJECTIONS``; its readers call
``EventLog.catch_up``, ``baton.events.catchup``), and rebuilt from the events alone (``rebuild_in``).

- ``baton_run_summary``: the one projection of a run, in Airflow's words for its state (running, success,
  failed): its times, the agents chosen for it, the questions asked of people and the context conflicts
  (resolved by their strategy or not); when it ends, its tasks, its tries' and items' seconds and its outputs;
- ``baton_task_state``: each task's latest try (state, agent, start, end), its tries' seconds, and the
  question to a person it waits on;
- ``baton_agent_calls``: each call that ended (a step's try, a fan-out item) and each model call's cost and
  tokens: every agent's statistics are read from it (``projections.agent_stats``);
- ``baton_step_hours``: per hour, workflow, step and agent: tries, failures, seconds, circuits opened;
- ``baton_agents_seen``: every agent chosen or heard of once.

A batch of events is folded into one change per row in Python first (``changes``), then written
(``summary_writes``) with one statement per table, the rows in key order: two transactions never wait on each
other's rows in opposite orders. Only run-level facts (its start and end, questions, conflicts, an agent new
to it) touch a run's row, and only a step's try its task's row: the items of a fan-out, which end concurrently,
write their call's row, and the run's only when one names an agent the run has not had.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, select, text

from baton.events import schema, summary_writes
from baton.events.changes import Changes, HourKey, RunChange, TaskChange
from baton.events.event import Event

RUN_STATES = {"run.started": "running", "run.succeeded": "success", "run.failed": "failed"}
TASK_STATES = {
    "step.started": "running",
    "step.succeeded": "success",
    "step.failed": "failed",
    "step.retried": "up_for_retry",
    "step.skipped": "skipped",
}
ENDED = ("step.succeeded", "step.failed")
AUTO_RESOLVED = frozenset({"retried", "overwrote", "merged"})  # context.resolved outcomes a strategy made
NOT_THE_AGENTS = ("BudgetExceeded",)  # as ops.signals: a budget's refusal is not the agent's failure
_COUNTED = {
    "approval.requested": "questions",
    "approval.answered": "answers",
    "context.conflict": "conflicts",
}
_CALLS = {"step.succeeded": 1, "step.failed": 0, "subtask.succeeded": 1, "subtask.failed": 0}
FOLDED = frozenset(
    {*RUN_STATES, *TASK_STATES, *_COUNTED, *_CALLS}
    | {"context.resolved", "agent.selected", "model.called", "agent.breaker_opened"}
)


def apply(conn: Connection, events: Iterable[Event]) -> None:
    """Fold events (in sequence order) into the dashboard's rows, in ``conn``'s transaction."""
    changes = collect(events)
    if changes:
        summary_writes.write(conn, changes)


def collect(events: Iterable[Event]) -> Changes:
    """One change per row the events touch (pure: no database)."""
    changes = Changes()
    for event in events:
        kind = event.type
        if kind not in FOLDED:
            continue
        if kind in RUN_STATES or kind in _COUNTED or kind == "context.resolved":
            _run(changes, event)
        if event.step is not None and _of_the_task(kind, event.payload):
            _task(changes, event)
        if kind in _CALLS or kind in ("model.called", "agent.breaker_opened"):
            _call(changes, event)
        if kind == "agent.selected":
            _agent_chosen(changes, event)
    return changes


def seconds(value: Any) -> float | None:
    """A duration (or an amount) a payload gives, if it is a finite number of at least 0: a negative,
    infinite or NaN one (SQLite's JSON keeps them) is left out, as the monitor's signals leave it out."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 <= value < math.inf else None


def _agent_chosen(changes: Changes, event: Event) -> None:
    if event.payload.get("agent"):
        changes.agents.setdefault(event.payload["agent"], event.ts)
    if event.agent:
        chosen = changes.run_agents.setdefault(event.run_id, [])
        if event.agent not in chosen:  # a batch names the same agent for many steps: written once
            chosen.append(event.agent)


def count(value: Any) -> int:
    """A number of tokens a payload gives, if it is a whole number of at least 0 (else 0)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _of_the_task(kind: str, payload: dict[str, Any]) -> bool:
    """A fact about a task's try (not one of its fan-out items)."""
    if kind == "agent.selected":
        return not payload.get("subtask")
    return kind in TASK_STATES or kind.startswith("approval.")


def _run(changes: Changes, event: Event) -> None:
    run = changes.runs.get(event.run_id)
    if run is None:
        run = changes.runs[event.run_id] = RunChange(event.workflow, event.template_version, event.ts)
    run.started_at = min(run.started_at, event.ts)
    run.template_version = event.template_version or run.template_version
    kind = event.type
    if kind in ("run.succeeded", "run.failed"):
        run.state, run.ended_at, run.duration_s = (
            RUN_STATES[kind],
            event.ts,
            seconds(event.payload.get("duration_s")),
        )
        changes.ended.add(event.run_id)
    elif kind == "context.resolved":
        auto = event.payload.get("outcome") in AUTO_RESOLVED
        run.counts["conflicts_auto" if auto else "conflicts_escalated"] += 1
    elif kind in _COUNTED:
        run.counts[_COUNTED[kind]] += 1


def _task(changes: Changes, event: Event) -> None:
    key = (event.run_id, event.step, event.map_index)
    task = changes.tasks.get(key)
    if task is None:
        task = changes.tasks[key] = TaskChange(event.try_number)
    elif event.try_number > task.try_number:  # a newer try: what this batch said of the older one is past
        task.try_number, task.state, task.agent = event.try_number, None, None
        task.started_s = task.ended_s = task.open_end = None
        task.asked_s = task.question = None  # as the upsert: a new try closes the older one's question
    kind, now, current = event.type, event.ts.timestamp(), event.try_number == task.try_number
    if kind == "approval.requested":
        task.asked_s, task.question, task.answered = now, event.payload.get("kind", "approval"), False
    elif kind == "approval.answered":
        task.asked_s, task.question, task.answered = None, None, True
    elif kind == "agent.selected":
        task.agent = (event.payload.get("agent") or event.agent) if current else task.agent
    elif current:
        task.state = TASK_STATES[kind]
        if kind == "step.started":
            task.started_s, task.ended_s = now, None
        elif kind in ENDED or kind == "step.skipped":
            task.ended_s = now
            task.asked_s = task.question = None  # as the upsert: the try's end closes its question
        if kind in ENDED:
            took = seconds(event.payload.get("duration_s"))
            if took is None and task.started_s is not None:
                took = now - task.started_s
            task.seconds += float(took or 0.0)
            task.open_end = now if took is None else None


def _call(changes: Changes, event: Event) -> None:
    kind, payload = event.type, event.payload
    agent = payload.get("agent") if kind == "agent.breaker_opened" else event.agent
    if kind in ENDED and event.step is not None:
        tries = changes.hours.setdefault(_hour_key(event, agent or ""), [0, 0, 0.0, 0])
        tries[0] += 1
        tries[1] += int(kind == "step.failed")
        tries[2] += seconds(payload.get("duration_s")) or 0.0
    if not agent or payload.get("error_class") in NOT_THE_AGENTS:
        return
    changes.agents.setdefault(agent, event.ts)
    if kind == "agent.breaker_opened":
        changes.hours.setdefault(_hour_key(event, agent), [0, 0, 0.0, 0])[3] += 1
        return
    row = {
        "agent": agent,
        "ts": event.ts,
        "run_id": event.run_id,
        "ok": _CALLS.get(kind),
        "latency_s": None,
        "cost": 0.0,
        "input_tokens": 0,
        "output_tokens": 0,
    }
    if kind == "model.called":
        row |= {
            "kind": "model",
            "cost": seconds(payload.get("cost")) or 0.0,  # a finite amount too
            "input_tokens": count(payload.get("input_tokens")),
            "output_tokens": count(payload.get("output_tokens")),
        }
    else:
        took = seconds(payload.get("duration_s", payload.get("latency_s"))) if _CALLS[kind] else None
        row |= {"kind": "step" if kind.startswith("step.") else "item", "latency_s": took}
    changes.calls.append(row)


def _hour_key(event: Event, agent: str) -> HourKey:
    return (event.ts.replace(minute=0, second=0, microsecond=0), event.workflow, event.step or "", agent)


TABLES = (schema.run_summary, schema.task_state, schema.agent_calls, schema.step_hours, schema.agents_seen)


def rebuild_in(conn: Connection, until: int | None = None, chunk: int = 20_000) -> int:
    """Recompute the dashboard's tables from the events alone (up to sequence number ``until``: every one when
    None), in ``conn``'s transaction, reading the events ``chunk`` at a time in sequence order; the number of
    events folded."""
    for table in TABLES:
        conn.execute(delete(table))
    summary_writes.forget_seen()
    if conn.dialect.name == "postgresql":
        # After a bulk load (COPY, a restore) the planner has no statistics of the events: it then read the
        # ended runs' events (``summary_writes._close_runs``) through the (agent, type) index, every event of
        # a type for each batch, and the rebuild grew with the square of the store (3 M events: 251 s; 93 s
        # with them). ANALYZE samples a bounded number of rows and may run inside the transaction.
        conn.execute(text(f"ANALYZE {schema.events.name}"))
    e = schema.events.c
    fields = (e.seq, e.run_id, e.workflow, e.template_version, e.step, e.map_index, e.try_number, e.agent)
    query = select(*fields, e.type, e.payload, e.ts, e.idempotency_key.label("key"))
    if until is not None:
        query = query.where(e.seq <= until)
    after, folded = 0, 0
    while True:
        batch = query.where(e.seq > after, e.type.in_(sorted(FOLDED))).order_by(e.seq).limit(chunk)
        rows = conn.execute(batch).all()
        if not rows:
            return folded
        apply(conn, [Event(**row._mapping) for row in rows])
        after, folded = rows[-1].seq, folded + len(rows)
