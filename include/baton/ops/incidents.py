"""Incidents: a pure state machine from this minute's anomalies to incident transitions and runbook actions.

The state is a :class:`Book` (JSON-ready: ``book.model_dump(mode="json")`` and ``Book.model_validate``
round-trip), kept by the caller as a projection of the ``incident.*`` events. :func:`evaluate` takes the
book, this minute's anomalies and the time, and returns an :class:`Outcome`: the next book, the
transitions to record as events, and the runbook actions due now. :func:`acknowledge` and :func:`stop`
are what a person does. Nothing reads a clock; the same inputs give the same outputs.

- An anomaly is keyed by its fingerprint, ``kind@where`` (``failure_rate@agent:x``): the first opens an
  incident, the next ones update it and add to its count, so a storm is one incident with a count.
- An incident resolves once no anomaly of its fingerprint came for ``incidents.resolve_after``.
- An open, unacknowledged incident goes one severity up every ``escalate_after`` (or at ``escalate_count``).
- Acknowledged: updates stop notifying, severity stays, ``escalate`` steps are skipped (someone is on it).
- In a maintenance window: a new anomaly opens nothing (one ``incident.suppressed`` per window), an
  open incident neither notifies nor gets actions until the window ends.
- Runbook steps run in order, each once ``after`` has passed since the incident opened; an action's id
  is ``<incident id>/<step>``, recorded in the book when issued, so no step is ever issued twice. When
  the incident resolves, what was done is undone (the circuit closed, concurrency restored, the
  workflow resumed) and ``retry_failed_runs`` runs. A person's ``stop`` halts every further action.
- A circuit the runbook opened is a trial's business, not quiet's: an agent that gets no work has no
  failures, whether it recovered or not. ``probe_after`` the opening the circuit goes half-open
  (``probe_circuit``: the agent's next call is a trial); the caller says what each half-open circuit
  saw (``trials``: pending, passed, failed). A failed trial holds the circuit open again, and another
  comes ``probe_after`` later; the incident resolves only once a trial passed (or, when no call came
  within ``probe_for``, with the circuit left half-open), and the signal has been quiet.
"""

# long: one state machine: its records, transitions and runbook steps

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from baton.errors import BatonError
from baton.ops.monitoring_config import (
    REVERSIBLE,
    SEVERITIES,
    Monitoring,
    OpenCircuit,
    Person,
    RetryFailedRuns,
    Severity,
    SignalKind,
)

MAX_EVIDENCE = 32 * 1024  # bytes of JSON an anomaly's evidence may take


class IncidentError(BatonError, LookupError):
    """An incident that is not open was named, or time went backwards."""


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a time without a timezone is ambiguous: pass an aware datetime (UTC)")
    return value


Instant = Annotated[datetime, AfterValidator(_aware)]


def _check_now(now: datetime) -> datetime:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise IncidentError(f"'now' must be an aware datetime (UTC), got {now!r}")
    return now


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _bounded(evidence: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(evidence, allow_nan=False, default=str))
    if size > MAX_EVIDENCE:
        raise ValueError(
            f"evidence of {size:,} bytes is over the limit of {MAX_EVIDENCE:,}: keep the counts and "
            "thresholds, not the raw series"
        )
    return evidence


Evidence = Annotated[dict[str, Any], AfterValidator(_bounded)]


class Anomaly(_Model):
    """One detector's finding this minute: what (``kind``), where (a scope such as ``agent:x``), the
    evidence (a detector's :class:`~baton.ops.detectors.Verdict` ``as_dict()``), and how many occurrences
    it stands for (``count``: 1 per firing, or the failures it saw)."""

    kind: SignalKind
    where: str = Field(min_length=1, max_length=250, pattern=r"^[^\x00-\x1f\x7f]+$")
    evidence: Evidence = Field(default_factory=dict)
    count: int = Field(default=1, ge=1, le=10**9)
    severity: Severity | None = Field(default=None, description="overrides the kind's configured severity")

    @property
    def fingerprint(self) -> str:
        return f"{self.kind}@{self.where}"


