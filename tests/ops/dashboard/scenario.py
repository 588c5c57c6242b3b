"""Runs told as events, for the dashboard's tests: each helper appends what Baton's writers would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from baton.events.event import Event
from baton.events.store import EventStore

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Run:
    """One run's events, appended as the writers would (a step's start with its agent, its end, ...)."""

    def __init__(self, store: EventStore, run_id: str, workflow: str = "lead_scoring", at: datetime = T0):
        self.store, self.run_id, self.workflow, self.at = store, run_id, workflow, at
        self.append(Event(type="run.started", payload={"run_type": "manual"}, **self._common(at)))

    def _common(self, at: datetime) -> dict[str, Any]:
        return {"run_id": self.run_id, "workflow": self.workflow, "template_version": 2, "ts": at}

    def append(self, *events: Event) -> None:
        self.store.append(list(events))

    def event(self, kind: str, seconds: float, step: str, try_number: int = 1, **fields: Any) -> Event:
        common = self._common(self.at + timedelta(seconds=seconds))
        payload = fields.pop("payload", {})
        return Event(type=kind, payload=payload, step=step, try_number=try_number, **common, **fields)

    def start(self, step: str, at: float, agent: str | None = "scorer", try_number: int = 1, **more) -> None:
        events = [self.event("step.started", at, step, try_number, agent=agent, **more)]
        if agent:
            selected = {"agent": agent, "candidates": [agent], "reason": "named"}
            events.append(
                self.event("agent.selected", at, step, try_number, agent=agent, payload=selected, **more)
            )
        self.append(*events)

    def succeed(
        self, step: str, at: float, took: float, agent: str | None = "scorer", try_number: int = 1, **more
    ):
        payload = {"duration_s": took}
        self.append(self.event("step.succeeded", at, step, try_number, agent=agent, payload=payload, **more))

    def fail(
        self, step: str, at: float, agent: str | None = "scorer", try_number: int = 1, retry: bool = True
    ):
        payload = {"error_class": "AgentError", "error": "timeout", "will_retry": retry}
        events = [self.event("step.failed", at, step, try_number, agent=agent, payload=payload)]
        if retry:
            events.append(
                self.event("step.retried", at, step, try_number, payload={"next_try": try_number + 1})
            )
        self.append(*events)

    def model(self, step: str, at: float, agent: str, cost: float, try_number: int = 1) -> None:
        payload = {
            "model": "m",
            "cost": cost,
            "latency_s": 0.5,
            "prompt_sha256": "ab" * 32,
            "prompt_chars": 9,
        }
        self.append(self.event("model.called", at, step, try_number, agent=agent, payload=payload))

    def conflict(
        self, step: str, at: float, outcome: str | None, try_number: int = 1, **resolved: Any
    ) -> list[Event]:
        """A context conflict on the key 'k' (strategy merge) and, unless ``outcome`` is None, its resolution."""
        conflict = {"key": "k", "strategy": "merge", "base_version": 1, "current_version": 2}
        found = {**conflict, "writer": "a", "other_writer": "b"}
        events = [self.event("context.conflict", at, step, try_number, payload=found, discriminator=f"{at}")]
        if outcome is not None:
            ended = {"key": "k", "strategy": "merge", "outcome": outcome, **resolved}
            events.append(
                self.event("context.resolved", at, step, try_number, payload=ended, discriminator=f"{at}")
            )
        return events

    def end(self, at: float, ok: bool = True) -> None:
        kind = "run.succeeded" if ok else "run.failed"
        self.append(
            Event(type=kind, payload={"duration_s": at}, **self._common(self.at + timedelta(seconds=at)))
        )
