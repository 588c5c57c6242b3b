"""The incidents as the store records them: the book (the monitor's state ``book``, read under a lock in a
write transaction), each transition as an ``incident.*`` event of the run ``incident:<id>``, the Slack
message of a transition that notifies, a person's acknowledgement or stop, and the incidents and one
incident's timeline read back (``baton incidents``, ``GET /baton/api/incidents``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from baton.alerts import Alert, send
from baton.events import schema
from baton.events.event import Event
from baton.events.store import EventStore
from baton.ops.incidents import Action, Book, Transition, acknowledge, stop
from baton.ops.monitor.state import load_state, save_state

MONITOR = "baton_monitor"  # the DAG, and the workflow of the incident events
BOOK = "book"


def read_book(conn: Any) -> Book:
    """The incident book, read in ``conn``'s write transaction (locked on PostgreSQL; SQLite's write
    transaction holds the database): a tick and a person's acknowledgement never overwrite each other."""
    value = load_state(conn, BOOK, lock=True)
    return Book.model_validate(value) if value else Book()


def person_acts(store: EventStore, incident_id: str, verb: str, by: str, now: datetime | None = None) -> int:
    """``by`` acknowledges an open incident (``ack``: no more notifications, its escalations skipped) or
    stops its runbook (``stop``: no further action, no undoing at resolution); recorded as the incident's
    event, and Slack hears it. How many transitions (0: it was so already). Raises ``IncidentError``."""
    act = {"ack": acknowledge, "stop": stop}[verb]
    now = now or datetime.now(UTC)
    with store.engine.begin() as conn:
        outcome = act(read_book(conn), incident_id, by, now)
        if outcome.transitions:
            store.append_in(conn, [event_of(t, t.notify) for t in outcome.transitions])
            save_state(conn, BOOK, outcome.book.model_dump(mode="json"), now)
    notify(store, outcome.transitions, [])
    return len(outcome.transitions)


def event_of(t: Transition, notified: bool) -> Event:
    """The ``incident.*`` event of a transition, in the run ``incident:<id>`` of the monitor's workflow."""
    payload = {
        "incident_id": t.incident_id,
        "kind": t.kind,
        "where": t.where,
        "severity": t.severity,
        "count": t.count,
        "notified": notified,
        "detail": t.detail,
    }
    run = f"incident:{t.incident_id or t.where}"
    return Event(
        type=t.type,
        run_id=run,
        workflow=MONITOR,
        payload=payload,
        # two actions of one tick (an undoing and a retry at resolution) are two facts, not one
        discriminator=f"{t.at.isoformat()}|{t.detail.get('action_id', '')}",
        ts=t.at,
    )


def notify(store: EventStore, transitions: list[Transition], done: list[tuple[Action, str]]) -> int:
    """Post to Slack each transition that notifies, with what its incident's actions did; how many were sent."""
    sent = 0
    for t in transitions:
        if not t.notify:
            continue
        what = t.type.removeprefix("incident.")
        reason = (t.detail.get("evidence") or {}).get("reason") or t.detail.get("reason") or ""
        acts = "; ".join(outcome for action, outcome in done if action.incident_id == t.incident_id)
        message = (
            f"{t.kind} at {t.where}: {what}, severity {t.severity}, {t.count} occurrence(s). {reason} {acts}"
        )
        alert = Alert(
            kind=f"incident_{what}",
            workflow=MONITOR,
            run_id=f"incident:{t.incident_id}",
            message=message.strip(),
            step=t.where,
            attempt=t.count,
            at=t.at,
        )
        sent += bool(send(alert, store))
    return sent


def incidents(store: EventStore, limit: int = 50) -> list[dict[str, Any]]:
    """The newest incidents, each as its latest transition says (open ones from the book first)."""
    e = schema.events.c
    kinds = [f"incident.{k}" for k in ("opened", "updated", "acknowledged", "resolved")]
    query = select(e.run_id, e.type, e.payload, e.ts).where(e.workflow == MONITOR, e.type.in_(kinds))
    latest: dict[str, dict[str, Any]] = {}
    with store.engine.connect() as conn:
        for run_id, kind, payload, ts in conn.execute(query.order_by(e.seq)):
            row = latest.setdefault(run_id, {"opened_at": ts, "id": payload.get("incident_id")})
            row.update(
                status=kind.removeprefix("incident."),
                kind=payload["kind"],
                where=payload["where"],
                severity=payload.get("severity"),
                count=payload.get("count"),
                updated_at=ts,
            )
    rows = sorted(latest.values(), key=lambda r: r["updated_at"], reverse=True)
    return rows[:limit]


def timeline(store: EventStore, incident_id: str) -> list[Event]:
    """Every event of one incident, in order."""
    return [ev for ev in store.read(f"incident:{incident_id}") if isinstance(ev, Event)]
