"""A step's ``require:`` guards: each condition is checked before the step's work when it reads only the
run's scope, after it when it reads ``output``; a false one refuses the step for good (no retry: a
business rule such as "an order above 1,000 units is refused"), with the template's message."""

from __future__ import annotations

from typing import Any

from baton import templating
from baton.agents.skills import final
from baton.errors import RequirementFailed


def reads_output(check: str) -> bool:
    """Whether a requirement's condition reads the step's ``output`` (then it is checked after the work)."""
    return "output" in templating.analyse(check, expression=True).unknown


def check_requirements(step: Any, scope: dict[str, Any], *, after: bool, where: str = "") -> None:
    """Check ``step``'s requirements of one phase (``after``: those that read ``output``, which ``scope``
    then holds). Raises a :class:`RequirementFailed` that Airflow does not retry, naming the step (or
    ``where``: a fan-out item) and the failed condition."""
    for index, need in enumerate(step.spec.require):
        if reads_output(need.check) != after:
            continue
        if not templating.evaluate(need.check, scope):
            message = templating.render(need.message, scope)
            who = where or f"step '{step.task_id}'"
            raise refused(f"{who} refused by require[{index}] ({need.check}): {message}")


def refused(message: str) -> Exception:
    """A :class:`RequirementFailed` that Airflow fails without a retry (the condition will not change)."""
    return final(RequirementFailed)(message)
