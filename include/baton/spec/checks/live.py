"""A step's checks of its live outputs (``evaluate:``) against what its output is: a field it does not have,
a check its type or ``enum`` can never pass (the datasets' rules, :func:`baton.spec.expect.field_issues`), a
step with nothing to check (a person's, whose answer is checked by the person)."""

from __future__ import annotations

from collections.abc import Iterator

from baton.spec.checks.common import Found
from baton.spec.expect import field_issues, judge_problem, output_types
from baton.spec.models import Workflow
from baton.spec.roster import Roster
from baton.spec.step import PersonStep


def _check_live(workflow: Workflow, roster: Roster | None = None) -> Iterator[Found]:
    for index, step in enumerate(workflow.steps):
        if step.evaluate is None:
            continue
        loc = ("steps", index, "evaluate")
        if isinstance(step, PersonStep):
            yield loc, "a person's step has no output of a model or a skill to check", "remove 'evaluate'"
            continue
        yield from field_issues((*loc, "checks"), step.evaluate.checks, output_types(step))
        judge = step.evaluate.judge
        if judge is not None and (problem := judge_problem(judge, roster)):
            yield (*loc, "judge"), *problem


__all__ = ["_check_live"]
