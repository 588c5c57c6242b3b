"""The steps as a graph: unique ids, known needs, no cycle (found iteratively), and which step is upstream of
which."""

from __future__ import annotations

import graphlib
from collections.abc import Iterator
from pathlib import Path

from baton.spec.checks.common import TEMPLATE_SUFFIXES, Found, _suggest
from baton.spec.models import Workflow
from baton.spec.rollout import VERSIONS_DIR


def _check_name(workflow: Workflow, path: Path) -> Iterator[Found]:
    if path.parent.name == VERSIONS_DIR:  # a version being rolled out: <workflow>.v<version>.yaml
        wanted = f"{workflow.workflow}.v{workflow.version}"
        if path.suffix.lower() in TEMPLATE_SUFFIXES and path.stem != wanted:
            yield (
                ("workflow",),
                f"a version's file is named after its workflow and version: '{path.name}' holds "
                f"{workflow.workflow} version {workflow.version}",
                f"rename the file to {wanted}.yaml",
            )
        return
    if path.suffix.lower() in TEMPLATE_SUFFIXES and workflow.workflow != path.stem:
        yield (
            ("workflow",),
            f"workflow id '{workflow.workflow}' differs from the file name '{path.name}'",
            f"rename the file to {workflow.workflow}.yaml or set workflow: {path.stem}",
        )


def _check_steps(workflow: Workflow) -> Iterator[Found]:
    ids = [step.id for step in workflow.steps]
    first: dict[str, int] = {}
    for index, step_id in enumerate(ids):
        first.setdefault(step_id, index)
    for index, step in enumerate(workflow.steps):
        if first[step.id] != index:
            yield (
                ("steps", index, "id"),
                f"duplicate step id '{step.id}' (first at steps[{first[step.id]}])",
                "give every step its own id",
            )
        for position, need in enumerate(step.needs):
            if need == step.id:
                yield (
                    ("steps", index, "needs", position),
                    f"step '{step.id}' needs itself",
                    "remove it from needs",
                )
            elif need not in first:
                yield (
                    ("steps", index, "needs", position),
                    f"needs unknown step '{need}'",
                    _suggest(need, ids),
                )
    if cycle := find_cycle({step.id: [n for n in step.upstream if n in first] for step in workflow.steps}):
        yield (
            ("steps", first[cycle[0]], "needs"),
            f"dependency cycle: {' -> '.join(cycle)}",
            "remove one of these needs so the steps form a chain",
        )


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle in ``graph`` (node -> the nodes it needs) as a closed path, or None.

    Iterative (a chain of a thousand steps must not exhaust Python's recursion): a depth-first walk
    with an explicit stack of (node, its needs not yet visited)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in graph:
        if root in state:
            continue
        state[root] = 1
        path = [root]
        pending = [iter(graph.get(root, []))]
        while pending:
            need = next(pending[-1], None)
            if need is None:
                state[path.pop()] = 2
                pending.pop()
            elif need == path[-1] or state.get(need) == 2:
                continue  # a step needing itself is reported as "needs itself"
            elif state.get(need) == 1:
                return [*path[path.index(need) :], need]
            else:
                state[need] = 1
                path.append(need)
                pending.append(iter(graph.get(need, [])))
    return None


class Ancestry:
    """Which steps are upstream of which (transitively), as one bit set per step: linear in memory
    for the usual workflow, and a thousand-step chain costs a thousand integers, not a million set
    entries. Assumes no cycle (``find_cycle`` first)."""

    def __init__(self, workflow: Workflow):
        self.order = {step.id: index for index, step in enumerate(workflow.steps)}
        needs = {step.id: [n for n in step.upstream if n in self.order] for step in workflow.steps}
        self.bits: dict[str, int] = {}
        try:
            order = list(graphlib.TopologicalSorter(needs).static_order())
        except graphlib.CycleError:  # reported by _check_steps; nothing is "not upstream" then
            order, self.cyclic = [], True
        else:
            self.cyclic = False
        for step_id in order:
            bits = 0
            for need in needs.get(step_id, ()):
                bits |= self.bits[need] | (1 << self.order[need])
            self.bits[step_id] = bits

    def is_upstream(self, other: str, of: str) -> bool:
        """Whether step ``other`` is upstream of step ``of``."""
        if self.cyclic:
            return other in self.order
        return other in self.order and bool(self.bits.get(of, 0) >> self.order[other] & 1)

    def of(self, step_id: str) -> set[str]:
        """Every step upstream of ``step_id``."""
        bits = self.bits.get(step_id, 0)
        return {name for name, index in self.order.items() if bits >> index & 1}


def ancestors(workflow: Workflow) -> dict[str, set[str]]:
    """Each step id -> every step upstream of it (transitively); assumes no cycle."""
    ancestry = Ancestry(workflow)
    return {step.id: ancestry.of(step.id) for step in workflow.steps}
