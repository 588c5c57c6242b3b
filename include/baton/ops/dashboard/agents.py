"""The agents' board of the Coordination tab: per agent seen in the store, its calls and failures of the last
hour with their p50/p95 latency, the load slots it holds now and the tasks waiting for one (the next first),
its circuit (``baton_agent_health``), its
model spend of the last 24 hours, and the headroom its budgets leave. The calls' figures are the agents'
statistics every part reads (``baton.events.projections``: the last hour's and last day's rows of
``baton_agent_calls``, by time); the rest reads the agents' slots and health rows and the budgets' ledger."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from baton.budgets.report import budget_status
from baton.coordination.load import HALF_OPEN
from baton.events import schema
from baton.events.projections import AgentStats, calls_between, spend_between
from baton.events.store import EventStore
from baton.ops.dashboard.common import iso, rounded
from baton.spec.budgets import Budget

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
MAX_CALLS = 100_000  # the newest calls of the last hour read: bounded however busy the hour was
MAX_WAITERS = 10_000  # the waiting tasks read to find each agent's next: bounded however many wait


def board(store: EventStore, budgets: Sequence[Budget] = (), now: datetime | None = None) -> dict[str, Any]:
    """Every agent seen, by name. ``budgets``: those of ``budgets.yaml`` (their headroom; none: null)."""
    now = now or datetime.now(UTC)
    store.catch_up()  # its projections, from the log: every event stored before this read
    with store.engine.connect() as conn:
        hour, sampled = calls_between(conn, now - HOUR, now, MAX_CALLS)
        spend = spend_between(conn, now - DAY, now)
        slots = _slots(conn, now)
        waiting = _waiting(conn, now)
        health = _health(conn, now)
        names = set(conn.scalars(select(schema.agents_seen.c.agent)))
    names |= set(hour) | set(spend) | set(slots) | set(waiting) | set(health)
    headroom = _headroom(store, budgets, sorted(names), now)
    agents = [
        {
            "agent": name,
            **_hour_figures(hour.get(name)),
            "slots_in_use": slots.get(name, 0),
            **waiting.get(name, {"waiting": 0, "next_waiting": None}),
            "circuit": health.get(name, _closed()),
            "spend_24h": round(spend.get(name, 0.0), 6),
            "budget_headroom": headroom.get(name),
        }
        for name in sorted(names)
    ]
    return {"at": iso(now), "last_hour_sampled": sampled, "agents": agents}


def _hour_figures(stats: AgentStats | None) -> dict[str, Any]:
    if stats is None:
        return {"calls_1h": 0, "failures_1h": 0, "p50_latency_s": None, "p95_latency_s": None}
    return {
        "calls_1h": stats.steps,
        "failures_1h": stats.failed,
        "p50_latency_s": rounded(stats.p50_latency_s),
        "p95_latency_s": rounded(stats.p95_latency_s),
    }


def _slots(conn: Connection, now: datetime) -> dict[str, int]:
    s = schema.agent_slots.c
    query = select(s.agent, func.count()).where(s.expires_at > now).group_by(s.agent)
    return dict(conn.execute(query).all())


def _waiting(conn: Connection, now: datetime) -> dict[str, dict[str, Any]]:
    """Per agent, how many tasks wait for one of its slots (live rows of ``baton_slot_waiters``) and the one
    that gets the next (the earliest start-by: ``baton.coordination.waiters``). Bounded: a row per waiting
    task, the first ``MAX_WAITERS`` by start-by read."""
    w = schema.slot_waiters.c
    live = w.expires_at > now
    counts = dict(conn.execute(select(w.agent, func.count()).where(live).group_by(w.agent)).all())
    found: dict[str, dict[str, Any]] = {}
    for agent, waiter, start_by in conn.execute(
        select(w.agent, w.waiter, w.start_by).where(live).order_by(w.start_by, w.since).limit(MAX_WAITERS)
    ):
        found.setdefault(  # a row that began waiting between the two reads counts
            agent,
            {"waiting": counts.get(agent, 1), "next_waiting": {"task": waiter, "start_by": iso(start_by)}},
        )
    return found | {a: {"waiting": n, "next_waiting": None} for a, n in counts.items() if a not in found}


def _closed() -> dict[str, Any]:
    return {"state": "closed", "opened_until": None, "consecutive_failures": 0, "concurrency_cap": None}


def _health(conn: Connection, now: datetime) -> dict[str, dict[str, Any]]:
    """Each circuit: open (until a time to come), half-open (held open by a runbook and given a trial, or
    its cool-down over: the next call is its trial) or closed."""
    h = schema.agent_health.c
    found = {}
    rows = conn.execute(select(h.agent, h.consecutive_failures, h.opened_until, h.concurrency_cap))
    for agent, failures, until, cap in rows:
        if until is not None and until > now:
            state = "open"
        elif failures >= HALF_OPEN or until is not None:
            state = "half-open"
        else:
            state = "closed"
        found[agent] = {
            "state": state,
            "opened_until": iso(until),
            "consecutive_failures": failures
            if failures < HALF_OPEN
            else None,  # a trial's marker, not a count
            "concurrency_cap": cap,
        }
    return found


def _headroom(
    store: EventStore, budgets: Sequence[Budget], names: list[str], now: datetime
) -> dict[str, dict[str, Any]]:
    """Per agent, the least share left of the day or month budgets that apply to all its calls (global and
    its own ``agent:`` budgets), and which; agents without one are left out (their headroom is null). A
    per-run budget has no headroom of the agent's: it is left out."""
    windowed = [b for b in budgets if b.span(now) and (b.scope == "global" or b.scope.startswith("agent:"))]
    if not windowed:
        return {}
    status = {row["budget"]: row for row in budget_status(store, windowed, now)}
    found = {}
    for name in names:
        rows = [
            status[b.name] for b in windowed if b.scope in ("global", f"agent:{name}") and b.name in status
        ]
        if rows:
            tightest = max(rows, key=lambda row: row["used"])
            found[name] = {
                "budget": tightest["budget"],
                "window": tightest["window"],
                "left": round(max(0.0, 1.0 - tightest["used"]), 4),
                "forecast": tightest["forecast"],
            }
    return found
