"""A routed step's call: its router (ranked or learned), its agent and load slot chosen in one
transaction, and the call made holding the slot (its outcome counted in the agent's circuit breaker)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from baton.budgets.config import budgets_of, dags_folder_of
from baton.coordination.breaker import record_failure, record_success
from baton.coordination.load import Slots
from baton.coordination.routing import Choice, Router
from baton.coordination.waiters import place_of
from baton.errors import BudgetExceeded, TemplateError
from baton.events.event import Event
from baton.spec.roster import Agent

__all__ = ["choose_for_step", "route_and_take", "router_for", "run_in_slot"]


def choose_for_step(
    step: Any, recorder: Any, tried: dict[str, str], agent: Agent | None, log: Any
) -> tuple[Agent, Event]:
    """The agent of this try of ``step`` (a compiled step) and its ``agent.selected`` event: ``agent``
    when a person chose it, the named agent, or the router's best candidate leaving out the agents
    that failed this step in earlier tries (``tried``)."""
    if agent is not None or not step.routed:
        reason = "chosen by a person" if agent is not None else "named by the template"
        agent = agent or step.agent
        payload = {"agent": agent.name, "candidates": [agent.name], "reason": reason}
        return agent, recorder.event("agent.selected", payload, agent=agent.name)
    route = step.spec.route
    router = router_for(step, recorder)
    choice = router.rank(route.capabilities, route.prefer, tried)
    log.info("Step %s routed to %s: %s", step.task_id, choice.agent.name, choice.reason)
    return choice.agent, recorder.event("agent.selected", choice.payload(), agent=choice.agent.name)


def router_for(step: Any, recorder: Any, prefer: str | None = None) -> Router:
    """The router of a routed step (a compiled step): learned when its route says ``learn``, unless a
    budget's fallback asks for another preference (``prefer``: the cheapest that fits, ranked)."""
    route = step.spec.route
    if route.learn and prefer is None:
        return Router.learning(
            recorder.store,
            list(step.candidates),
            recorder.common["workflow"],
            recorder.common["step"],
            route.prefer,
            route.learn,
            _budgets(recorder),
            place=place_of(recorder),
        )
    return Router(recorder.store, list(step.candidates), _budgets(recorder), place=place_of(recorder))


def _budgets(recorder: Any) -> tuple[Any, ...]:
    """The budgets next to the DAG file of the recorder's task (a broken file: none here; the call's own
    reservation then fails the step with the file's errors)."""
    try:
        return budgets_of(dags_folder_of(recorder.context))
    except TemplateError:
        return ()


def route_and_take(
    step: Any,
    recorder: Any,
    tried: dict[str, str],
    holder: str,
    ttl: timedelta,
    log: Any,
    prefer: str | None = None,
) -> tuple[Agent, int]:
    """A routed step's agent and one of its slots, chosen and taken in one transaction (with the try's
    start events and its ``agent.selected``), so that tasks routed at the same moment see each other's
    slots; waits while every candidate is full. ``prefer``: instead of the route's (a budget's fallback:
    ``cheap``, recorded as a second choice of the try)."""
    route = step.spec.route
    router = router_for(step, recorder, prefer)
    router.stats()

    start = recorder.start_events()  # read before the transaction (a second SQLite one would wait for it)

    def events(choice: Choice) -> list[Event]:
        recorder.common["agent"] = choice.agent.name
        again = "budget fallback" if prefer else ""  # the try's second choice: its own event
        selected = recorder.event("agent.selected", choice.payload(), again, agent=choice.agent.name)
        named = [replace(e, agent=choice.agent.name) if e.type == "step.started" else e for e in start]
        return [*named, selected]

    delay, since = 0.02, time.monotonic()
    while True:
        try:
            with recorder.store.engine.begin() as conn:
                taken = router.take_best(
                    conn, route.capabilities, prefer or route.prefer, tried, holder, ttl, events, since
                )
        except IntegrityError:
            taken = None  # another process took that slot between our read and our insert: ask again
        if taken is not None:
            choice, slot = taken
            log.info("Step %s routed to %s: %s", step.task_id, choice.agent.name, choice.reason)
            return choice.agent, slot
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def run_in_slot(
    recorder: Any,
    agent: Agent,
    holder: str,
    ttl: timedelta,
    events: Sequence[Event],
    work: Any,
    slot: int | None = None,
) -> Any:
    """``work()`` holding one of ``agent``'s load slots (taken with ``events`` in one transaction, unless
    ``slot`` is one taken already); its failure or success counts in the agent's circuit breaker."""
    slots = Slots(recorder.store, place_of(recorder))
    if slot is None:
        slot = slots.take(agent, holder, ttl, events)
    try:
        output = work()
    except Exception as error:
        if not isinstance(error, BudgetExceeded):  # the agent did not fail: its budget did
            record_failure(recorder, agent, error)
        raise
    finally:
        slots.release(agent.name, slot)
    record_success(recorder, agent)
    return output
