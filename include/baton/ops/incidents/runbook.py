"""The runbook's steps of an incident: issued in order as their time comes (each once: an action's id is
``<incident id>/<step>``), skipped when they cannot act on the incident's scope, and at resolution the
undoing of what was done (newest first) and the ``retry_failed_runs`` steps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from baton.ops.incidents.model import (
    Action,
    Incident,
    Step,
    Transition,
    action_transition,
    transition,
)
from baton.ops.incidents.trials import circuit
from baton.spec.monitoring import Monitoring
from baton.spec.runbooks import REVERSIBLE, OpenCircuit, RetryFailedRuns


def _target(do: str, where: str) -> tuple[str | None, str]:
    """The agent or workflow an action acts on, or None and why it cannot act on ``where``.

    ``retry_failed_runs`` on an agent retries the runs that failed at one of its steps."""
    scope, _, name = where.partition(":")
    workflow = f"workflow:{name.split('.', 1)[0]}" if scope == "step" and "." in name else None
    if do in ("open_circuit", "lower_concurrency"):
        return (
            (where, "") if scope == "agent" else (None, f"{do} acts on an agent; this incident is on {where}")
        )
    if do == "pause_workflow":
        if scope == "workflow" or workflow:
            return workflow or where, ""
        return None, f"{do} acts on a workflow; this incident is on {where}"
    if do == "retry_failed_runs":
        if scope in ("workflow", "agent") or workflow:
            return workflow or where, ""
        return None, f"{do} acts on a workflow or an agent's runs; this incident is on {where}"
    return where, ""


def due_steps(
    incident: Incident,
    now: datetime,
    config: Monitoring,
    transitions: list[Transition],
    actions: list[Action],
) -> Incident:
    """Issue, in order, the runbook steps whose time has come; a step waits for the one before it."""
    done = {step.id for step in incident.steps}
    steps = list(incident.steps)
    for index, spec in enumerate(config.runbooks.get(incident.kind, [])):
        if isinstance(spec, RetryFailedRuns):
            continue  # runs when the incident resolves (the cause is gone)
        action_id = f"{incident.id}/{index}"
        if action_id in done:
            continue
        if now < incident.opened_at + spec.after:
            break
        target, why = _target(spec.do, incident.where)
        if spec.do == "escalate" and incident.status == "acknowledged":
            target, why = None, f"acknowledged by {incident.acknowledged_by}: someone is on it"
        if target is None:
            steps.append(
                Step(id=action_id, step=index, do=spec.do, target=incident.where, outcome="skipped", why=why)
            )
            transitions.append(
                transition(
                    "incident.action", now, incident, False, action_id=action_id, do=spec.do, skipped=why
                )
            )
            continue
        params: dict[str, Any] = {}
        if spec.do == "lower_concurrency":
            params = {"to": spec.to}
        elif spec.do == "escalate":
            params = {"to": spec.to, "incident": incident.summary()}
        action = Action(
            id=action_id, incident_id=incident.id, step=index, do=spec.do, target=target, params=params
        )
        steps.append(Step(id=action_id, step=index, do=spec.do, target=target, outcome="issued"))
        actions.append(action)
        transitions.append(action_transition(now, incident, action))
        if isinstance(spec, OpenCircuit) and spec.probe_after is not None and incident.trial is None:
            incident = incident.model_copy(update={"trial": "held", "trial_since": now})
    return incident.model_copy(update={"steps": steps}) if len(steps) != len(incident.steps) else incident


def resolve(incident: Incident, now: datetime, config: Monitoring) -> tuple[list[Action], list[Transition]]:
    """The resolution: its transition, then (unless a person stopped the runbook) the undoing of what
    was done, newest first, and the ``retry_failed_runs`` steps. A circuit a trial closed, or left
    half-open, is not closed again."""
    quiet = now - incident.last_seen_at
    detail: dict[str, Any] = {"healthy_for_s": quiet.total_seconds()}
    tried = circuit(incident, config) is not None and incident.trial in ("passed", "half_open")
    if tried:
        detail["circuit"] = (
            "closed by a trial call that succeeded"
            if incident.trial == "passed"
            else "half-open: no call came to try the agent (its next failure opens it, a success closes it)"
        )
    transitions = [transition("incident.resolved", now, incident, True, **detail)]
    actions: list[Action] = []
    if incident.stopped_by is not None:
        return actions, transitions
    for step in reversed(incident.steps):
        if tried and step.do == "open_circuit":
            continue
        if step.outcome == "issued" and step.do in REVERSIBLE:
            actions.append(
                Action(
                    id=f"{incident.id}/undo/{step.step}",
                    incident_id=incident.id,
                    step=step.step,
                    do=REVERSIBLE[step.do],
                    target=step.target,
                )
            )
    for index, spec in enumerate(config.runbooks.get(incident.kind, [])):
        if not isinstance(spec, RetryFailedRuns):
            continue
        target, why = _target(spec.do, incident.where)
        action_id = f"{incident.id}/{index}"
        if target is None:
            transitions.append(
                transition(
                    "incident.action", now, incident, False, action_id=action_id, do=spec.do, skipped=why
                )
            )
            continue
        params = {"max_runs": spec.max_runs, "failed_since": incident.opened_at.isoformat()}
        actions.append(
            Action(
                id=action_id, incident_id=incident.id, step=index, do=spec.do, target=target, params=params
            )
        )
    transitions.extend(action_transition(now, incident, action) for action in actions)
    return actions, transitions
