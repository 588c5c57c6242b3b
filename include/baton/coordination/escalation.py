"""Escalation to a person: Airflow's human-in-the-loop, asked by the step's own task.

The step's task writes a HITL request (shown on the Required Actions page, answered there or
through the REST API's ``hitlDetails`` endpoint) and parks in Airflow's ``awaiting_input`` state.
The answer resumes the same task, in ``AgentOperator.resume_escalation``: the person's output
becomes the step's output, so downstream steps read it as they would an agent's, with no extra
task in the DAG.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict

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
    """Write the HITL request for this task instance; the caller then raises ``awaiting``."""
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
