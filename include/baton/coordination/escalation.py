"""Escalation to a person: Airflow's human-in-the-loop, asked by the step's own task.

The step's task writes a HITL request (shown on the Required Actions page, answered there or
through the REST API's ``hitlDetails`` endpoint) and parks in Airflow's ``awaiting_input`` state.
The answer resumes the same task, in ``AgentOperator.resume_escalation``: the person's output
becomes the step's output, so downstream steps read it as they would an agent's, with no extra
task in the DAG.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import AirflowFailException

from baton.errors import AgentError

# The options a person is offered, by what is asked.
USE_OUTPUT = "Use the output below"
APPROVE = "Approve"
REJECT = "Reject"
FAIL = "Fail the step"
RETRY_WITH = "Retry with "
CONTINUE = "Continue without them"
RETRY_FAILED = "Retry the failed subtasks"
KEEP_CURRENT = "Keep the current value"
USE_MINE = "Use this step's value"
USE_VALUE = "Use the value below"

_JSON_TYPES = {"string", "integer", "number", "boolean", "array", "object"}


@dataclass(frozen=True)
class Question:
    """One request to a person: what the Required Actions page shows, and what to resume with."""

    kind: str  # escalation | review | partial_failure | conflict
    subject: str
    body: str
    options: list[str]
    params: dict[str, Param] = field(default_factory=dict)
    defaults: list[str] | None = None
    timeout: timedelta | None = None
    state: dict[str, Any] = field(default_factory=dict)  # JSON, handed back on resume
    reason: str = ""

    def serialized_params(self) -> dict[str, Any]:
        params = ParamsDict(self.params)
        return {key: params.get_param(key).serialize() for key in params}


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


def ask(context: Any, question: Question) -> None:
    """Write the HITL request for this task instance, and log how to answer it; the caller then raises
    ``awaiting``."""
    from airflow.sdk.execution_time.hitl import upsert_hitl_detail

    upsert_hitl_detail(
        ti_id=context["task_instance"].id,
        options=question.options,
        subject=question.subject,
        body=question.body,
        defaults=question.defaults,
        multiple=False,
        params=question.serialized_params(),
        assigned_users=None,
    )
    from baton.coordination.waiting import how_to_answer, stop_on_sigterm_under_test

    logging.getLogger("baton.escalation").warning("%s", how_to_answer(context, question))
    stop_on_sigterm_under_test(context)


def requested_payload(question: Question) -> dict[str, Any]:
    """The ``approval.requested`` event's payload for ``question`` (no form values: they may be personal)."""
    return {
        "subject": question.subject[:500],
        "options": question.options,
        "kind": question.kind,
        "reason": question.reason[:1000],
        "timeout_s": question.timeout.total_seconds() if question.timeout else None,
    }


def awaiting(question: Question) -> BaseException:
    """The exception that parks the task until the person answers (Airflow 3.3 ``awaiting_input``)."""
    from airflow.sdk.exceptions import TaskAwaitingInput

    return TaskAwaitingInput(
        method_name="resume_escalation",
        kwargs={"kind": question.kind, "state": question.state},
        timeout=question.timeout,
    )


class PersonDecided(AgentError, AirflowFailException):
    """A person failed or rejected the step: their decision is final, no retry asks them again."""


# --- the questions --------------------------------------------------------------------------------


def json_block(value: Any) -> str:
    return f"```json\n{json.dumps(value, indent=2, default=str)[:4000]}\n```"


def body(step: Any, context: Any, text: str) -> str:
    """The Required Actions page's text: where, then what."""
    run_id = context["ti"].run_id
    return f"**Workflow** `{step.workflow}` · **run** `{run_id}` · **step** `{step.task_id}`\n\n{text}"


