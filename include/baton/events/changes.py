"""What a batch of events changes in the projections' rows, one change per row: ``summaries`` folds the events
into a ``Changes`` (pure), ``summary_writes`` writes it. A leaf of ``baton.events``, so that neither of the two
imports the other's module for these types."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

TaskKey = tuple[str, str, int]  # run id, step, map index
HourKey = tuple[datetime, str, str, str]  # hour, workflow, step, agent


@dataclass
class RunChange:
    workflow: str
    template_version: int | None
    started_at: datetime
    state: str = "running"
    ended_at: datetime | None = None
    duration_s: float | None = None
    counts: Counter = field(default_factory=Counter)


@dataclass
class TaskChange:
    try_number: int
    state: str | None = None
    agent: str | None = None
    started_s: float | None = None
    ended_s: float | None = None
    seconds: float = 0.0
    asked_s: float | None = None
    question: str | None = None
    answered: bool = False  # a question answered after the last one this batch asked
    open_end: float | None = None  # a failed try's end whose start is in the table, not in this batch


@dataclass
class Changes:
    runs: dict[str, RunChange] = field(default_factory=dict)
    run_agents: dict[str, list[str]] = field(default_factory=dict)  # agents chosen, in order, per run
    tasks: dict[TaskKey, TaskChange] = field(default_factory=dict)
    hours: dict[HourKey, list[float]] = field(default_factory=dict)  # tries, failures, ok seconds, opens
    calls: list[dict[str, Any]] = field(default_factory=list)
    agents: dict[str, datetime] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.runs or self.run_agents or self.tasks or self.hours or self.calls or self.agents)
