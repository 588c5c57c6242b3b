"""The budgets' ledger audited once a campaign's runs have all ended (bench/faults_platform.py): whether the
budgets held while the platform failed under them.

``declare`` writes a campaign's ``budgets.yaml``: a budget per run and one per day on the workflow, sized
not to bind (the campaign measures completion; a refused call would fail its run), so that every model
call of the campaign reserves and settles in both. ``audit`` then reads Baton's store:

- **over**: windows whose settled spend passed their limit (goal 0);
- **held**: the ledger's rows still reserved after every run ended (a call holds one in each budget; a try
  that died holding them and was never followed by a later try of its task, which would have released
  them: their expiry is then the only thing that frees them; goal 0);
- **disagree**: windows where the ledger's settled tokens differ from the sum its ``budget.settled``
  events tell (the two are written in one transaction: a fault between them must lose both or neither;
  goal 0);
- **settled**: the settlements (budget.settled events that were not releases) and their tokens, so that a
  campaign whose calls reserved nothing cannot pass as one that held.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from harness import write_new
from sqlalchemy import Text, cast, func, select

from baton.events import schema
from baton.events.store import engine_for

PER_RUN_TOKENS = 50_000  # a run's tries reserve at most ~10 calls of ~1,100 tokens at once


def declare(dags: Path, workflow: str, runs: int) -> list[dict[str, Any]]:
    """``dags/budgets.yaml``: a per-run and a per-day token budget on ``workflow``; the budgets."""
    budgets = [
        {"name": "campaign-run", "scope": f"workflow:{workflow}", "per": "run", "tokens": PER_RUN_TOKENS},
        {
            "name": "campaign-day",
            "scope": f"workflow:{workflow}",
            "per": "day",
            "tokens": PER_RUN_TOKENS * runs,
        },
    ]
    write_new(dags / "budgets.yaml", json.dumps({"budgets": budgets}, indent=2))  # JSON is YAML
    return budgets


def audit(store_url: str, workflow: str, budgets: list[dict[str, Any]]) -> dict[str, Any]:
    """The ledger of ``budgets`` against their limits and ``workflow``'s ``budget.settled`` events."""
    limits = {b["name"]: b["tokens"] for b in budgets}
    b, e = schema.budget_ledger.c, schema.events.c
    engine = engine_for(store_url)
    try:
        with engine.connect() as conn:
            ledger = conn.execute(
                select(b.budget, b.window, b.state, func.count(), func.sum(b.tokens))
                .where(b.budget.in_(list(limits)))
                .group_by(b.budget, b.window, b.state)
            ).all()
            told = conn.execute(
                select(cast(e.payload, Text)).where(e.type == "budget.settled", e.workflow == workflow)
            ).scalars()
            events: dict[tuple[str, str], int] = defaultdict(int)
            settlements = tokens = 0
            for payload in told:
                body = json.loads(payload)
                if body.get("released"):
                    continue
                settlements, tokens = settlements + 1, tokens + int(body["tokens"])
                for name, window in body["budgets"]:
                    events[(name, window)] += int(body["tokens"])
    finally:
        engine.dispose()
    settled = {
        (name, window): int(total or 0) for name, window, state, _, total in ledger if state == "settled"
    }
    return {
        "settlements": settlements,
        "tokens": tokens,
        "over": sorted(
            f"{name} {window}: {used} of {limits[name]}"
            for (name, window), used in settled.items()
            if used > limits[name]
        ),
        "held": sum(count for _, _, state, count, _ in ledger if state == "reserved"),
        "disagree": sorted(
            f"{name} {window}: ledger {settled.get((name, window), 0)}, events {events.get((name, window), 0)}"
            for name, window in set(settled) | set(events)
            if name in limits and settled.get((name, window), 0) != events.get((name, window), 0)
        ),
    }


def line(audit: dict[str, Any]) -> str:
    """The audit in one line of the report."""
    return (
        f"budgets: {audit['settlements']:,} calls settled ({audit['tokens']:,} tokens); "
        f"{len(audit['over'])} window(s) over their limit; {audit['held']} reservation row(s) still held; "
        f"{len(audit['disagree'])} window(s) where the ledger and its events disagree"
    )
