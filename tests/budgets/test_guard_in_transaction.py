"""A reservation and a settlement in the caller's transaction (a fan-out's group commit), on SQLite and
PostgreSQL: the ledger's row and its event commit together or not at all; several reservations in one
group transaction see each other, so one budget's last call is reserved once; a refusal stores nothing
in the group and is recorded on its own."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from baton.budgets.guard import Guard
from baton.budgets.ledger import Ledger, Reservation, Spend
from baton.coordination.commits import GroupCommit
from baton.errors import BudgetExceeded
from baton.events.event import Event
from baton.spec.budgets import Budget
from baton.spec.roster import Agent

AGENT = Agent(
    name="writer", llm_conn_id="x", capabilities=["x"], cost={"input_per_1k": 1.0, "output_per_1k": 2.0}
)
LIMITS = type(
    "Limits", (), {"input_tokens_limit": 100, "output_tokens_limit": 20, "total_tokens_limit": None}
)()
PER_CALL = Spend(cost=0.1 + 0.04, tokens=120)  # the estimate of a call bounded by LIMITS
RUN = "run_g"


def _guard(store, budget: Budget) -> Guard:
    def event(kind: str, payload: dict, discriminator: str) -> Event:
        return Event(type=kind, run_id=RUN, workflow="leads", step="assess", try_number=1, agent=payload.get("agent"),
                     payload=payload, discriminator=discriminator)  # fmt: skip

    return Guard(store, (budget,), "leads", RUN, f"{RUN}/assess[-1]#1", timedelta(hours=1), event)


def _kinds(store) -> list[str]:
    return [e.type for e in store.read(RUN)]


def test_a_reservation_and_its_event_commit_together_or_not_at_all(store):
    budget = Budget(name="run-cap", scope="workflow:leads", per="run", cost=10.0, warn_at=None)
    guard = _guard(store, budget)
    with store.engine.connect() as conn, conn.begin() as transaction:
        assert isinstance(guard.reserve_in(conn, AGENT, PER_CALL, "[a]#1"), Reservation)
        transaction.rollback()  # a group transaction that failed
    assert Ledger(store).spent(budget, f"run:{RUN}") == (Spend(), Spend()) and _kinds(store) == []
    with store.engine.begin() as conn:
        held = guard.reserve_in(conn, AGENT, PER_CALL, "[a]#1")
    assert Ledger(store).spent(budget, f"run:{RUN}") == (Spend(), PER_CALL) and _kinds(store) == [
        "budget.reserved"
    ]
    with store.engine.begin() as conn:
        assert (
            guard.settle_in(conn, AGENT, held, {"input_tokens": 90, "output_tokens": 10, "cost": 0.11}, "")
            == []
        )
    assert Ledger(store).spent(budget, f"run:{RUN}") == (Spend(0.11, 100), Spend())
    assert _kinds(store) == ["budget.reserved", "budget.settled"]


def test_reservations_in_one_group_transaction_see_each_other_and_a_refusal_is_recorded_alone(store):
    """Five calls asking at once, in one group transaction, for a budget worth three: three are reserved; the
    other two wait while those are in flight and, once they settled and spent it, are refused, each with its
    ``budget.refused``; the window's warning once."""
    budget = Budget(
        name="run-cap", scope="workflow:leads", per="run", cost=round(3 * PER_CALL.cost, 6), warn_at=0.5
    )
    guard = _guard(store, budget)

    async def calls() -> list:
        group = GroupCommit(store)

        async def one(n: int):
            held = await guard.areserve(AGENT, "p", LIMITS, f"[{n}]#1", group)
            await asyncio.sleep(0.05)  # the call
            await guard.asettle(
                AGENT, held, {"input_tokens": 100, "output_tokens": 20, "cost": 0.14}, f"[{n}]#1", group
            )
            return held

        return await asyncio.gather(*(one(n) for n in range(5)), return_exceptions=True)

    outcomes = asyncio.run(calls())
    assert sum(isinstance(o, Reservation) for o in outcomes) == 3
    refused = [o for o in outcomes if isinstance(o, BudgetExceeded)]
    assert len(refused) == 2 and all("budget 'run-cap'" in str(o) for o in refused)
    kinds = _kinds(store)
    assert (kinds.count("budget.reserved"), kinds.count("budget.settled"), kinds.count("budget.refused")) == (
        3,
        3,
        2,
    )
    assert kinds.count("budget.warned") == 1  # past half of it once three settled: one warning for the window
    assert Ledger(store).spent(budget, f"run:{RUN}") == (Spend(pytest.approx(0.42), 360), Spend())
