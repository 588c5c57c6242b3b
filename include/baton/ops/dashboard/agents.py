"""The agents' board of the Management tab: per agent seen in the store, its calls and failures of the last
hour with their p50/p95 latency, the load slots it holds now, its circuit (``baton_agent_health``), its
model spend of the last 24 hours, and the headroom its budgets leave. Reads the last hour's and last day's
rows of ``baton_agent_calls`` (by time), the agents' slots and health rows, and the budgets' ledger."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from baton.budgets.report import budget_status
from baton.coordination.load import HALF_OPEN
from baton.events import schema
from baton.events.store import EventStore
from baton.ops.dashboard.common import iso, percentile, rounded
from baton.spec.budgets import Budget

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
MAX_CALLS = 100_000  # the newest calls of the last hour read: bounded however busy the hour was


def board(store: EventStore, budgets: Sequence[Budget] = (), now: datetime | None = None) -> dict[str, Any]:
    """Every agent seen, by name. ``budgets``: those of ``budgets.yaml`` (their headroom; none: null)."""
    now = now or datetime.now(UTC)
    with store.engine.connect() as conn:
        hour, sampled = _last_hour(conn, now)
        spend = _spend(conn, now)
        slots = _slots(conn, now)
        health = _health(conn, now)
        names = set(conn.scalars(select(schema.agents_seen.c.agent)))
    names |= set(hour) | set(spend) | set(slots) | set(health)
    headroom = _headroom(store, budgets, sorted(names), now)
    agents = [
        {
            "agent": name,
            **_hour_figures(hour.get(name)),
            "slots_in_use": slots.get(name, 0),
            "circuit": health.get(name, _closed()),
            "spend_24h": round(spend.get(name, 0.0), 6),
            "budget_headroom": headroom.get(name),
        }
        for name in sorted(names)
    ]
    return {"at": iso(now), "last_hour_sampled": sampled, "agents": agents}


def _last_hour(conn: Connection, now: datetime) -> tuple[dict[str, list], bool]:
    """Per agent: [calls, failures, latencies of the successful ones] over the last hour (its newest
    ``MAX_CALLS`` calls); whether there were more."""
    c = schema.agent_calls.c
    query = (
        select(c.agent, c.ok, c.latency_s)
        .where(c.ts >= now - HOUR, c.ts <= now, c.kind != "model")
        .order_by(c.ts.desc())
        .limit(MAX_CALLS + 1)
    )
    rows = conn.execute(query).all()
    found: dict[str, list] = defaultdict(lambda: [0, 0, []])
    for agent, ok, latency in rows[:MAX_CALLS]:
        figures = found[agent]
        figures[0] += 1
        figures[1] += int(not ok)
        if ok and latency is not None:
            figures[2].append(float(latency))
    return dict(found), len(rows) > MAX_CALLS


def _hour_figures(figures: list | None) -> dict[str, Any]:
    calls, failures, latencies = figures or (0, 0, [])
    latencies = sorted(latencies)
    return {
        "calls_1h": calls,
        "failures_1h": failures,
        "p50_latency_s": rounded(percentile(latencies, 50)),
        "p95_latency_s": rounded(percentile(latencies, 95)),
    }


def _spend(conn: Connection, now: datetime) -> dict[str, float]:
    c = schema.agent_calls.c
    query = (
        select(c.agent, func.sum(c.cost))
        .where(c.ts >= now - DAY, c.ts <= now, c.kind == "model")
        .group_by(c.agent)
    )
    return {agent: float(total or 0.0) for agent, total in conn.execute(query)}


def _slots(conn: Connection, now: datetime) -> dict[str, int]:
    s = schema.agent_slots.c
    query = select(s.agent, func.count()).where(s.expires_at > now).group_by(s.agent)
    return dict(conn.execute(query).all())


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
