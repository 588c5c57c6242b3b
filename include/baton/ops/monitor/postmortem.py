"""The post-incident report of one incident (``baton incident show``): when the first anomalous event
happened, when the monitor opened the incident and when it resolved (MTTD, MTTR), the runs and agents
affected, the actions taken. Read from the store: the incident's own events and, for the signals made of
failures (``failure_rate``, ``reask_rate``), the bad events of its scope."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select

from baton.events import schema
from baton.events.store import EventStore
from baton.ops.monitor import signals
from baton.ops.monitor.record import timeline

LOOKBACK = timedelta(hours=1)  # the first anomalous event is looked for this far before the opening
GAP = timedelta(minutes=10)  # ...as the start of the bad events' burst: none more than this apart
MAX_RUNS = 1000  # affected runs counted at most (a report, not an export)


@dataclass
class Postmortem:
    incident_id: str
    kind: str
    where: str
    opened: datetime
    resolved: datetime | None = None
    first_anomalous: datetime | None = None
    affected_runs: list[str] = field(default_factory=list)
    affected_agents: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    @property
    def mttd_s(self) -> float | None:
        """From the first anomalous event to the incident's opening (None when the signal has no such event)."""
        return None if self.first_anomalous is None else (self.opened - self.first_anomalous).total_seconds()

    @property
    def mttr_s(self) -> float | None:
        """From the first anomalous event (else the opening) to the resolution; None while it is open."""
        if self.resolved is None:
            return None
        return (self.resolved - (self.first_anomalous or self.opened)).total_seconds()


def _bad(kind: str, where: str) -> Any:
    """The events of ``where`` that make ``kind`` bad, as a condition on the events table (None: none)."""
    e = schema.events.c
    scope, _, name = where.partition(":")
    if kind == "failure_rate" and scope == "agent":
        return and_(e.agent == name, e.type.in_(signals.FAILED))
    if kind == "failure_rate" and scope == "workflow":
        return and_(e.workflow == name, e.type == "run.failed")
    if kind == "reask_rate" and scope == "agent":
        return and_(e.agent == name, e.type == "model.called")  # filtered on requests > 1 below
    if kind == "schema_failure_rate" and scope == "agent":
        return and_(e.agent == name, e.type.in_(signals.FAILED))  # filtered on the error class below
    if kind == "escalation_rate" and scope == "workflow":
        return and_(e.workflow == name, e.type == "approval.requested")  # filtered on the kind below
    return None


def postmortem(store: EventStore, incident_id: str) -> Postmortem | None:
    """The report of ``incident_id``, or None when there is no such incident."""
    events = timeline(store, incident_id)
    opened = next((ev for ev in events if ev.type == "incident.opened"), None)
    if opened is None:
        return None
    report = Postmortem(incident_id, opened.payload["kind"], opened.payload["where"], opened.ts)
    for ev in events:
        if ev.type == "incident.resolved":
            report.resolved = ev.ts
        elif ev.type == "incident.action" and ev.payload.get("kind") != "action":  # the book's step
            detail = ev.payload.get("detail") or {}
            report.actions.append(
                f"{ev.ts:%H:%M:%S} {detail.get('do', '?')}" + (" (skipped)" if "skipped" in detail else "")
            )
    condition = _bad(report.kind, report.where)
    if condition is None:
        return report
    e = schema.events.c
    query = select(e.ts, e.run_id, e.agent, e.payload).where(condition, e.ts >= report.opened - LOOKBACK)
    if report.resolved is not None:
        query = query.where(e.ts <= report.resolved)
    with store.engine.connect() as conn:
        rows = conn.execute(query.order_by(e.seq).limit(10 * MAX_RUNS)).all()
    rows = [r for r in rows if signals.bad_payload(report.kind, r[3])]
    before = [r[0] for r in rows if r[0] <= report.opened]
    if before:  # back from the opening while the bad events come no more than GAP apart
        first = before[-1]
        for ts in reversed(before[:-1]):
            if first - ts > GAP:
                break
            first = ts
        report.first_anomalous = first
    since = report.first_anomalous or report.opened  # the burst's, not the rare failures before it
    during = [r for r in rows if r[0] >= since]
    report.affected_runs = sorted({r[1] for r in during})[:MAX_RUNS]
    report.affected_agents = sorted({r[2] for r in during if r[2]})
    return report
