"""How a conflicting write to a shared-context key is resolved: the strategies a template may name, as a
registry of resolvers (one function each), keyed by the names the template language accepts.

A resolver gets the :class:`Conflict` (the value written, what it was written over, what is there now)
and returns the value to write and the outcome recorded (``overwrote``, ``merged``, ``retried``); it
raises :class:`Unresolved` when it cannot, with the error the writer gets and the outcome recorded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from baton.errors import ContextConflict
from baton.spec.models import STRATEGIES  # the names a template may use

__all__ = ["RESOLVERS", "STRATEGIES", "Conflict", "Unresolved", "deep_merge", "merge3"]


def deep_merge(current: Any, mine: Any) -> Any:
    """Maps merge key by key (recursively), lists are united (current's order, then mine's new items),
    anything else: mine wins."""
    if isinstance(current, dict) and isinstance(mine, dict):
        merged = dict(current)
        for key, value in mine.items():
            merged[key] = deep_merge(current[key], value) if key in current else value
        return merged
    if isinstance(current, list) and isinstance(mine, list):
        return current + [item for item in mine if item not in current]
    return mine


def _changes(base: list[str], other: list[str]) -> list[tuple[int, int, list[str]]]:
    """(start, end, replacement) of every region of ``base`` that ``other`` changed."""
    matcher = SequenceMatcher(None, base, other, autojunk=False)
    return [(i1, i2, other[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def _apply(base: list[str], changes: list[tuple[int, int, list[str]]], start: int, end: int) -> list[str]:
    out, position = [], start
    for i1, i2, lines in changes:
        out += base[position:i1] + lines
        position = i2
    return out + base[position:end]


def _joins(change: tuple, start: int, end: int) -> bool:
    """Whether a change belongs to the region [start, end) of the changes before it."""
    i1, i2 = change[0], change[1]
    return i1 < end or (i1 == end and (i1 == i2 or start == end))


def merge3(base: str, current: str, mine: str) -> str | None:
    """A line-based three-way merge of two edits of ``base``; None when they edit the same lines
    differently. Changes to different lines merge, adjacent ones too; changes that overlap, or an
    insertion at the edge of another change (whose order would be a guess), are one region."""
    lines = base.splitlines(keepends=True)
    tagged = sorted(
        [(i1, i2, new, "current") for i1, i2, new in _changes(lines, current.splitlines(keepends=True))]
        + [(i1, i2, new, "mine") for i1, i2, new in _changes(lines, mine.splitlines(keepends=True))]
    )
    result: list[str] = []
    position = 0
    index = 0
    while index < len(tagged):
        start, end = tagged[index][0], tagged[index][1]
        cluster = [tagged[index]]
        index += 1
        while index < len(tagged) and _joins(tagged[index], start, end):
            end = max(end, tagged[index][1])
            cluster.append(tagged[index])
            index += 1
        versions = {
            side: _apply(lines, [(i1, i2, new) for i1, i2, new, who in cluster if who == side], start, end)
            for side in {who for *_, who in cluster}
        }
        if len(versions) == 2 and versions["current"] != versions["mine"]:
            return None
        result += lines[position:start] + next(iter(versions.values()))
        position = end
    return "".join(result + lines[position:])


class ContextEscalation(ContextConflict):
    """A write lost a race and its key's strategy is ``escalate``: a person must decide."""

    def __init__(self, message: str, key: str, current: Any, proposed: Any):
        super().__init__(message)
        self.key, self.current, self.proposed = key, current, proposed


@dataclass(frozen=True)
class Conflict:
    """A write over a version that is no longer the latest."""

    key: str
    value: Any  # what the writer writes
    base: Callable[[], Any]  # the value of the version it read (read only when a resolver needs it)
    current: Any  # the latest value
    writer: str
    other: str  # who wrote the latest version
    base_version: int
    current_version: int
    recompute: Callable[[Any], Any] | None  # ``reject``'s optimistic retry: a new value from the latest


class Unresolved(Exception):
    """A resolver's answer that there is no value to write: ``error`` for the writer, ``outcome`` recorded."""

    def __init__(self, outcome: str, error: ContextConflict, detail: str = ""):
        super().__init__(str(error))
        self.outcome, self.error, self.detail = outcome, error, detail


def _last_writer_wins(c: Conflict) -> tuple[Any, str]:
    return c.value, "overwrote"


def _merge(c: Conflict) -> tuple[Any, str]:
    return deep_merge(c.current, c.value), "merged"


def _three_way_merge(c: Conflict) -> tuple[Any, str]:
    texts = (c.base() or "", c.current, c.value)
    if not all(isinstance(text, str) for text in texts):
        raise Unresolved(
            "unresolved", ContextConflict(f"three_way_merge of '{c.key}' needs text values"), "not text"
        )
    merged = merge3(*texts)
    if merged is None:
        raise Unresolved(
            "unresolved",
            ContextConflict(f"context key '{c.key}': {c.writer} and {c.other} edited the same lines"),
            "both edited the same lines",
        )
    return merged, "merged"


def _escalate(c: Conflict) -> tuple[Any, str]:
    message = f"context key '{c.key}': {c.writer} and {c.other} disagree; a person must decide"
    raise Unresolved("escalated", ContextEscalation(message, c.key, c.current, c.value))


def _reject(c: Conflict) -> tuple[Any, str]:
    if c.recompute is not None:
        return c.recompute(c.current), "retried"
    raise Unresolved(
        "rejected",
        ContextConflict(
            f"context key '{c.key}' changed to version {c.current_version} (by {c.other}) after {c.writer} read "
            f"version {c.base_version}; read it again and retry"
        ),
    )


RESOLVERS: dict[str, Callable[[Conflict], tuple[Any, str]]] = {
    "reject": _reject,
    "last_writer_wins": _last_writer_wins,
    "merge": _merge,
    "three_way_merge": _three_way_merge,
    "escalate": _escalate,
}
if set(RESOLVERS) != set(STRATEGIES):  # the template language and the resolvers must name the same ones
    raise ImportError(f"context strategies {sorted(STRATEGIES)} and resolvers {sorted(RESOLVERS)} differ")
