"""Projections of the events: ``workflow_executions`` (a row per run) and per-agent stats.

``workflow_executions`` is updated in the transaction that appends the events it follows, and can
be rebuilt from the events alone (``rebuild``). Agent stats are computed from the events on read.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from baton.events import schema, summaries

if TYPE_CHECKING:
    from baton.events.store import Event, EventStore

STATUS = {"run.started": "running", "run.succeeded": "completed", "run.failed": "failed"}
_TRIGGERS = ("run.started", "run.succeeded", "run.failed", "agent.selected")


_ADD_AGENT = {
    # Atomic in one statement: concurrent steps of one run cannot lose each other's agent.
    "postgresql": text(
        "UPDATE workflow_executions SET agents_involved = agents_involved || jsonb_build_array(CAST(:agent AS text))"
        " WHERE workflow_id = :run_id AND NOT agents_involved @> jsonb_build_array(CAST(:agent AS text))"
    ),
    "sqlite": text(
        "UPDATE workflow_executions SET agents_involved = json_insert(agents_involved, '$[#]', :agent)"
        " WHERE workflow_id = :run_id"
        " AND NOT EXISTS (SELECT 1 FROM json_each(workflow_executions.agents_involved) WHERE value = :agent)"
    ),
}


def apply(conn: Connection, stored: Sequence[tuple[int, Event]]) -> None:
    """Update the projections for events just stored (in the same transaction).

    A run's row is inserted at run.started, gains agents as they are selected (one atomic UPDATE
    each), and is recomputed from the run's events when the run ends.
    """
    summaries.apply(conn, [event for _, event in stored])  # the dashboard's rows
    x = schema.workflow_executions
    runs: dict[str, list[Event]] = defaultdict(list)
    for _, event in stored:
        if event.type in _TRIGGERS:
            runs[event.run_id].append(event)
    for run_id, events in runs.items():
        kinds = {e.type for e in events}
        if kinds & {"run.succeeded", "run.failed"}:
            _refresh_execution(conn, run_id, events[0].workflow)
            continue
        added: set[str] = set()
        for event in events:
            if event.type == "run.started":
                insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
                conn.execute(
                    insert(x)
                    .values(
                        workflow_id=run_id,
                        trigger_id=event.workflow,
                        agents_involved=[],
                        execution_status="running",
                        result=None,
                        timestamp=event.ts,
                    )
                    .on_conflict_do_nothing(index_elements=["workflow_id"])
                )
            elif event.type == "agent.selected" and event.agent and event.agent not in added:
                added.add(event.agent)  # a batch names the same agent for many steps: one UPDATE
                result = conn.execute(_ADD_AGENT[conn.dialect.name], {"run_id": run_id, "agent": event.agent})
                if (
                    result.rowcount == 0
                    and conn.scalar(select(x.c.id).where(x.c.workflow_id == run_id)) is None
                ):
                    _refresh_execution(conn, run_id, event.workflow)  # its row may not exist yet


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
    """Recompute ``workflow_executions`` and the dashboard's tables from the events alone; the number of runs."""
    e = schema.events.c
    with store.engine.begin() as conn:
        summaries.rebuild_in(conn)
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
    kinds = ("step.succeeded", "step.failed", "subtask.succeeded", "subtask.failed", "model.called")
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
        ok = [p for _, kind, p in items if kind in ("step.succeeded", "subtask.succeeded")]
        failed = sum(kind in ("step.failed", "subtask.failed") for _, kind, _ in items)
        calls = [p for _, kind, p in items if kind == "model.called"]
        latencies = sorted(
            p.get("duration_s", p.get("latency_s"))
            for p in ok
            if p.get("duration_s", p.get("latency_s")) is not None
        )
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
