"""A conflict on the shared context that a person settles: a write to a key whose strategy is
``escalate`` lost a race (:class:`~baton.context.strategies.ContextEscalation`, raised by
:mod:`baton.context.step`). The person keeps the current value, takes the step's, or types another;
their choice is the context write, and the step's output is what it was before the conflict.

The ``conflict`` kind of :mod:`~baton.coordination.questions`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.sdk import Param

from baton.context.step import settle_conflict
from baton.context.strategies import ContextEscalation
from baton.coordination.questions import (
    FAIL,
    Answer,
    Question,
    StepHandler,
    body,
    json_block,
    register,
    timeout_of,
)
from baton.events.recorder import redact

KEEP_CURRENT = "Keep the current value"
USE_MINE = "Use this step's value"
USE_VALUE = "Use the value below"


def conflict_question(error: ContextEscalation, step: Any, context: Any) -> Question:
    """Keep the current value of ``error.key``, take the step's, or type another."""
    return Question(
        kind=Conflict.kind,
        subject=f"{step.workflow}.{step.task_id}: conflicting writes to context key '{error.key}'",
        body=body(
            step,
            context,
            f"{redact(str(error))}\n\nCurrent value:\n\n{json_block(error.current)}"
            f"\n\nThis step's value:\n\n{json_block(error.proposed)}",
        ),
        options=[KEEP_CURRENT, USE_MINE, USE_VALUE, FAIL],
        params={
            "value": Param(
                None,
                type=["object", "array", "string", "number", "null"],
                description="the value to keep",
            )
        },
        timeout=timeout_of(step),
        state={"key": error.key, "proposed": error.proposed, "output": getattr(error, "output", None)},
        reason=f"conflict on context key '{error.key}'",
    )


class Conflict(StepHandler):
    """The person's value is written over the key's current version; the step's output is the one it had
    (its context write is the answer itself, so the step does not write its context again)."""

    kind: ClassVar[str] = "conflict"
    finishes: ClassVar[bool] = False

    def on_failure(self, error: BaseException, run: Any) -> Question | None:
        if isinstance(error, ContextEscalation):
            return conflict_question(error, run.step, run.context)
        return None

    def apply(self, answer: Answer, run: Any, scope: dict[str, Any], versions: dict[str, int]) -> Any:
        state = answer.state
        if answer.choice != KEEP_CURRENT:
            value = state["proposed"] if answer.choice == USE_MINE else answer.params.get("value")
            settle_conflict(run.recorder.store, run.step, run.context, state["key"], value)
        return state.get("output")


register(Conflict())
