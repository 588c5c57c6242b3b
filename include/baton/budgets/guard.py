"""A model call's passage through the budgets: estimate, reserve (waiting for the calls in flight when only
they stand in the way), settle to the actual use, and the events of each.

The contract: a call reserves an estimate of its use before it starts. When the step bounds its calls
(``usage_limits``: ``input_tokens_limit`` and ``output_tokens_limit``, or ``total_tokens_limit``, which
the model call cannot pass), the estimate is that bound and no budget is ever overspent, however many
calls run at once. Without them the estimate is the prompt's length at 3 characters a token (plus 200
for the schema and instructions) and ``ESTIMATED_OUTPUT`` tokens out; a budget can then be passed by at
most what the calls in flight used beyond their estimates.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection

from baton.budgets.ledger import (
    Refusal,
    Reservation,
    Spend,
    holder_of,
    release_in,
    reserve_in,
    settle_in,
    spent_in,
)
from baton.errors import BudgetExceeded
from baton.events.event import Event
from baton.events.store import EventStore
from baton.spec.budgets import Budget
from baton.spec.roster import Agent

ESTIMATED_OUTPUT = 1024  # tokens out of a call whose step sets no output_tokens_limit
CHARS_PER_TOKEN = 3  # English averages about 4 characters a token: 3 over-estimates, as a bound should
OVERHEAD = 200  # the output schema and the model's instructions
MAX_WAIT = timedelta(minutes=10)  # a call waits at most this long for the calls in flight to settle


def estimate(agent: Agent, prompt: str, limits: Any = None) -> Spend:
    """What a call of ``agent`` with ``prompt`` may use at most (see the module's contract)."""
    instructions = agent.system_prompt or f"You are {agent.name}. {agent.description}"
    tokens_in = math.ceil((len(prompt) + len(instructions)) / CHARS_PER_TOKEN) + OVERHEAD
    tokens_out = ESTIMATED_OUTPUT
    if limits is not None:
        tokens_in = limits.input_tokens_limit or tokens_in
        tokens_out = limits.output_tokens_limit or tokens_out
        if limits.total_tokens_limit and limits.total_tokens_limit < tokens_in + tokens_out:
            tokens_in = min(tokens_in, limits.total_tokens_limit)
            tokens_out = limits.total_tokens_limit - tokens_in
    price = agent.cost
    cost = tokens_in / 1000 * price.input_per_1k + tokens_out / 1000 * price.output_per_1k
    return Spend(round(cost, 10), tokens_in + tokens_out)


def actual(payload: dict[str, Any] | None) -> Spend | None:
    """A ``model.called`` payload's use (None: the call never reached the model)."""
    if not payload:
        return None
    tokens = int(payload.get("input_tokens") or 0) + int(payload.get("output_tokens") or 0)
    return Spend(float(payload.get("cost") or 0.0), tokens)


MakeEvent = Callable[[str, dict[str, Any], str], Event]
Warn = Callable[[Budget, str, Spend], None]
Due = list[
    tuple[Budget, str, Spend, float]
]  # the warnings a settlement found due: budget, window, spend, share


class Writes(Protocol):
    """Where a coroutine's store writes go: ``run(write)`` runs ``write(conn)`` in a transaction and gives its
    result (a fan-out's group commit, ``baton.coordination.commits.GroupCommit``)."""

    async def run(self, write: Callable[[Connection], Any]) -> Any: ...


@dataclass
class Guard:
    """The budgets of one try's model calls.

    :param key: the try's key (``<run>/<task>[<map index>]#<try>``): reservations are held under it and
        a later try of the task frees what an earlier one left (:meth:`Ledger.release_holder`).
    :param event: makes an event of the try (kind, payload, discriminator), stored in the transaction of
        the reservation or settlement it tells of, or alone.
    :param warn: told once per budget window when its spend passes ``warn_at`` (a Slack message).
    """

    store: EventStore
    budgets: Sequence[Budget]
    workflow: str
    run_id: str
    key: str
    ttl: timedelta
    event: MakeEvent
    warn: Warn | None = None
    max_wait: timedelta = MAX_WAIT
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))  # which window a call is in
    _warned: set[tuple[str, str]] = field(default_factory=set, init=False, repr=False)

    def applicable(self, agent: Agent) -> list[Budget]:
        return [b for b in self.budgets if b.applies(self.workflow, agent.name)]

    def _windows(self, budgets: Sequence[Budget]) -> list[str]:
        now = self.clock()
        return [b.window(self.run_id, now) for b in budgets]

    def reserve_in(
        self, conn: Connection, agent: Agent, need: Spend, where: str
    ) -> Reservation | Refusal | None:
        """One attempt in ``conn``'s transaction, its ``budget.reserved`` with it; None when no budget
        applies."""
        budgets = self.applicable(agent)
        if not budgets:
            return None
        got = reserve_in(
            conn, budgets, self._windows(budgets), need, holder_of(f"{self.key}{where}"), self.ttl
        )
        if isinstance(got, Reservation):
            payload = {
                "agent": agent.name,
                "budgets": [list(pair) for pair in got.windows],
                "cost": got.estimate.cost,
                "tokens": got.estimate.tokens,
            }
            self.store.append_in(conn, [self.event("budget.reserved", payload, f"reserved{where}")])
        return got

    def try_reserve(self, agent: Agent, need: Spend, where: str) -> Reservation | Refusal | None:
        """One attempt, in a transaction of its own; None when no budget applies."""
        if not self.applicable(agent):
            return None
        with self.store.engine.begin() as conn:
            return self.reserve_in(conn, agent, need, where)

    def reserve(self, agent: Agent, prompt: str, limits: Any = None, where: str = "") -> Reservation | None:
        """Reserve the call's estimate, waiting while only the calls in flight stand in the way."""
        need, began, delay = estimate(agent, prompt, limits), time.monotonic(), 0.05
        while True:
            got = self.try_reserve(agent, need, where)
            if not self._waits(agent, got, need, where, began):
                return got  # type: ignore[return-value]  # not a Refusal
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    async def areserve(
        self, agent: Agent, prompt: str, limits: Any = None, where: str = "", writes: Writes | None = None
    ) -> Reservation | None:
        """:meth:`reserve` for a coroutine: each attempt in ``writes``' next transaction (else in a thread of
        its own), the waits in the event loop; nothing at all when no budget applies."""
        if not self.applicable(agent):
            return None
        need, began, delay = estimate(agent, prompt, limits), time.monotonic(), 0.05
        while True:
            if writes is None:
                got = await asyncio.to_thread(self.try_reserve, agent, need, where)
            else:
                got = await writes.run(lambda conn: self.reserve_in(conn, agent, need, where))
            if not isinstance(got, Refusal):
                return got
            if not (got.wait and time.monotonic() - began <= self.max_wait.total_seconds()):
                raise await asyncio.to_thread(self._refused, agent, got, need, where)
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def _waits(self, agent: Agent, got: Any, need: Spend, where: str, began: float) -> bool:
        """Whether to ask again (only calls in flight stand in the way, for at most ``max_wait``); a refusal
        for good raises (recorded)."""
        if not isinstance(got, Refusal):
            return False
        if got.wait and time.monotonic() - began <= self.max_wait.total_seconds():
            return True
        raise self._refused(agent, got, need, where)

    def settle_in(
        self,
        conn: Connection,
        agent: Agent,
        reservation: Reservation,
        payload: dict[str, Any] | None,
        where: str,
    ) -> Due:
        """The call ended: in ``conn``'s transaction, its actual use replaces the estimate (or, never having
        reached the model, its reservation goes), with its ``budget.settled``; the warnings now due
        (:meth:`warn_due` sends them once the transaction committed)."""
        used = actual(payload)
        if used is None:
            release_in(conn, reservation)
        else:
            settle_in(conn, reservation, used)
        spent = used or Spend()
        settled = {
            "agent": agent.name,
            "budgets": [list(pair) for pair in reservation.windows],
            "estimate_cost": reservation.estimate.cost,
            "estimate_tokens": reservation.estimate.tokens,
            "cost": spent.cost,
            "tokens": spent.tokens,
            "released": used is None,
        }
        self.store.append_in(conn, [self.event("budget.settled", settled, f"settled{where}")])
        return self._due(conn, reservation)

    def settle(
        self, agent: Agent, reservation: Reservation | None, payload: dict[str, Any] | None, where: str = ""
    ) -> None:
        """:meth:`settle_in` in a transaction of its own, then the warnings due."""
        if reservation is None:
            return
        with self.store.engine.begin() as conn:
            due = self.settle_in(conn, agent, reservation, payload, where)
        self.warn_due(agent, due)

    async def asettle(
        self,
        agent: Agent,
        reservation: Reservation | None,
        payload: dict[str, Any] | None,
        where: str,
        writes: Writes,
    ) -> None:
        """:meth:`settle` for a coroutine: in ``writes``' next transaction."""
        if reservation is None:
            return
        due = await writes.run(lambda conn: self.settle_in(conn, agent, reservation, payload, where))
        if due:
            await asyncio.to_thread(self.warn_due, agent, due)

    def _refused(self, agent: Agent, refusal: Refusal, need: Spend, where: str) -> BudgetExceeded:
        message = f"agent '{agent.name}' may not call its model: {refusal.message(need)}"
        b = refusal.budget
        refused = {
            "agent": agent.name,
            "budget": b.name,
            "window": refusal.window,
            "limit_cost": b.cost,
            "limit_tokens": b.tokens,
            "spent_cost": refusal.settled.cost,
            "spent_tokens": refusal.settled.tokens,
            "in_flight_cost": refusal.reserved.cost,
            "in_flight_tokens": refusal.reserved.tokens,
            "at_limit": b.at_limit,
            "waited": refusal.wait,
        }
        self.store.append([self.event("budget.refused", refused, f"refused{where}")])
        error = BudgetExceeded(message)
        error.budget = b  # type: ignore[attr-defined]
        error.window = refusal.window  # type: ignore[attr-defined]
        return error

    def _due(self, conn: Connection, reservation: Reservation) -> Due:
        """The warnings ``reservation``'s budgets are due, read in ``conn``'s transaction (a window once past
        ``warn_at`` stays past it: no more sums of it in this try)."""
        due: Due = []
        for name, window in reservation.windows:
            budget = next(b for b in self.budgets if b.name == name)
            if budget.warn_at is None or (name, window) in self._warned:
                continue
            settled, reserved = spent_in(conn, budget, window)
            spent = Spend(settled.cost + reserved.cost, settled.tokens + reserved.tokens)
            share = max(
                spent.cost / budget.cost if budget.cost else 0.0,
                spent.tokens / budget.tokens if budget.tokens else 0.0,
            )
            if share >= budget.warn_at:
                due.append((budget, window, spent, share))
        return due

    def warn_due(self, agent: Agent, due: Due) -> None:
        """Each warning of ``due`` once per budget window, whichever run gets there first: its ``budget.warned``
        and the ``warn`` callback (the Slack message)."""
        for budget, window, spent, share in due:
            if (budget.name, window) in self._warned:
                continue
            self._warned.add((budget.name, window))
            warned = Event(
                type="budget.warned",
                run_id=self.run_id,
                workflow=self.workflow,
                key=f"budget.warned|{budget.name}|{window}",  # once per budget window, whichever run gets there
                payload={
                    "budget": budget.name,
                    "window": window,
                    "share": round(share, 4),
                    "cost": spent.cost,
                    "tokens": spent.tokens,
                    "agent": agent.name,
                },
            )
            if self.store.append([warned]) and self.warn is not None:
                self.warn(budget, window, spent)
