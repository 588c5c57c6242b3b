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
from typing import Any

from baton.budgets.ledger import Ledger, Refusal, Reservation, Spend, holder_of
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


Record = Callable[[str, dict[str, Any], str], None]
Warn = Callable[[Budget, str, Spend], None]


@dataclass
class Guard:
    """The budgets of one try's model calls.

    :param key: the try's key (``<run>/<task>[<map index>]#<try>``): reservations are held under it and
        a later try of the task frees what an earlier one left (:meth:`Ledger.release_holder`).
    :param record: records an event of the try (kind, payload, discriminator).
    :param warn: told once per budget window when its spend passes ``warn_at`` (a Slack message).
    """

    store: EventStore
    budgets: Sequence[Budget]
    workflow: str
    run_id: str
    key: str
    ttl: timedelta
    record: Record
    warn: Warn | None = None
    max_wait: timedelta = MAX_WAIT
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))  # which window a call is in
    _ledger: Ledger = field(init=False, repr=False)
    _warned: set[tuple[str, str]] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        self._ledger = Ledger(self.store)

    def applicable(self, agent: Agent) -> list[Budget]:
        return [b for b in self.budgets if b.applies(self.workflow, agent.name)]

    def _windows(self, budgets: Sequence[Budget]) -> list[str]:
        now = self.clock()
        return [b.window(self.run_id, now) for b in budgets]

    def try_reserve(self, agent: Agent, need: Spend, where: str) -> Reservation | Refusal | None:
        """One attempt; None when no budget applies."""
        budgets = self.applicable(agent)
        if not budgets:
            return None
        holder = holder_of(f"{self.key}{where}")
        return self._ledger.reserve(budgets, self._windows(budgets), need, holder, self.ttl)

    def reserve(self, agent: Agent, prompt: str, limits: Any = None, where: str = "") -> Reservation | None:
        """Reserve the call's estimate, waiting while only the calls in flight stand in the way."""
        need, began, delay = estimate(agent, prompt, limits), time.monotonic(), 0.05
        while True:
            got = self.try_reserve(agent, need, where)
            if not self._waits(agent, got, need, where, began):
                return self._reserved(agent, got, where)
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    async def areserve(
        self, agent: Agent, prompt: str, limits: Any = None, where: str = ""
    ) -> Reservation | None:
        """:meth:`reserve` for a coroutine: the store's work in a thread, the waits in the event loop."""
        need, began, delay = estimate(agent, prompt, limits), time.monotonic(), 0.05
        while True:
            got = await asyncio.to_thread(self.try_reserve, agent, need, where)
            if not await asyncio.to_thread(self._waits, agent, got, need, where, began):
                return await asyncio.to_thread(self._reserved, agent, got, where)
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

    def settle(
        self, agent: Agent, reservation: Reservation | None, payload: dict[str, Any] | None, where: str = ""
    ) -> None:
        """The call ended: its actual use replaces the estimate (or, never having reached the model, its
        reservation goes); then the warnings its budgets are due."""
        if reservation is None:
            return
        used = actual(payload)
        if used is None:
            self._ledger.release(reservation)
        else:
            self._ledger.settle(reservation, used)
        spent = used or Spend()
        self.record(
            "budget.settled",
            {
                "agent": agent.name,
                "budgets": [list(pair) for pair in reservation.windows],
                "estimate_cost": reservation.estimate.cost,
                "estimate_tokens": reservation.estimate.tokens,
                "cost": spent.cost,
                "tokens": spent.tokens,
                "released": used is None,
            },
            f"settled{where}",
        )
        self._warnings(agent, reservation)

    def _reserved(self, agent: Agent, reservation: Reservation | None, where: str) -> Reservation | None:
        if reservation is None:
            return None
        try:
            self.record(
                "budget.reserved",
                {
                    "agent": agent.name,
                    "budgets": [list(pair) for pair in reservation.windows],
                    "cost": reservation.estimate.cost,
                    "tokens": reservation.estimate.tokens,
                },
                f"reserved{where}",
            )
        except BaseException:
            self._ledger.release(reservation)  # not held by a call that will not run
            raise
        return reservation

    def _refused(self, agent: Agent, refusal: Refusal, need: Spend, where: str) -> BudgetExceeded:
        message = f"agent '{agent.name}' may not call its model: {refusal.message(need)}"
        b = refusal.budget
        self.record(
            "budget.refused",
            {
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
            },
            f"refused{where}",
        )
        error = BudgetExceeded(message)
        error.budget = b  # type: ignore[attr-defined]
        error.window = refusal.window  # type: ignore[attr-defined]
        return error

    def _warnings(self, agent: Agent, reservation: Reservation) -> None:
        for name, window in reservation.windows:
            budget = next(b for b in self.budgets if b.name == name)
            if budget.warn_at is None or (name, window) in self._warned:
                continue  # once past warn_at, a window stays past it: no more sums of it in this try
            settled, reserved = self._ledger.spent(budget, window)
            spent = Spend(settled.cost + reserved.cost, settled.tokens + reserved.tokens)
            share = max(
                spent.cost / budget.cost if budget.cost else 0.0,
                spent.tokens / budget.tokens if budget.tokens else 0.0,
            )
            if share < budget.warn_at:
                continue
            self._warned.add((name, window))
            warned = Event(
                type="budget.warned",
                run_id=self.run_id,
                workflow=self.workflow,
                key=f"budget.warned|{name}|{window}",  # once per budget window, whichever run gets there
                payload={
                    "budget": name,
                    "window": window,
                    "share": round(share, 4),
                    "cost": spent.cost,
                    "tokens": spent.tokens,
                    "agent": agent.name,
                },
            )
            if self.store.append([warned]) and self.warn is not None:
                self.warn(budget, window, spent)
