"""The projections Baton's store keeps (``PROJECTIONS``, handed to the log by ``baton.events.store``), and
the reads of them that every part shares: the runs in the execution table's columns (``GET /baton/api/runs``,
``baton runs``, the view ``workflow_executions``) and each agent's statistics (the router's track records, ``GET
/baton/api/agents/stats``, the agents' board of the Coordination page).

A run has one projection, ``baton_run_summary`` (``summaries``), and one vocabulary of states, Airflow's:
running, success, failed. An agent's statistics have one source, ``baton_agent_calls``: a row per call that
ended (a step's try, a fan-out item) and per model call, where a budget's refusal is not the agent's failure.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, func, select

from baton.events import schema, summaries
from baton.events.log import EventLog, Projection

# The one projection: runs, tasks, agents' calls and hourly step figures: what the pages, the API's runs and
# agents' statistics, `baton runs` and the router's track records read. Nothing a writer must read back in its
# own transaction (idempotency is the events' unique key; slots, breakers and budgets are tables of their own):
# caught up from the log by its readers (``EventLog.catch_up``), out of the append's transaction.
PAGES = "pages"
PROJECTIONS = (Projection(PAGES, summaries.apply, summaries.rebuild_in, caught_up=True),)


def rebuild(store: EventLog) -> int:
    """Recompute ``store``'s projections from the events alone (after a bulk load); the number of runs."""
    store.rebuild()
    with store.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(schema.run_summary))


def seed_columns() -> Select:
    """The runs in the columns of the execution table ``workflow_executions`` (id, workflow_id: the run,
    trigger_id: its workflow, agents_involved, execution_status, result, timestamp: its start), which is now
    a view of them; its id is the run's rank by start."""
    r = schema.run_summary.c
    return select(
        func.row_number().over(order_by=(r.started_at, r.run_id)).label("id"),
        r.run_id.label("workflow_id"),
        r.workflow.label("trigger_id"),
        r.agents.label("agents_involved"),
        r.state.label("execution_status"),
        r.result,
        r.started_at.label("timestamp"),
    )


def executions(store: EventLog, limit: int = 100) -> list[dict[str, Any]]:
    """The newest ``limit`` runs in the execution table's columns; ``result`` (outputs) once a run ended."""
    runs = seed_columns().subquery()
    query = select(runs).order_by(runs.c.timestamp.desc(), runs.c.workflow_id.desc()).limit(limit)
    store.catch_up()
    with store.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        {**row, "agents_involved": row["agents_involved"] or [], "timestamp": row["timestamp"].isoformat()}
        for row in rows
    ]


@dataclass
class AgentStats:
    """What the router weighs: how often an agent's calls succeed, how fast, at what cost."""

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


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile of sorted ``values`` (inclusive method), or None for none."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


_CALL_COLUMNS = ("agent", "run_id", "kind", "ok", "latency_s", "cost", "input_tokens", "output_tokens")


def _stats(agent: str, rows: list[Any]) -> AgentStats:
    """One agent's figures over its calls' rows (``_CALL_COLUMNS``)."""
    calls = [r for r in rows if r.kind != "model"]
    succeeded = sum(1 for r in calls if r.ok)
    latencies = sorted(float(r.latency_s) for r in calls if r.ok and r.latency_s is not None)
    models = [r for r in rows if r.kind == "model"]
    return AgentStats(
        agent=agent,
        runs=len({r.run_id for r in rows if r.run_id is not None}),
        steps=len(calls),
        succeeded=succeeded,
        failed=len(calls) - succeeded,
        success_rate=round(succeeded / len(calls), 4) if calls else None,
        p50_latency_s=percentile(latencies, 50),
        p95_latency_s=percentile(latencies, 95),
        input_tokens=sum(r.input_tokens or 0 for r in models),
        output_tokens=sum(r.output_tokens or 0 for r in models),
        cost=round(sum(float(r.cost or 0.0) for r in models), 6),
    )


def _by_agent(rows: Iterable[Any]) -> dict[str, AgentStats]:
    grouped: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        grouped[row.agent].append(row)
    return {agent: _stats(agent, items) for agent, items in sorted(grouped.items())}


def agent_stats(store: EventLog, agents: Iterable[str] | None = None, last: int = 10_000) -> list[AgentStats]:
    """Each agent's statistics over the newest ``last`` calls and model calls (of ``agents``), by name."""
    c = schema.agent_calls.c
    query = select(*(c[name] for name in _CALL_COLUMNS))
    if agents is not None:
        query = query.where(c.agent.in_(list(agents)))
    store.catch_up()
    with store.engine.connect() as conn:
        rows = conn.execute(query.order_by(c.id.desc()).limit(last)).all()
    return list(_by_agent(rows).values())


def calls_between(
    conn: Connection, since: datetime, until: datetime, limit: int
) -> tuple[dict[str, AgentStats], bool]:
    """Each agent's statistics over its calls (not its model calls) that ended from ``since`` to ``until``:
    the newest ``limit`` of them, bounded however busy the window was; whether there were more."""
    c = schema.agent_calls.c
    query = (
        select(*(c[name] for name in _CALL_COLUMNS))
        .where(c.ts >= since, c.ts <= until, c.kind != "model")
        .order_by(c.ts.desc())
        .limit(limit + 1)
    )
    rows = conn.execute(query).all()
    return _by_agent(rows[:limit]), len(rows) > limit


def spend_between(conn: Connection, since: datetime, until: datetime) -> dict[str, float]:
    """Each agent's model spend from ``since`` to ``until``."""
    c = schema.agent_calls.c
    query = (
        select(c.agent, func.sum(c.cost))
        .where(c.ts >= since, c.ts <= until, c.kind == "model")
        .group_by(c.agent)
    )
    return {agent: float(total or 0.0) for agent, total in conn.execute(query)}
