"""How a conflicting write to a shared-context key is resolved: the strategies a template may name."""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Any

STRATEGIES = ("reject", "last_writer_wins", "merge", "three_way_merge", "escalate")


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
