"""What Baton does about an incident by itself (``monitoring.runbooks`` of ``dags/monitoring.yaml``): the
actions, in order, per incident type, with what undoes each reversible one when the incident resolves."""

from __future__ import annotations

import difflib
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from baton.spec.common import Span, Strict
from baton.spec.detectors import DAY, MINUTE, TICK_BOUNDS, Count

Person = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
_AFTER = Field(
    default=timedelta(0), description="how long after the incident opened (and is still open) it runs"
)


class OpenCircuit(Strict):
    """Open the agent's circuit: routing leaves it out and reroutes its work to agents with the same
    capabilities. After ``probe_after`` the circuit goes half-open: the agent's next call is a trial. A
    failed trial holds the circuit open again (another trial ``probe_after`` later); a passed one closes
    it, and only then may the incident resolve: an agent that gets no work cannot show it recovered by
    being quiet. ``probe_after: null`` holds the circuit until the incident resolves, then closes it."""

    do: Literal["open_circuit"]
    after: Span(timedelta(0), 7 * DAY) = _AFTER
    probe_after: Span(TICK_BOUNDS[0], 7 * DAY) | None = Field(
        default=5 * MINUTE,
        description="how long the circuit is held open before a trial call may try the agent (half-open); "
        "null: no trial, the circuit closes when the incident resolves",
    )
    probe_for: Span(MINUTE, 7 * DAY) = Field(
        default=15 * MINUTE,
        description="how long a half-open circuit waits for its trial call; when none came, the incident "
        "may resolve with the circuit left half-open (its next failure opens it, a success closes it)",
    )


class LowerConcurrency(Strict):
    """Lower the agent's concurrency (its pool's slots) to ``to``; restored when the incident resolves."""

    do: Literal["lower_concurrency"]
    to: Count = Field(ge=1, le=1024, description="the slots the agent keeps")
    after: Span(timedelta(0), 7 * DAY) = _AFTER


class PauseWorkflow(Strict):
    """Pause the workflow (its DAG): no new runs; resumed when the incident resolves."""

    do: Literal["pause_workflow"]
    after: Span(timedelta(0), 7 * DAY) = _AFTER


class RetryFailedRuns(Strict):
    """Once the incident resolves (the cause is gone), retry the runs that failed while it was open."""

    do: Literal["retry_failed_runs"]
    max_runs: Count = Field(
        default=20, ge=1, le=1000, description="retry at most this many runs, newest first"
    )


class Escalate(Strict):
    """Hand the incident, with its evidence, to a person (or a group) who must act on it."""

    do: Literal["escalate"]
    to: Person = Field(description="who: a person's or a group's handle, as the alert channel knows it")
    after: Span(timedelta(0), 7 * DAY) = _AFTER


RunbookAction = Annotated[
    OpenCircuit | LowerConcurrency | PauseWorkflow | RetryFailedRuns | Escalate, Field(discriminator="do")
]
ACTIONS = ("open_circuit", "lower_concurrency", "pause_workflow", "retry_failed_runs", "escalate")
REVERSIBLE = {
    "open_circuit": "close_circuit",
    "lower_concurrency": "restore_concurrency",
    "pause_workflow": "resume_workflow",
}
"""The action that undoes each reversible one when its incident resolves."""


def _unknown_action(value: Any) -> PydanticCustomError:
    text = str(value)[:100]
    close = difflib.get_close_matches(text, ACTIONS, n=1)
    return PydanticCustomError(
        "unknown_action",
        "unknown action '{value}'{hint}: use one of {actions}",
        {
            "value": text,
            "hint": f" (did you mean '{close[0]}'?)" if close else "",
            "actions": ", ".join(ACTIONS),
        },
    )


def _shorthand(value: Any) -> Any:
    """``- open_circuit`` is ``- {do: open_circuit}``; an unknown action is named with the known ones."""
    if isinstance(value, str):
        if value not in ACTIONS:
            raise _unknown_action(value)
        return {"do": value}
    if isinstance(value, dict):
        if "do" not in value:
            raise PydanticCustomError(
                "action_without_do",
                "an action needs 'do', one of {actions}, e.g. {do: lower_concurrency, to: 1}",
                {"actions": ", ".join(ACTIONS)},
            )
        if value["do"] not in ACTIONS:
            raise _unknown_action(value["do"])
    return value


Runbook = Annotated[list[Annotated[RunbookAction, BeforeValidator(_shorthand)]], Field(max_length=20)]

DEFAULT_RUNBOOKS: dict[str, list[dict[str, Any]]] = {
    "failure_rate": [
        {"do": "open_circuit"},
        {"do": "escalate", "to": "on-call", "after": 15 * MINUTE},
        {"do": "retry_failed_runs"},
    ],
    "schema_failure_rate": [{"do": "escalate", "to": "on-call", "after": 15 * MINUTE}],
    "reask_rate": [{"do": "escalate", "to": "on-call", "after": 30 * MINUTE}],
    "escalation_rate": [{"do": "escalate", "to": "on-call"}],
    "latency": [{"do": "escalate", "to": "on-call", "after": 15 * MINUTE}],
    "queue_wait": [{"do": "escalate", "to": "on-call", "after": 30 * MINUTE}],
    "cost": [{"do": "escalate", "to": "on-call"}],
    "sensor_lag": [{"do": "escalate", "to": "on-call", "after": 15 * MINUTE}],
    "sensor_silence": [{"do": "escalate", "to": "on-call"}],
    "runs_started": [{"do": "escalate", "to": "on-call"}, {"do": "retry_failed_runs"}],
}
