"""What was spent: model calls' cost and tokens by workflow, agent, model and day, and each budget's
current window against its limit with a forecast to the window's end (``baton cost``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from baton.budgets.ledger import Ledger
from baton.events import schema
from baton.events.store import EventStore
from baton.spec.budgets import Budget

GROUPS = ("workflow", "agent", "model", "day")
MAX_RUN_WINDOWS = 5  # a per-run budget shows its latest runs


@dataclass(frozen=True)
class Line:
    key: str
    calls: int
    cost: float
    tokens: int


def spend(store: EventStore, since: datetime, by: str) -> list[Line]:
    """The model calls since ``since``, summed per ``by`` (one of ``GROUPS``), the costliest first."""
    if by not in GROUPS:
        raise ValueError(f"spend is grouped by one of {', '.join(GROUPS)}, not {by!r}")
    e = schema.events.c
    query = (
        select(e.workflow, e.agent, e.payload, e.ts)
        .where(e.type == "model.called", e.ts >= since)
        .execution_options(yield_per=5000)
    )
    sums: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0])
    with store.engine.connect() as conn:
        for workflow, agent, payload, ts in conn.execute(query):
            payload = payload or {}
            key = {
                "workflow": workflow,
                "agent": agent or "-",
                "model": str(payload.get("model", "-")),
                "day": f"{ts:%Y-%m-%d}",
            }[by]
            row = sums[key]
            row[0] += 1
            row[1] += float(payload.get("cost") or 0.0)
            row[2] += int(payload.get("input_tokens") or 0) + int(payload.get("output_tokens") or 0)
    lines = [Line(key, int(n), round(cost, 6), int(tokens)) for key, (n, cost, tokens) in sums.items()]
    return sorted(lines, key=lambda line: (-line.cost, -line.tokens, line.key))


def budget_status(
    store: EventStore, budgets: Sequence[Budget], now: datetime | None = None
) -> list[dict[str, Any]]:
    """Each budget's current window (a per-run budget: its latest runs'): settled, in flight, its limits,
    the share used, and for a day or month the forecast at the window's end at the pace so far."""
    now = now or datetime.now(UTC)
    ledger, rows = Ledger(store), []
    for budget in budgets:
        span = budget.span(now)
        windows = [budget.window("", now)] if span else _run_windows(store, budget)
        for window in windows:
            settled, reserved, raised = ledger.window(budget, window)
            used = {"cost": settled.cost + reserved.cost, "tokens": settled.tokens + reserved.tokens}
            limits = {
                "cost": budget.cost and budget.cost + raised.cost,
                "tokens": budget.tokens and budget.tokens + raised.tokens,
            }
            share = max(used[k] / limit for k, limit in limits.items() if limit)
            row: dict[str, Any] = {
                "budget": budget.name,
                "scope": budget.scope,
                "per": budget.per,
                "window": window,
                "cost": round(settled.cost, 6),
                "tokens": settled.tokens,
                "in_flight_cost": round(reserved.cost, 6),
                "in_flight_tokens": reserved.tokens,
                "limit_cost": limits["cost"],
                "limit_tokens": limits["tokens"],
                "raised": bool(raised.cost or raised.tokens),
                "used": round(share, 4),
                "forecast": None,
            }
            if span:
                elapsed = (now - span[0]) / (span[1] - span[0])
                row["forecast"] = round(share / elapsed, 4) if elapsed > 0.01 else None  # share at the end
            rows.append(row)
    return rows


def _run_windows(store: EventStore, budget: Budget) -> list[str]:
    """The windows of a per-run budget's latest runs (by their latest ledger row)."""
    b = schema.budget_ledger.c
    query = (
        select(b.window)
        .where(b.budget == budget.name)
        .group_by(b.window)
        .order_by(func.max(b.updated_at).desc(), b.window)
        .limit(MAX_RUN_WINDOWS)
    )
    with store.engine.connect() as conn:
        return list(conn.scalars(query))


def cost_document(store: EventStore, budgets: Sequence[Budget], days: int, by: str) -> dict[str, Any]:
    """``baton cost --json`` and ``GET /baton/api/cost``: the spend of the last ``days`` by ``by``, and
    each budget's current window against its limit."""
    now = datetime.now(UTC)
    since = now - timedelta(days=days)
    return {
        "since": since.isoformat(),
        "by": by,
        "spend": [line.__dict__ for line in spend(store, since, by)],
        "budgets": budget_status(store, budgets, now),
    }
