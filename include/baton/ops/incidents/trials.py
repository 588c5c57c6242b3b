"""The trials of a circuit a runbook opened: a circuit held open is a trial's business, not quiet's (an
agent that gets no work has no failures, whether it recovered or not). ``probe_after`` the opening it goes
half-open (``probe_circuit``: the agent's next call is a trial); a failed trial holds it open again, and
the incident may resolve only once a trial passed, or no call came within ``probe_for``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from baton.ops.incidents.model import (
    Action,
    Book,
    Incident,
    Step,
    Transition,
    TrialSeen,
    action_transition,
    transition,
)
from baton.spec.monitoring import Monitoring
from baton.spec.runbooks import OpenCircuit


def circuit(incident: Incident, config: Monitoring) -> tuple[Step, OpenCircuit] | None:
    """The runbook's issued ``open_circuit`` step of ``incident`` that has trials, and its settings."""
    runbook = config.runbooks.get(incident.kind, [])
    for step in incident.steps:
        if step.outcome == "issued" and step.do == "open_circuit" and step.step < len(runbook):
            spec = runbook[step.step]
            if isinstance(spec, OpenCircuit) and spec.probe_after is not None:
                return step, spec
    return None


def move_trial(
    incident: Incident,
    now: datetime,
    config: Monitoring,
    trials: Mapping[str, TrialSeen],
    transitions: list[Transition],
    actions: list[Action],
) -> Incident:
    """Move the trial of the circuit the runbook opened: half-open it ``probe_after`` it was held, then
    hold it again when its trial failed, or note that it passed (the agent's success closed it)."""
    found = circuit(incident, config)
    if found is None or incident.trial not in ("held", "half_open") or incident.trial_since is None:
        return incident
    step, spec = found
    if incident.trial == "held":
        if now - incident.trial_since < spec.probe_after:
            return incident
        number = incident.trials + 1
        update = {"trial": "half_open", "trial_since": now, "trials": number, "updated_at": now}
        return _with_action(
            incident.model_copy(update=update),
            step,
            "probe_circuit",
            f"trial/{number}",
            now,
            transitions,
            actions,
        )
    seen = trials.get(step.target.removeprefix("agent:"), "pending")
    if seen == "pending":
        return incident
    update = {"trial": "held", "trial_since": now} if seen == "failed" else {"trial": "passed"}
    moved = incident.model_copy(update={**update, "updated_at": now})
    outcome = {
        "failed": "failed: the agent's trial call failed; its circuit is held open again",
        "passed": "passed: the agent's trial call succeeded and closed its circuit",
    }[seen]
    transitions.append(
        transition("incident.updated", now, moved, False, trial=incident.trials, trial_outcome=outcome)
    )
    if seen == "failed":
        hold = f"trial/{incident.trials}/hold"
        return _with_action(moved, step, "open_circuit", hold, now, transitions, actions)
    return moved


def _with_action(
    incident: Incident,
    step: Step,
    do: str,
    suffix: str,
    now: datetime,
    transitions: list[Transition],
    actions: list[Action],
) -> Incident:
    """Issue the action ``do`` on ``step``'s target under the id ``<incident id>/<suffix>``; ``incident``."""
    action = Action(
        id=f"{incident.id}/{suffix}", incident_id=incident.id, step=step.step, do=do, target=step.target
    )
    actions.append(action)
    transitions.append(action_transition(now, incident, action))
    return incident


def half_open_agents(book: Book) -> set[str]:
    """The agents whose circuit an incident of ``book`` half-opened: whose trial the caller reads."""
    return {
        step.target.removeprefix("agent:")
        for incident in book.incidents.values()
        if incident.trial == "half_open"
        for step in incident.steps
        if step.do == "open_circuit"
    }


def may_resolve(incident: Incident, now: datetime, config: Monitoring) -> bool:
    """A quiet incident resolves unless the circuit its runbook opened is still to be tried: held, or
    half-open and still waiting (within ``probe_for``) for its trial call."""
    found = circuit(incident, config)
    if incident.stopped_by is not None or found is None or incident.trial in (None, "passed"):
        return True
    _, spec = found
    waited = now - incident.trial_since if incident.trial_since else spec.probe_for
    return incident.trial == "half_open" and waited >= spec.probe_for