class Step(_Model):
    """A runbook step of an incident, once issued or skipped: never issued again."""

    id: str
    step: int = Field(ge=0)
    do: str
    target: str
    outcome: Literal["issued", "skipped"]
    why: str = ""


class Incident(_Model):
    """An open (or acknowledged) incident, as the book keeps it."""

    id: str
    kind: SignalKind
    where: str
    severity: Severity
    opened_severity: Severity
    status: Literal["open", "acknowledged"] = "open"
    opened_at: Instant
    updated_at: Instant
    last_seen_at: Instant
    count: int = Field(ge=1)
    escalations: int = Field(default=0, ge=0)
    first_evidence: dict[str, Any] = Field(default_factory=dict)
    evidence: dict[str, Any] = Field(default_factory=dict)
    acknowledged_by: str | None = None
    acknowledged_at: Instant | None = None
    stopped_by: str | None = None
    stopped_at: Instant | None = None
    steps: list[Step] = Field(
        default_factory=list, description="the runbook steps issued or skipped, in order"
    )
    trial: Literal["held", "half_open", "passed"] | None = Field(
        default=None,
        description="the circuit the runbook opened: held open, half-open for a trial call, or closed by "
        "a trial that passed (None: no circuit with trials)",
    )
    trial_since: Instant | None = Field(default=None, description="when the circuit was held or half-opened")
    trials: int = Field(default=0, ge=0, description="the trials begun")

    @property
    def fingerprint(self) -> str:
        return f"{self.kind}@{self.where}"

    def summary(self) -> dict[str, Any]:
        """What an escalation hands to a person: the incident and its evidence, JSON-ready."""
        return {
            "id": self.id,
            "kind": self.kind,
            "where": self.where,
            "severity": self.severity,
            "count": self.count,
            "opened_at": self.opened_at.isoformat(),
            "first_evidence": self.first_evidence,
            "evidence": self.evidence,
        }


class Suppressed(_Model):
    """Anomalies of one fingerprint held back by a maintenance window (no incident opened)."""

    window: str
    since: Instant
    count: int = Field(ge=1)


class Book(_Model):
    """The incidents open now, by fingerprint, and the anomalies a maintenance window is holding back."""

    as_of: Instant | None = Field(default=None, description="the time of the last evaluation")
    incidents: dict[str, Incident] = Field(default_factory=dict)
    suppressed: dict[str, Suppressed] = Field(default_factory=dict)

    def by_id(self, incident_id: str) -> Incident:
        for incident in self.incidents.values():
            if incident.id == incident_id:
                return incident
        known = ", ".join(sorted(i.id for i in self.incidents.values())[:10]) or "none"
        raise IncidentError(
            f"no open incident '{incident_id[:100]}': it may have resolved (open ones: {known})"
        )


TransitionType = Literal[
    "incident.opened",
    "incident.updated",
    "incident.acknowledged",
    "incident.action",
    "incident.resolved",
    "incident.suppressed",
]


class Transition(_Model):
    """One event to record: ``notify`` says whether the alert channel should hear of it."""

    type: TransitionType
    at: Instant
    incident_id: str | None
    kind: SignalKind
    where: str
    severity: Severity | None = None
    count: int = 0
    notify: bool = False
    detail: dict[str, Any] = Field(default_factory=dict)


class Action(_Model):
    """A runbook action due now. ``id`` is unique per incident step: record it (as the event's
    idempotency key) and never run an id twice. ``target`` is the agent or workflow it acts on."""

    id: str
    incident_id: str
    step: int
    do: Literal[
        "open_circuit",
        "lower_concurrency",
        "pause_workflow",
        "retry_failed_runs",
        "escalate",
        "close_circuit",
        "probe_circuit",
        "restore_concurrency",
        "resume_workflow",
    ]
    target: str
    params: dict[str, Any] = Field(default_factory=dict)


