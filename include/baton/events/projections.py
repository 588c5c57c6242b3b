"""Projections of the events: seed 002's ``workflow_executions`` and per-agent stats.

``workflow_executions`` is updated in the transaction that appends the events it follows, and can
be rebuilt from the events alone (``rebuild``). Agent stats are computed from the events on read.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, select, update

from baton.events import schema

if TYPE_CHECKING:
    from baton.events.store import Event, EventStore

STATUS = {"run.started": "running", "run.succeeded": "completed", "run.failed": "failed"}
_TRIGGERS = ("run.started", "run.succeeded", "run.failed", "agent.selected")


def apply(conn: Connection, stored: Sequence[tuple[int, Event]]) -> None:
    """Update the projections for events just stored (in the same transaction)."""
    runs = {e.run_id: e for _, e in stored if e.type in _TRIGGERS}
    for run_id, event in runs.items():
        _refresh_execution(conn, run_id, event.workflow)


def _refresh_execution(conn: Connection, run_id: str, workflow: str) -> None:
    """Recompute one run's row of ``workflow_executions`` from its events."""
    e = schema.events.c
    rows = conn.execute(
        select(e.type, e.step, e.agent, e.payload, e.ts)
        .where(e.run_id == run_id, e.type.in_((*STATUS, "agent.selected", "output.recorded")))
        .order_by(e.seq)
    ).all()
    status, started, agents, outputs = "running", None, [], {}
    for kind, step, agent, payload, ts in rows:
        if kind in STATUS:
            status = STATUS[kind]
            started = started or ts
        elif kind == "agent.selected" and agent and agent not in agents:
            agents.append(agent)
        elif kind == "output.recorded" and step:
            outputs[step] = payload.get("output") if payload.get("ref") is None else {"ref": payload["ref"]}
    if started is None:
        return  # no run event yet: the row appears with run.started
    values = {
        "trigger_id": workflow,
        "agents_involved": agents,
        "execution_status": status,
        "result": {"outputs": outputs} if status != "running" else None,
        "timestamp": started,
    }
    x = schema.workflow_executions
    if conn.execute(update(x).where(x.c.workflow_id == run_id).values(**values)).rowcount == 0:
        conn.execute(x.insert().values(workflow_id=run_id, **values))


def rebuild(store: EventStore) -> int:
    """Recompute ``workflow_executions`` from the events alone; the number of runs."""
    e = schema.events.c
    with store.engine.begin() as conn:
        conn.execute(delete(schema.workflow_executions))
        runs = conn.execute(select(e.run_id, e.workflow).where(e.type == "run.started").distinct()).all()
        for run_id, workflow in runs:
            _refresh_execution(conn, run_id, workflow)
    return len(runs)


def executions(store: EventStore, limit: int = 100) -> list[dict[str, Any]]:
    x = schema.workflow_executions
    with store.engine.connect() as conn:
        rows = conn.execute(select(x).order_by(x.c.timestamp.desc()).limit(limit)).mappings().all()
    return [{**row, "timestamp": row["timestamp"].isoformat()} for row in rows]


@dataclass
class AgentStats:
    """What the router weighs: how often an agent's steps succeed, how fast, at what cost."""

    agent: str
    runs: int
    steps: int
    succeeded: int
    failed: int
    success_rate: float | None
    p50_latency_s: float | None
    p95_latency_s: float | None
    input_tokens: int
    output_tokens: int
    cost: float


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def agent_stats(
    store: EventStore, agents: Iterable[str] | None = None, last: int = 10_000
) -> list[AgentStats]:
    """Stats per agent over its ``last`` step and model events."""
    e = schema.events.c
    kinds = ("step.succeeded", "step.failed", "model.called")
    query = select(e.agent, e.run_id, e.type, e.payload).where(e.agent.is_not(None), e.type.in_(kinds))
    if agents is not None:
        query = query.where(e.agent.in_(list(agents)))
    with store.engine.connect() as conn:
        rows = conn.execute(query.order_by(e.seq.desc()).limit(last)).all()
    grouped: dict[str, list[tuple[str, str, dict]]] = defaultdict(list)
    for agent, run_id, kind, payload in rows:
        grouped[agent].append((run_id, kind, payload))
    stats = []
    for agent, items in sorted(grouped.items()):
        ok = [p for _, kind, p in items if kind == "step.succeeded"]
        failed = sum(kind == "step.failed" for _, kind, _ in items)
        calls = [p for _, kind, p in items if kind == "model.called"]
        latencies = sorted(p["duration_s"] for p in ok if p.get("duration_s") is not None)
        done = len(ok) + failed
        stats.append(
            AgentStats(
                agent=agent,
                runs=len({run_id for run_id, _, _ in items}),
                steps=done,
                succeeded=len(ok),
                failed=failed,
                success_rate=round(len(ok) / done, 4) if done else None,
                p50_latency_s=_percentile(latencies, 50),
                p95_latency_s=_percentile(latencies, 95),
                input_tokens=sum(c["input_tokens"] for c in calls),
                output_tokens=sum(c["output_tokens"] for c in calls),
                cost=round(sum(c["cost"] for c in calls), 6),
            )
        )
    return stats
