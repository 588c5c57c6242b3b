"""The circuit breaker's events (a failure or success of an agent, recorded under the step that saw it),
and the half-open trial an incident's runbook gives a circuit it held open."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select, update

from baton.coordination.load import HALF_OPEN, Breakers, _now
from baton.events import schema
from baton.events.recorder import redact
from baton.events.store import EventStore
from baton.spec.roster import Agent


def record_failure(recorder: Any, agent: Agent, error: BaseException) -> bool:
    """Count a failure of ``agent``; whether that opened its breaker (then an event says until when)."""
    message = redact(f"{type(error).__name__}: {error}")
    failures, until = Breakers(recorder.store).failure(agent, message)
    if until is None:
        return False
    recorder.record(
        recorder.event(
            "agent.breaker_opened",
            {
                "agent": agent.name,
                "failures": failures,
                "until": until.isoformat(),
                "last_error": message[:500],
            },
            discriminator=f"{agent.name}@{until.isoformat()}",
            agent=agent.name,
        )
    )
    return True


def record_success(recorder: Any, agent: Agent) -> None:
    """Reset ``agent``'s failures; an event when that closes an opened breaker."""
    if Breakers(recorder.store).success(agent.name):
        recorder.record(
            recorder.event(
                "agent.breaker_closed", {"agent": agent.name}, discriminator=agent.name, agent=agent.name
            )
        )


def half_open(store: EventStore, agent: str) -> bool:
    """Let a trial call through the circuit an incident's runbook holds open: routing takes the agent
    again, and its next failure opens the circuit at once (whatever its ``failures``), its next success
    closes it. Whether the agent had a circuit to half-open."""
    h = schema.agent_health.c
    values = {"opened_until": None, "consecutive_failures": HALF_OPEN, "updated_at": _now()}
    with store.engine.begin() as conn:
        return conn.execute(update(schema.agent_health).where(h.agent == agent).values(**values)).rowcount > 0


def trials(store: EventStore, agents: Iterable[str], conn: Connection | None = None) -> dict[str, str]:
    """What each of ``agents``' half-opened circuits saw: ``pending`` (no call yet), ``passed`` (a success
    closed it) or ``failed`` (a failure, or anything else, opened it again). An agent with no row: passed
    (nothing holds it)."""
    names = list(agents)
    h = schema.agent_health.c
    query = select(h.agent, h.consecutive_failures, h.opened_until).where(h.agent.in_(names))
    if conn is not None:
        rows = conn.execute(query).all()
    else:
        with store.engine.connect() as own:
            rows = own.execute(query).all()
    seen = {name: "passed" for name in names}
    for agent, failures, until in rows:
        seen[agent] = "failed" if until is not None else "pending" if failures >= HALF_OPEN else "passed"
    return seen