TrialSeen = Literal["pending", "passed", "failed"]
"""What a half-open circuit saw since it was half-opened: no call yet, a success (which closed it), a
failure (which opened it again)."""


class Outcome(_Model):
    book: Book
    transitions: list[Transition] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)


# --- helpers --------------------------------------------------------------------------------------


def _incident_id(fingerprint: str, opened_at: datetime) -> str:
    digest = hashlib.sha256(f"{fingerprint}|{opened_at.isoformat()}".encode()).hexdigest()
    return f"inc-{digest[:12]}"


def _raise(severity: Severity, steps: int) -> Severity:
    return SEVERITIES[min(SEVERITIES.index(severity) + steps, len(SEVERITIES) - 1)]


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


def _transition(
    kind: TransitionType, at: datetime, incident: Incident, notify: bool, /, **detail: Any
) -> Transition:
    return Transition(
        type=kind,
        at=at,
        incident_id=incident.id,
        kind=incident.kind,
        where=incident.where,
        severity=incident.severity,
        count=incident.count,
        notify=notify,
        detail=detail,
    )


# --- evaluation -----------------------------------------------------------------------------------


def evaluate(
    book: Book,
    anomalies: list[Anomaly],
    now: datetime,
    config: Monitoring,
    trials: Mapping[str, TrialSeen] | None = None,
) -> Outcome:
    """This minute: open or update an incident per anomaly's fingerprint, move the trials of the circuits
    runbooks opened, resolve the quiet ones, raise the severity of the long ones, and issue the runbook
    steps that are due. ``trials``: agent -> what its half-open circuit saw (an agent not named: pending)."""
    # long: one minute of the state machine: open, update, escalate, suppress, resolve, act
    now = _check_now(now)
    if book.as_of is not None and now < book.as_of:
        raise IncidentError(
            f"time went backwards: evaluating at {now.isoformat()} after {book.as_of.isoformat()}; pass the "
            "anomalies of a past minute in order, before later ones"
        )
    groups: dict[str, list[Anomaly]] = defaultdict(list)
    for anomaly in anomalies:
        groups[anomaly.fingerprint].append(anomaly)

    incidents = dict(book.incidents)
    suppressed = {fp: held for fp, held in book.suppressed.items() if _held_window(config, now, fp, held)}
    transitions: list[Transition] = []
    actions: list[Action] = []

    for fingerprint in sorted(groups):
        group, existing = groups[fingerprint], incidents.get(fingerprint)
        count, latest = sum(a.count for a in group), group[-1]
        window = config.maintenance_at(now, latest.where)
        if existing is not None:
            updated = existing.model_copy(
                update={"count": existing.count + count, "last_seen_at": now, "updated_at": now}
                | {"evidence": latest.evidence}
            )
            incidents[fingerprint] = updated
            transitions.append(
                _transition("incident.updated", now, updated, False, added=count, anomalies=len(group))
                if window is None
                else _transition(
                    "incident.updated", now, updated, False, added=count, maintenance=window.name
                )
            )
        elif window is not None:
            held = suppressed.get(fingerprint)
            suppressed[fingerprint] = Suppressed(
                window=window.name,
                since=held.since if held else now,
                count=(held.count if held else 0) + count,
            )
            if held is None:
                transitions.append(
                    Transition(
                        type="incident.suppressed",
                        at=now,
                        incident_id=None,
                        kind=latest.kind,
                        where=latest.where,
                        count=count,
                        detail={"maintenance": window.name, "evidence": latest.evidence},
                    )
                )
        else:
            opened = Incident(
                id=_incident_id(fingerprint, now),
                kind=latest.kind,
                where=latest.where,
                severity=latest.severity or config.incidents.severity[latest.kind],
                opened_severity=latest.severity or config.incidents.severity[latest.kind],
                opened_at=now,
                updated_at=now,
                last_seen_at=now,
                count=count,
                first_evidence=group[0].evidence,
                evidence=latest.evidence,
            )
            incidents[fingerprint] = opened
            transitions.append(
                _transition("incident.opened", now, opened, True, reason=latest.evidence.get("reason"))
            )

    for fingerprint in sorted(incidents):
        incident = incidents[fingerprint]
        window = config.maintenance_at(now, incident.where)
        if window is None and incident.stopped_by is None:
            incident = _trial(incident, now, config, trials or {}, transitions, actions)
        quiet = fingerprint not in groups and now - incident.last_seen_at >= config.incidents.resolve_after
        if quiet and _may_resolve(incident, now, config):
            del incidents[fingerprint]
            resolved, done = _resolve(incident, now, config)
            transitions.extend(done)
            actions.extend(resolved)
            continue
        if window is None and incident.status == "open":
            incident = _escalate_severity(incident, now, config, transitions)
        if window is None and incident.stopped_by is None:
            incident = _due_steps(incident, now, config, transitions, actions)
        incidents[fingerprint] = incident

    outcome_book = Book(as_of=now, incidents=incidents, suppressed=suppressed)
    return Outcome(book=outcome_book, transitions=transitions, actions=actions)


