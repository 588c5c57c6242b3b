"""The circuit breaker's events: a failure or success of an agent, recorded under the step that saw it."""

from __future__ import annotations

from typing import Any

from baton.coordination.load import Breakers
from baton.spec.roster import Agent


def record_failure(recorder: Any, agent: Agent, error: BaseException) -> bool:
    """Count a failure of ``agent``; whether that opened its breaker (then an event says until when)."""
    from baton.events.recorder import redact

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