def timeout_of(step: Any) -> timedelta | None:
    escalate = step.spec.escalate
    return escalate.timeout if escalate is not None else None


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
    from baton import templating

    escalate = step.spec.escalate
    instruction = templating.render(step.spec.instruction, scope) if step.spec.instruction else ""
    return Question(
        kind="review",
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


def conflict_question(error: Any, step: Any, context: Any) -> Question:
    """A write to a shared-context key whose strategy is ``escalate`` lost a race: keep the current value,
    take the step's, or type another."""
    from baton.events.recorder import redact

    return Question(
        kind="conflict",
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


def question_for(
    error: BaseException, step: Any, context: Any, tried: dict[str, str], current: str | None
) -> Question | None:
    """The question for a person when ``error`` ends the step and the template escalates it: a context
    conflict on an ``escalate`` key; or every candidate failed (no candidate left, or the last try
    failed) with ``escalate`` set. None: the failure stands (or is retried).

    :param tried: agents that failed this step in earlier tries; ``current``: this try's agent.
    """
    from baton.context.store import ContextEscalation
    from baton.coordination.routing import NoCandidate
    from baton.events.recorder import redact

    if isinstance(error, ContextEscalation):
        return conflict_question(error, step, context)
    from baton.coordination import spend

    if (held := spend.held(error)) is not None and held.budget.at_limit == "ask":  # not yet raised
        return spend.question(held.budget, held.window, step, context, [])
    if step.spec.escalate is None or isinstance(error, KeyboardInterrupt | SystemExit):
        return None
    ti = context["ti"]
    if not (isinstance(error, NoCandidate) or ti.try_number > getattr(ti, "max_tries", 0)):
        return None
    reason = redact(f"{type(error).__name__}: {error}")[:2000]
    agents = sorted({*tried, *([current] if current else [])})
    return Question(
        kind="escalation",
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


def partial_failure_question(
    step: Any, context: Any, failures: list[dict[str, Any]], total: int, batch: list[int] | None
) -> Question:
    """``partial_failure: escalate``: some items of a fan-out failed; a person decides."""
    summary = "; ".join(f"{f['id']}: {f['error']}" for f in failures[:5])
    return Question(
        kind="partial_failure",
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


# --- the answers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What a person answered (or what the timeout's defaults chose), with the question's state."""

    kind: str
    chosen: list[str]
    params: dict[str, Any]
    by: str
    timed_out: bool
    state: dict[str, Any]

    @classmethod
    def of(cls, event: dict[str, Any], kind: str, state: dict[str, Any]) -> Answer:
        by = event.get("responded_by_user") or {}
        return cls(
            kind=kind,
            chosen=list(event.get("chosen_options") or []),
            params=dict(event.get("params_input") or {}),
            by=(by.get("name") or by.get("id") or "") if isinstance(by, dict) else str(by),
            timed_out=bool(event.get("timedout")),
            state=state,
        )

    @property
    def choice(self) -> str:
        return self.chosen[0]

    def payload(self) -> dict[str, Any]:
        """The ``approval.answered`` payload: who chose what, and which fields they filled (not the values)."""
        return {
            "chosen": self.chosen,
            "by": self.by,
            "timed_out": self.timed_out,
            "fields": sorted(k for k, v in self.params.items() if v is not None),
        }

    def raise_if_refused(self, task_id: str) -> None:
        """No answer fails the try; a person's Fail or Reject fails the step for good."""
        if not self.chosen:
            raise AgentError(f"Step '{task_id}': the request to a person ended without an answer")
        if self.choice in (FAIL, REJECT):
            raise PersonDecided(
                f"Step '{task_id}': {self.by or 'the timeout default'} chose '{self.choice}' "
                f"({self.state.get('reason', self.kind)})"
            )


VERDICTS = {APPROVE: ("approve", 1.0), USE_OUTPUT: ("edit", 0.5), REJECT: ("reject", 0.0)}


def verdict(answer: Answer) -> dict[str, Any] | None:
    """A person's review of an agent's draft as a ``feedback.recorded`` payload: approved 1, edited 0.5,
    rejected 0. None when nobody judged a draft (the timeout's default, an output typed from scratch)."""
    if answer.kind != "review" or answer.timed_out or not answer.chosen or answer.state.get("draft") is None:
        return None
    if answer.choice not in VERDICTS:
        return None
    name, score = VERDICTS[answer.choice]
    return {"score": score, "verdict": name, "source": "review", "by": answer.by[:250]}


def apply(answer: Answer, run: Any, scope: dict[str, Any], versions: dict[str, int]) -> Any:
    """The step's output from the person's answer; ``run`` is the step's :class:`StepRun`."""
    step, choice, state = run.step, answer.choice, answer.state
    if choice == APPROVE:
        return state["draft"]
    if choice.startswith(RETRY_WITH):
        name = choice[len(RETRY_WITH) :]
        agent = next((a for a in step.candidates if a.name == name), None) or step.agent
        return run.call(scope, agent)
    if answer.kind == "budget":  # raised once: the calls it held back go on
        from baton.budgets.config import budgets_of, dags_folder_of
        from baton.coordination.spend import raise_once

        raise_once(answer, budgets_of(dags_folder_of(run.context)), run.recorder)
        return run.fan_out(scope, versions) if step.fan_out else run.call(scope)
    if answer.kind == "partial_failure":
        return _partial_failure_output(answer, run, scope, versions)
    if answer.kind == "conflict":
        if choice != KEEP_CURRENT:
            from baton.context.step import settle_conflict

            value = state["proposed"] if choice == USE_MINE else answer.params.get("value")
            settle_conflict(run.recorder.store, step, run.context, state["key"], value)
        return state.get("output")
    from baton.agents.outputs import output_model

    output = params_to_output(step.output_spec, answer.params)
    model = output_model(step.task_id, step.output_spec)
    return model.model_validate(output).model_dump(mode="json") if model else output


def _partial_failure_output(answer: Answer, run: Any, scope: dict[str, Any], versions: dict[str, int]) -> Any:
    if answer.choice == RETRY_FAILED:
        return run.fan_out(scope, versions)
    from baton.coordination.fanout import FanOut

    done = FanOut(run.step, run.context, scope, run.recorder, run.ttl, run.log).done_before()
    failures = answer.state.get("failures", [])
    if answer.choice == USE_OUTPUT:
        given = answer.params.get("outputs") or {}
        for failure in failures:
            if failure["id"] in given:
                done[failure["id"]] = {"id": failure["id"], "agent": None, "output": given[failure["id"]]}
        failures = [f for f in failures if f["id"] not in given]
    return {"results": list(done.values()), "failures": failures, "total": len(done) + len(failures)}