def _held_window(config: Monitoring, now: datetime, fingerprint: str, held: Suppressed) -> bool:
    """Whether the window that is holding ``fingerprint`` back still covers it."""
    where = fingerprint.split("@", 1)[1]
    window = config.maintenance_at(now, where)
    return window is not None and window.name == held.window


def _escalate_severity(
    incident: Incident, now: datetime, config: Monitoring, transitions: list[Transition]
) -> Incident:
    """One severity up per ``escalate_after`` the incident has been open, or once at ``escalate_count``."""
    rules, due = config.incidents, 0
    if rules.escalate_after is not None:
        due = int((now - incident.opened_at) / rules.escalate_after)
    if rules.escalate_count is not None and incident.count >= rules.escalate_count:
        due = max(due, 1)
    if due <= incident.escalations:
        return incident
    severity = _raise(incident.opened_severity, due)
    escalated = incident.model_copy(update={"severity": severity, "escalations": due})
    if severity != incident.severity:
        escalated = escalated.model_copy(update={"updated_at": now})
        transitions.append(
            _transition(
                "incident.updated",
                now,
                escalated,
                True,
                severity_from=incident.severity,
                severity_to=severity,
            )
        )
    return escalated


def _action_transition(at: datetime, incident: Incident, action: Action) -> Transition:
    detail = {"action_id": action.id, "do": action.do, "target": action.target} | action.params
    return _transition("incident.action", at, incident, False, **detail)


