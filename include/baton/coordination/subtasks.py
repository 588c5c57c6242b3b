"""The items of a fan-out as subtasks (an id, dependencies and capabilities of their own), what one batch
of them gave, and the output of a for_each step joined from its batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from baton.errors import AgentError


@dataclass(frozen=True)
class Subtask:
    id: str
    index: int
    item: Any
    depends_on: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()


def subtasks_of(items: list[Any], start: int = 0) -> list[Subtask]:
    """Subtasks from list items: a map's ``id``, ``depends_on`` (or ``dependencies``) and
    ``capabilities`` are used when present; any other item is a subtask ``item_<n>``."""
    subtasks, seen = [], set()
    for offset, item in enumerate(items):
        index = start + offset
        if isinstance(item, dict):
            sid = str(item.get("id") or f"item_{index}")
            depends = item.get("depends_on") or item.get("dependencies") or []
            capabilities = item.get("capabilities") or item.get("required_capabilities") or []
        else:
            sid, depends, capabilities = f"item_{index}", [], []
        if sid in seen:
            sid = f"{sid}_{index}"
        seen.add(sid)
        subtasks.append(Subtask(sid, index, item, tuple(map(str, depends)), tuple(map(str, capabilities))))
    return subtasks


class SubtaskError(AgentError):
    def __init__(self, message: str, agents: list[str], recorded: bool = False):
        super().__init__(message)
        self.agents = agents
        self.recorded = recorded  # whether its subtask.failed event is stored already


@dataclass
class BatchResult:
    """The items of one batch that succeeded and that failed."""

    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {id, agent, output}
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {id, error, agents}


def join_batches(value: Any) -> dict[str, Any] | None:
    """The output of a for_each step: its batches' results and failures, in list order."""
    batches = [value] if isinstance(value, dict) else [v for v in (value or []) if isinstance(v, dict)]
    if not batches:
        return None
    return {
        "results": [r for b in batches for r in b.get("results", [])],
        "failures": [f for b in batches for f in b.get("failures", [])],
        "total": sum(b.get("total", 0) for b in batches),
    }
