"""What a person does to an incident: acknowledge it (someone is on it) or stop its runbook (they take
over). Each is a transition of the book, recorded as the incident's event under their name."""

from __future__ import annotations

from datetime import datetime

from baton.ops.incidents.model import Book, IncidentError, Outcome, _Model, check_now, transition
from baton.spec.runbooks import Person


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
    now, by = check_now(now), _person(by)
    incident = book.by_id(incident_id)
    if incident.status == "acknowledged":
        return Outcome(book=book)
    acked = incident.model_copy(
        update={"status": "acknowledged", "acknowledged_by": by, "acknowledged_at": now, "updated_at": now}
    )
    incidents = {**book.incidents, acked.fingerprint: acked}
    recorded = transition("incident.acknowledged", now, acked, True, by=by)
    return Outcome(book=book.model_copy(update={"incidents": incidents}), transitions=[recorded])


def stop(book: Book, incident_id: str, by: str, now: datetime) -> Outcome:
    """``by`` halts the incident's runbook: no further action, not even the undoing at resolution (the
    person has taken over). Stopping twice changes nothing."""
    now, by = check_now(now), _person(by)
    incident = book.by_id(incident_id)
    if incident.stopped_by is not None:
        return Outcome(book=book)
    stopped = incident.model_copy(update={"stopped_by": by, "stopped_at": now, "updated_at": now})
    incidents = {**book.incidents, stopped.fingerprint: stopped}
    recorded = transition("incident.updated", now, stopped, True, stopped_by=by)
    return Outcome(book=book.model_copy(update={"incidents": incidents}), transitions=[recorded])
