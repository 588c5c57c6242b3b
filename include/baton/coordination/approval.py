"""A person gives a step's output: they review an agent's draft (``escalate: human``, a person step, a
``reviewed`` step), or supply the output, or pick another agent, once every agent failed (``escalate:``).

Two kinds of :mod:`~baton.coordination.questions`: ``review`` and ``escalation``; the answer becomes
the step's output, validated like an agent's. A reviewer's approval, edit or rejection of a draft is
also a ``feedback.recorded`` verdict, which learned routing learns from.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from airflow.sdk import Param

from baton import templating
from baton.agents.outputs import output_model
from baton.coordination.questions import (
    FAIL,
    REJECT,
    USE_OUTPUT,
    Answer,
    Question,
    StepHandler,
    body,
    register,
    timeout_of,
)
from baton.coordination.routing import NoCandidate
from baton.events.recorder import redact

APPROVE = "Approve"
RETRY_WITH = "Retry with "

_JSON_TYPES = {"string", "integer", "number", "boolean", "array", "object"}


def output_params(output_spec: Any, draft: dict[str, Any] | None) -> dict[str, Param]:
    """Form fields for a step's output (its declared fields, or ``text``), filled with ``draft``."""
    draft = draft or {}
    if isinstance(output_spec, dict):
        params = {}
        for name, spec in output_spec.items():
            kind = spec.get("type", "string")
            kind = kind if kind in _JSON_TYPES else "string"
            params[name] = Param(
                draft.get(name),
                type=[kind, "null"],
                description=spec.get("description") or f"the step's '{name}'",
            )
        return params
    if output_spec is None:
        return {"text": Param(draft.get("text"), type=["string", "null"], description="the step's answer")}
    # A registered output model: the person gives it as JSON.
    return {
        "output": Param(
            draft or None, type=["object", "null"], description=f"the step's output ({output_spec}), as JSON"
        )
    }


def params_to_output(output_spec: Any, params_input: dict[str, Any]) -> dict[str, Any]:
    """The step's output from what the person filled in."""
    if isinstance(output_spec, str):
        value = params_input.get("output")
        return json.loads(value) if isinstance(value, str) else dict(value or {})
    return {key: value for key, value in params_input.items() if value is not None}


def given_output(answer: Answer, step: Any) -> Any:
    """The output the person typed in, validated against the step's output model when it has one."""
    output = params_to_output(step.output_spec, answer.params)
    model = output_model(step.task_id, step.output_spec)
    return model.model_validate(output).model_dump(mode="json") if model else output


def agent_options(step: Any) -> list[str]:
    """``Retry with <agent>`` for each agent that may do the step."""
    if step.routed:
        wanted = set(step.spec.route.capabilities)
        agents = [a for a in step.candidates if wanted <= set(a.capabilities)]
    else:
        agents = [step.agent] if step.agent else []
    return [RETRY_WITH + a.name for a in agents]


def review_question(
    step: Any, context: Any, scope: dict[str, Any], draft: dict[str, Any] | None, who: str = ""
) -> Question:
    """``escalate: human``: a person approves or edits ``who``'s output (``draft``), or supplies it."""
    escalate = step.spec.escalate
    instruction = templating.render(step.spec.instruction, scope) if step.spec.instruction else ""
    return Question(
        kind=Review.kind,
        subject=escalate.subject or f"{step.workflow}.{step.task_id}: review",
        body=body(
            step,
            context,
            (f"**Instruction:** {instruction}\n\n" if instruction else "")
            + (
                f"**{who}** proposes the output in the form; approve it, edit it, or reject it."
                if draft is not None
                else "Fill in the step's output."
            ),
        ),
        options=[APPROVE, USE_OUTPUT, REJECT] if draft is not None else [USE_OUTPUT, REJECT],
        params=output_params(step.output_spec, draft),
        defaults=[APPROVE] if escalate.default == "accept" and draft is not None else None,
        timeout=timeout_of(step),
        state={"draft": draft},
        reason="the template asks a person to review this step",
    )


VERDICTS = {APPROVE: ("approve", 1.0), USE_OUTPUT: ("edit", 0.5), REJECT: ("reject", 0.0)}


class Review(StepHandler):
    """A person approves a draft (it is the output), edits it or types the output (the form is)."""

    kind: ClassVar[str] = "review"

    def apply(self, answer: Answer, run: Any, scope: dict[str, Any], versions: dict[str, int]) -> Any:
        if answer.choice == APPROVE:
            return answer.state["draft"]
        return given_output(answer, run.step)

    def verdict(self, answer: Answer) -> dict[str, Any] | None:
        """A person's review of an agent's draft as a ``feedback.recorded`` payload: approved 1, edited
        0.5, rejected 0. None when nobody judged a draft (the timeout's default, an output typed from
        scratch)."""
        if answer.timed_out or not answer.chosen or answer.state.get("draft") is None:
            return None
        if answer.choice not in VERDICTS:
            return None
        name, score = VERDICTS[answer.choice]
        return {"score": score, "verdict": name, "source": "review", "by": answer.by[:250]}


class Escalation(StepHandler):
    """Every agent failed a step that escalates: a person gives the output, retries with an agent of
    their choice, or fails the step. Asked of any failure, so its rank puts it after every other kind."""

    kind: ClassVar[str] = "escalation"
    rank: ClassVar[int] = 100

    def on_failure(self, error: BaseException, run: Any) -> Question | None:
        """Every candidate failed (no candidate left, or the last try failed) and ``escalate`` is set;
        None: the failure stands (or is retried)."""
        step, context = run.step, run.context
        if step.spec.escalate is None or isinstance(error, KeyboardInterrupt | SystemExit):
            return None
        ti = context["ti"]
        if not (isinstance(error, NoCandidate) or ti.try_number > getattr(ti, "max_tries", 0)):
            return None
        reason = redact(f"{type(error).__name__}: {error}")[:2000]
        current = run.recorder.common["agent"]
        agents = sorted({*run.tried(), *([current] if current else [])})
        return Question(
            kind=self.kind,
            subject=step.spec.escalate.subject
            or f"{step.workflow}.{step.task_id} needs a person: every agent failed",
            body=body(
                step,
                context,
                f"The step failed and no agent is left to try.\n\n**Reason:** {reason}\n\n"
                f"**Agents tried:** {', '.join(agents) or 'none'}\n\n"
                "Give the output below, retry with an agent of your choice, or fail the step.",
            ),
            options=[USE_OUTPUT, *agent_options(step), FAIL],
            params=output_params(step.output_spec, None),
            timeout=timeout_of(step),
            state={"reason": reason},
            reason=reason,
        )

    def apply(self, answer: Answer, run: Any, scope: dict[str, Any], versions: dict[str, int]) -> Any:
        step = run.step
        if answer.choice.startswith(RETRY_WITH):
            name = answer.choice[len(RETRY_WITH) :]
            agent = next((a for a in step.candidates if a.name == name), None) or step.agent
            return run.call(scope, agent)
        return given_output(answer, step)


register(Review())
register(Escalation())
