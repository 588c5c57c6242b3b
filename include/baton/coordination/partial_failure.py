"""``for_each.partial_failure: escalate``: some items of a fan-out failed, and a person decides at the
batch's join whether the step goes on without them, retries them, or takes outputs they type in.

The ``partial_failure`` kind of :mod:`~baton.coordination.questions`: the fan-out's join asks
(:func:`partial_failure_question`), and the answer resumes the step here.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.sdk import Param

from baton.coordination.questions import (
    FAIL,
    USE_OUTPUT,
    Answer,
    Question,
    StepHandler,
    body,
    register,
    timeout_of,
)

CONTINUE = "Continue without them"
RETRY_FAILED = "Retry the failed subtasks"


def partial_failure_question(
    step: Any, context: Any, failures: list[dict[str, Any]], total: int, batch: list[int] | None
) -> Question:
    """Some items of a fan-out failed (``failures``, of ``total``); a person decides."""
    summary = "; ".join(f"{f['id']}: {f['error']}" for f in failures[:5])
    return Question(
        kind=PartialFailure.kind,
        subject=f"{step.workflow}.{step.task_id}: {len(failures)} of {total} subtasks failed",
        body=body(
            step,
            context,
            f"These subtasks failed:\n\n{summary}\n\nContinue without them, retry them, give their outputs "
            "below (JSON: subtask id -> output), or fail the step.",
        ),
        options=[CONTINUE, RETRY_FAILED, USE_OUTPUT, FAIL],
        params={"outputs": Param(None, type=["object", "null"], description="subtask id -> output")},
        timeout=timeout_of(step),
        state={"failures": failures, "batch": batch},
        reason=summary[:1000],
    )


class PartialFailure(StepHandler):
    """Retry: the batch runs again (its finished items reused). Otherwise the step's output is the items
    that succeeded in any try, with the outputs the person gave for failed ones, and the failures left."""

    kind: ClassVar[str] = "partial_failure"

    def apply(self, answer: Answer, run: Any, scope: dict[str, Any], versions: dict[str, int]) -> Any:
        if answer.choice == RETRY_FAILED:
            return run.fan_out(scope, versions)
        done = run.fan(scope).done_before()
        failures = answer.state.get("failures", [])
        if answer.choice == USE_OUTPUT:
            given = answer.params.get("outputs") or {}
            for failure in failures:
                if failure["id"] in given:
                    done[failure["id"]] = {"id": failure["id"], "agent": None, "output": given[failure["id"]]}
            failures = [f for f in failures if f["id"] not in given]
        return {"results": list(done.values()), "failures": failures, "total": len(done) + len(failures)}


register(PartialFailure())
