"""Asking a person: Airflow's human-in-the-loop, asked by the task that needs the answer.

The task writes a HITL request (shown on the Required Actions page, answered there, with ``baton
approve`` or through the REST API's ``hitlDetails`` endpoint) and parks in Airflow's ``awaiting_input``
state. The answer resumes the same task (its operator's ``resume_escalation``), which hands it to the
handler of the question's kind.

This module knows no kind of question. Each kind has a :class:`Handler`, owned by the module of what it
asks about (a budget in :mod:`~baton.coordination.spend`, a fan-out's failed items in
:mod:`~baton.coordination.partial_failure`, a shared-context conflict in
:mod:`~baton.coordination.conflict`, a stuck compensation in :mod:`~baton.coordination.compensation`, a
step's output in :mod:`~baton.coordination.approval`), which registers it when it is imported; the task
that asks imports the modules of the kinds it may ask. A new kind is a new handler: nothing here changes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import AirflowFailException, TaskAwaitingInput
from airflow.sdk.execution_time.hitl import upsert_hitl_detail

from baton.coordination.waiting import how_to_answer, stop_on_sigterm_under_test
from baton.errors import AgentError

# Options more than one kind offers; a person's Fail or Reject ends the step for good.
USE_OUTPUT = "Use the output below"
REJECT = "Reject"
FAIL = "Fail the step"


@dataclass(frozen=True)
class Question:
    """One request to a person: what the Required Actions page shows, and what to resume with."""

    kind: str  # names the handler its answer goes to
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


def ask(context: Any, question: Question) -> None:
    """Write the HITL request for this task instance, and log how to answer it; the caller then raises
    :func:`awaiting`."""
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
    return TaskAwaitingInput(
        method_name="resume_escalation",
        kwargs={"kind": question.kind, "state": question.state},
        timeout=question.timeout,
    )


class PersonDecided(AgentError, AirflowFailException):
    """A person failed or rejected the step: their decision is final, no retry asks them again."""


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


# --- the handlers of the kinds ---------------------------------------------------------------------


class Handler:
    """What one kind of question does: when a failure raises it, and what its answer does.

    ``kind`` names the questions it handles; ``rank`` orders :func:`on_failure` (lower first: a
    handler that takes any failure goes last).
    """

    kind: ClassVar[str] = ""
    rank: ClassVar[int] = 0

    def on_failure(self, error: BaseException, run: Any) -> Question | BaseException | None:
        """What ``error``, which ends a step's try (``run``: its ``StepRun``), calls for of this kind: a
        question to ask, an exception that parks the task otherwise, or None (not this kind's)."""
        return None

    def resume(self, host: Any, event: Any, state: dict[str, Any]) -> Any:
        """The task resumed with ``event`` (the person's answer): by default, the host that asked goes on
        with it (``host.answered(self, answer)``)."""
        return host.answered(self, Answer.of(event, self.kind, state))


class StepHandler(Handler):
    """A kind a step asks: the answer becomes the step's output (:meth:`apply`), written as its output is
    (context, assets) when ``finishes``; :meth:`verdict` is what a person's answer says of an agent's work."""

    finishes: ClassVar[bool] = True

    def apply(self, answer: Answer, run: Any, scope: dict[str, Any], versions: dict[str, int]) -> Any:
        raise NotImplementedError

    def verdict(self, answer: Answer) -> dict[str, Any] | None:
        """A ``feedback.recorded`` payload when the answer judged an agent's work; None otherwise."""
        return None


_HANDLERS: dict[str, Handler] = {}


def register(handler: Handler) -> Handler:
    """Make ``handler`` the one for its kind (its module registers it when imported)."""
    if not handler.kind:
        raise ValueError(f"{type(handler).__name__} names no kind")
    _HANDLERS[handler.kind] = handler
    return handler


def handler_for(kind: str) -> Handler:
    """The handler of ``kind``; an :class:`AgentError` naming the known kinds when none registered it."""
    try:
        return _HANDLERS[kind]
    except KeyError:
        known = ", ".join(sorted(_HANDLERS)) or "none"
        raise AgentError(f"No handler answers a question of kind '{kind}' (known: {known})") from None


def on_failure(error: BaseException, run: Any) -> Question | BaseException | None:
    """The first registered kind, by rank, that ``error`` calls for: its question, or the exception that
    parks the task; None when no kind does (the failure stands, or is retried)."""
    for handler in sorted(_HANDLERS.values(), key=lambda h: h.rank):
        found = handler.on_failure(error, run)
        if found is not None:
            return found
    return None


# --- what every step's question says --------------------------------------------------------------


def json_block(value: Any) -> str:
    return f"```json\n{json.dumps(value, indent=2, default=str)[:4000]}\n```"


def body(step: Any, context: Any, text: str) -> str:
    """The Required Actions page's text: where, then what."""
    run_id = context["ti"].run_id
    return f"**Workflow** `{step.workflow}` · **run** `{run_id}` · **step** `{step.task_id}`\n\n{text}"


def timeout_of(step: Any) -> timedelta | None:
    """How long a step's question waits: its ``escalate.timeout``."""
    escalate = step.spec.escalate
    return escalate.timeout if escalate is not None else None
