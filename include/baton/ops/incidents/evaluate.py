"""One minute of the incident book: :func:`evaluate` opens, updates, escalates, suppresses and resolves
incidents from this minute's anomalies, and issues the runbook steps due."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime

from baton.ops.incidents.model import (
    Action,
    Anomaly,
    Book,
    Incident,
    IncidentError,
    Outcome,
    Suppressed,
    Transition,
    TrialSeen,
    check_now,
    transition,
)
from baton.ops.incidents.runbook import due_steps, resolve
from baton.ops.incidents.trials import may_resolve, move_trial
from baton.spec.monitoring import SEVERITIES, Monitoring, Severity


def _incident_id(fingerprint: str, opened_at: datetime) -> str:
    digest = hashlib.sha256(f"{fingerprint}|{opened_at.isoformat()}".encode()).hexdigest()
    return f"inc-{digest[:12]}"


def _raise(severity: Severity, steps: int) -> Severity:
    return SEVERITIES[min(SEVERITIES.index(severity) + steps, len(SEVERITIES) - 1)]


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
    now = check_now(now)
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
                transition("incident.updated", now, updated, False, added=count, anomalies=len(group))
                if window is None
                else transition("incident.updated", now, updated, False, added=count, maintenance=window.name)
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
                transition("incident.opened", now, opened, True, reason=latest.evidence.get("reason"))
            )

    for fingerprint in sorted(incidents):
        incident = incidents[fingerprint]
        window = config.maintenance_at(now, incident.where)
        if window is None and incident.stopped_by is None:
            incident = move_trial(incident, now, config, trials or {}, transitions, actions)
        quiet = fingerprint not in groups and now - incident.last_seen_at >= config.incidents.resolve_after
        if quiet and may_resolve(incident, now, config):
            del incidents[fingerprint]
            resolved, done = resolve(incident, now, config)
            transitions.extend(done)
            actions.extend(resolved)
            continue
        if window is None and incident.status == "open":
            incident = _escalate_severity(incident, now, config, transitions)
        if window is None and incident.stopped_by is None:
            incident = due_steps(incident, now, config, transitions, actions)
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
            transition(
                "incident.updated",
                now,
                escalated,
                True,
                severity_from=incident.severity,
                severity_to=severity,
            )
        )
    return escalated
