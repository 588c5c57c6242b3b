"""The incident book's records: an anomaly, an incident and its runbook steps, the book, a transition to
record as an event, a runbook action due, and what one evaluation gives (:class:`Outcome`). All frozen and
JSON-ready: ``book.model_dump(mode="json")`` and ``Book.model_validate`` round-trip."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from baton.errors import BatonError
from baton.spec.detectors import SignalKind
from baton.spec.monitoring import Severity

MAX_EVIDENCE = 32 * 1024  # bytes of JSON an anomaly's evidence may take


class IncidentError(BatonError, LookupError):
    """An incident that is not open was named, or time went backwards."""


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a time without a timezone is ambiguous: pass an aware datetime (UTC)")
    return value


Instant = Annotated[datetime, AfterValidator(_aware)]


def check_now(now: datetime) -> datetime:
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


# --- the transitions every part of the state machine records -------------------------------------


def transition(
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


def action_transition(at: datetime, incident: Incident, action: Action) -> Transition:
    detail = {"action_id": action.id, "do": action.do, "target": action.target} | action.params
    return transition("incident.action", at, incident, False, **detail)