def _due_steps(
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
                _transition(
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
        transitions.append(_action_transition(now, incident, action))
        if isinstance(spec, OpenCircuit) and spec.probe_after is not None and incident.trial is None:
            incident = incident.model_copy(update={"trial": "held", "trial_since": now})
    return incident.model_copy(update={"steps": steps}) if len(steps) != len(incident.steps) else incident


def _circuit(incident: Incident, config: Monitoring) -> tuple[Step, OpenCircuit] | None:
    """The runbook's issued ``open_circuit`` step of ``incident`` that has trials, and its settings."""
    runbook = config.runbooks.get(incident.kind, [])
    for step in incident.steps:
        if step.outcome == "issued" and step.do == "open_circuit" and step.step < len(runbook):
            spec = runbook[step.step]
            if isinstance(spec, OpenCircuit) and spec.probe_after is not None:
                return step, spec
    return None


def _trial(
    incident: Incident,
    now: datetime,
    config: Monitoring,
    trials: Mapping[str, TrialSeen],
    transitions: list[Transition],
    actions: list[Action],
) -> Incident:
    """Move the trial of the circuit the runbook opened: half-open it ``probe_after`` it was held, then
    hold it again when its trial failed, or note that it passed (the agent's success closed it)."""
    found = _circuit(incident, config)
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
        _transition("incident.updated", now, moved, False, trial=incident.trials, trial_outcome=outcome)
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
    transitions.append(_action_transition(now, incident, action))
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


def _may_resolve(incident: Incident, now: datetime, config: Monitoring) -> bool:
    """A quiet incident resolves unless the circuit its runbook opened is still to be tried: held, or
    half-open and still waiting (within ``probe_for``) for its trial call."""
    found = _circuit(incident, config)
    if incident.stopped_by is not None or found is None or incident.trial in (None, "passed"):
        return True
    _, spec = found
    waited = now - incident.trial_since if incident.trial_since else spec.probe_for
    return incident.trial == "half_open" and waited >= spec.probe_for


def _resolve(incident: Incident, now: datetime, config: Monitoring) -> tuple[list[Action], list[Transition]]:
    """The resolution: its transition, then (unless a person stopped the runbook) the undoing of what
    was done, newest first, and the ``retry_failed_runs`` steps. A circuit a trial closed, or left
    half-open, is not closed again."""
    quiet = now - incident.last_seen_at
    detail: dict[str, Any] = {"healthy_for_s": quiet.total_seconds()}
    tried = _circuit(incident, config) is not None and incident.trial in ("passed", "half_open")
    if tried:
        detail["circuit"] = (
            "closed by a trial call that succeeded"
            if incident.trial == "passed"
            else "half-open: no call came to try the agent (its next failure opens it, a success closes it)"
        )
    transitions = [_transition("incident.resolved", now, incident, True, **detail)]
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
                _transition(
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
    transitions.extend(_action_transition(now, incident, action) for action in actions)
    return actions, transitions


# --- what a person does ---------------------------------------------------------------------------


def _person(by: str) -> str:
    class _By(_Model):
        by: Person

    try:
        return _By(by=by).by
    except ValueError as error:
        raise IncidentError(f"'by' must name a person (1 to 200 printable characters): {error}") from None


def acknowledge(book: Book, incident_id: str, by: str, now: datetime) -> Outcome:
    """``by`` is on it: the incident stops notifying and its ``escalate`` steps are skipped. Acknowledging
    twice changes nothing."""
    now, by = _check_now(now), _person(by)
    incident = book.by_id(incident_id)
    if incident.status == "acknowledged":
        return Outcome(book=book)
    acked = incident.model_copy(
        update={"status": "acknowledged", "acknowledged_by": by, "acknowledged_at": now, "updated_at": now}
    )
    incidents = {**book.incidents, acked.fingerprint: acked}
    transition = _transition("incident.acknowledged", now, acked, True, by=by)
    return Outcome(book=book.model_copy(update={"incidents": incidents}), transitions=[transition])


def stop(book: Book, incident_id: str, by: str, now: datetime) -> Outcome:
    """``by`` halts the incident's runbook: no further action, not even the undoing at resolution (the
    person has taken over). Stopping twice changes nothing."""
    now, by = _check_now(now), _person(by)
    incident = book.by_id(incident_id)
    if incident.stopped_by is not None:
        return Outcome(book=book)
    stopped = incident.model_copy(update={"stopped_by": by, "stopped_at": now, "updated_at": now})
    incidents = {**book.incidents, stopped.fingerprint: stopped}
    transition = _transition("incident.updated", now, stopped, True, stopped_by=by)
    return Outcome(book=book.model_copy(update={"incidents": incidents}), transitions=[transition])


__all__ = [
    "Action",
    "Anomaly",
    "Book",
    "Incident",
    "IncidentError",
    "Outcome",
    "Step",
    "Transition",
    "TrialSeen",
    "acknowledge",
    "evaluate",
    "half_open_agents",
    "stop",
]
