"""One minute of monitoring: fold the new events into signals, run the detectors, move the incidents, act.

:func:`tick` is what the ``baton_monitor`` DAG runs every minute (and ``baton monitor tick`` by hand):

1. :func:`baton.ops.signals.fold` the events since the last tick into per-minute buckets;
2. run every configured detector (``dags/monitoring.yaml``, else the defaults) on every scope's signal,
   and check the scheduled workflows' runs against their schedules (:mod:`baton.ops.schedules`);
3. :func:`baton.ops.incidents.evaluate` the anomalies against the incident book, and record each
   transition as an ``incident.*`` event, with the book, in one transaction;
4. carry out the runbook actions due: each is recorded first under the action's own id (an
   ``incident.action`` event), and carried out only by the tick whose record was new, so never twice;
5. post to Slack (the alerts' channel) what the book says to notify: one message when an incident
   opens, one per escalation and one when it resolves, not one per failure.

Actions carried out here: ``open_circuit`` / ``close_circuit`` (the agent's breaker in Baton's store:
routing moves its work to agents with the same capabilities), ``probe_circuit`` (half-open: the agent's
next call is a trial, see :mod:`baton.ops.incidents`), ``escalate`` (a Slack message with the
evidence), and, over Airflow's REST API with the connection ``baton_airflow_api``
(:mod:`baton.ops.airflow_api`), ``pause_workflow`` / ``resume_workflow`` and ``retry_failed_runs`` (the
failed task instances of the runs that failed while the incident was open are cleared). Without that
connection they are recorded as not carried out, naming it. ``lower_concurrency`` caps the agent's load
slots in Baton's store (``baton.coordination.load.cap``; routing ranks it by the cap) and the
resolution restores what it had.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from baton import metrics
from baton.events import schema
from baton.events.store import Event, EventStore
from baton.ops import schedules, signals
from baton.ops.detectors import detect
from baton.ops.incidents import Action, Anomaly, Book, Transition, evaluate, half_open_agents
from baton.ops.monitoring_config import (
    COUNT_SIGNALS,
    EVENT_SIGNALS,
    SCHEDULE_SIGNALS,
    SIGNAL_KINDS,
    Monitoring,
)

log = logging.getLogger(__name__)

MONITOR = "baton_monitor"  # the DAG, and the workflow of the incident events
BOOK = "book"
HOLD = timedelta(days=7)  # a circuit a runbook opened stays open this long at most, if never closed
MAX_BATCHES = 20  # at most 20 x 50,000 events folded per tick: a backlog is caught up over a few ticks


@dataclass
class Report:
    folded: int = 0
    anomalies: list[Anomaly] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    actions: list[tuple[Action, str]] = field(default_factory=list)  # and what was done
    notified: int = 0


def _reach(signal: Any) -> timedelta:
    """How far back the signal's detectors look."""
    reach = timedelta(hours=1)
    for name in ("rate", "robust", "drift", "silence"):
        cfg = getattr(signal, name, None)
        if cfg is None:
            continue
        if name == "silence":  # the rate before the silence, the same hours of earlier days, the silence
            days = cfg.days if cfg.seasonal else 0
            reach = max(reach, cfg.lookback + cfg.min_silence + timedelta(days=days))
        elif hasattr(cfg, "windows"):
            reach = max(reach, cfg.baseline + cfg.windows[-1])
        else:
            reach = max(reach, cfg.reference + cfg.span)
    return reach


def _series(store: EventStore, kind: str, scope: str, reach: timedelta, now: datetime) -> Any:
    """What the detectors of ``kind`` read for ``scope``: counts, points, or the times events happened."""
    if kind in EVENT_SIGNALS:
        return signals.events(store, kind, scope, reach)
    read = signals.counts if kind in COUNT_SIGNALS else signals.points
    return read(store, kind, scope, now - reach, now)


def _scoped_series(
    store: EventStore, kind: str, signal: Any, now: datetime, watched: dict[str, schedules.Watched]
) -> Iterator[tuple[str, Any]]:
    """(scope, what its detectors read) of every scope of the signal ``kind``."""
    if kind in SCHEDULE_SIGNALS:  # the scheduled workflows Airflow runs (baton.ops.schedules)
        cfg = signal.schedule
        for workflow, watch in watched.items():
            yield f"workflow:{workflow}", schedules.series(store, watch, cfg.lookback, cfg.grace, now)
        return
    reach = _reach(signal)
    # a silence is watched on every scope heard from within the retention, however long ago
    since = now - (signals.RETENTION if kind in EVENT_SIGNALS else reach)
    for scope in signals.scopes(store, kind, since):
        yield scope, _series(store, kind, scope, reach, now)


def anomalies(
    store: EventStore, config: Monitoring, now: datetime, watched: dict[str, schedules.Watched] | None = None
) -> list[Anomaly]:
    """Every detector's firing on every scope of the watched signals, now; ``watched``: the scheduled
    workflows whose runs are checked against their schedule (none when not given)."""
    found = []
    for kind in SIGNAL_KINDS:
        signal = config.detectors.of(kind)
        if not signal.enabled or (kind in SCHEDULE_SIGNALS and signal.schedule is None):
            continue
        for scope, series in _scoped_series(store, kind, signal, now, watched or {}):
            for verdict in detect(kind, series, now, config.detectors):
                if verdict.anomalous:
                    count = int(verdict.evidence.get("bad", 1) or 1) if kind in COUNT_SIGNALS else 1
                    found.append(
                        Anomaly(kind=kind, where=scope, evidence=verdict.as_dict(), count=max(1, count))
                    )
    return found


def _book(conn: Any) -> Book:
    """The incident book, read in ``conn``'s write transaction (locked on PostgreSQL; SQLite's write
    transaction holds the database): a tick and a person's acknowledgement never overwrite each other."""
    value = signals.load_state(conn, BOOK, lock=True)
    return Book.model_validate(value) if value else Book()


def person_acts(store: EventStore, incident_id: str, verb: str, by: str, now: datetime | None = None) -> int:
    """``by`` acknowledges an open incident (``ack``: no more notifications, its escalations skipped) or
    stops its runbook (``stop``: no further action, no undoing at resolution); recorded as the incident's
    event, and Slack hears it. How many transitions (0: it was so already). Raises ``IncidentError``."""
    from baton.ops.incidents import acknowledge, stop

    act = {"ack": acknowledge, "stop": stop}[verb]
    now = now or datetime.now(UTC)
    with store.engine.begin() as conn:
        outcome = act(_book(conn), incident_id, by, now)
        if outcome.transitions:
            store.append_in(conn, [_event(t, t.notify) for t in outcome.transitions])
            signals.save_state(conn, BOOK, outcome.book.model_dump(mode="json"), now)
    _notify(store, outcome.transitions, [])
    return len(outcome.transitions)


def _event(t: Transition, notified: bool) -> Event:
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


def _carry_out(store: EventStore, action: Action, now: datetime, book: Book | None = None) -> str:
    from baton.coordination import breaker, load

    agent = action.target.removeprefix("agent:")
    if action.do == "open_circuit":
        load.hold_open(store, agent, now + HOLD, f"held open by incident {action.incident_id}")
        return f"opened the circuit of {agent}: routing sends its work to agents with its capabilities"
    if action.do == "probe_circuit":
        if not breaker.half_open(store, agent):
            return f"the circuit of {agent} was not held: nothing to try"
        return f"half-opened the circuit of {agent}: its next call is a trial (a failure opens it again)"
    if action.do == "close_circuit":
        was_open = load.release(store, agent)
        return f"closed the circuit of {agent}" if was_open else f"the circuit of {agent} was already closed"
    if action.do in ("lower_concurrency", "restore_concurrency"):
        return _concurrency(store, action, agent, now)
    if action.do == "escalate":  # Slack hears it with the transition; a person is asked in Airflow too
        from baton.ops.escalation import request

        return request(action, book)
    if action.do in ("pause_workflow", "resume_workflow", "retry_failed_runs"):
        return _through_airflow(store, action, now)
    raise ValueError(f"no way to carry out the runbook action {action.do!r}")  # _act records it failed


def _through_airflow(store: EventStore, action: Action, now: datetime) -> str:
    """The actions that change Airflow itself, over its REST API (``baton.ops.airflow_api``)."""
    from baton.ops.airflow_api import CONN_ID, AirflowApi

    api = AirflowApi.from_connection()
    if api is None:
        return f"not carried out: {action.do} needs the Airflow connection {CONN_ID} (Airflow's REST API)"
    scope, _, name = action.target.partition(":")
    if action.do in ("pause_workflow", "resume_workflow"):
        return _pause_or_resume(store, api, action, name, now)
    since = datetime.fromisoformat(action.params["failed_since"])
    limit = int(action.params.get("max_runs", 20))
    if scope == "agent":
        runs = _failed_runs_of_agent(store, name, since)[:limit]
    else:
        runs = [(name, run) for run in api.failed_runs(name, since, limit)]
    for dag_id, run_id in runs:
        api.retry(dag_id, run_id)
    return f"retried {len(runs)} failed run(s): " + ", ".join(f"{d}/{r}" for d, r in runs)


def _pause_or_resume(store: EventStore, api: Any, action: Action, dag_id: str, now: datetime) -> str:
    """Pause a workflow, remembering whether it was paused already; resume it only if the pause was ours
    (a workflow a person had paused before the incident stays paused)."""
    key = f"paused:{action.incident_id}/{action.step}"  # the pause and its undoing share the step
    if action.do == "pause_workflow":
        was_paused = api.set_paused(dag_id, True)
        with store.engine.begin() as conn:
            signals.save_state(conn, key, {"dag_id": dag_id, "was_paused": was_paused}, now)
        return f"paused workflow {dag_id}" + (" (it was paused already)" if was_paused else "")
    with store.engine.connect() as conn:
        pause = signals.load_state(conn, key) or {}
    if pause.get("was_paused"):
        return f"left workflow {dag_id} paused: it was paused before the incident"
    api.set_paused(dag_id, False)
    return f"resumed workflow {dag_id}"


def _concurrency(store: EventStore, action: Action, agent: str, now: datetime) -> str:
    """Cap the agent's slots (its calls above the cap finish; no new one starts until under it), and at
    resolution give back what it had before: no cap, or the cap another incident had set."""
    from baton.coordination import load

    key = f"cap:{action.incident_id}/{action.step}"  # the lowering and its undoing share the step
    if action.do == "lower_concurrency":
        before = load.cap(store, agent, int(action.params["to"]))
        with store.engine.begin() as conn:
            signals.save_state(conn, key, {"agent": agent, "before": before}, now)
        return f"lowered the concurrency of {agent} to {action.params['to']} slot(s)"
    with store.engine.connect() as conn:
        saved = signals.load_state(conn, key) or {}
    if saved.get("before"):
        load.cap(store, agent, int(saved["before"]))
        return f"gave {agent} back the cap of {saved['before']} slot(s) it had before the incident"
    load.uncap(store, agent)
    return f"restored the concurrency of {agent} (its max_concurrency)"


def _failed_runs_of_agent(store: EventStore, agent: str, since: datetime) -> list[tuple[str, str]]:
    """(workflow, run) of the runs that failed since ``since`` after one of ``agent``'s steps failed."""
    e = schema.events.c
    failed_runs = select(e.run_id).where(e.type == "run.failed", e.ts >= since)
    query = (
        select(e.workflow, e.run_id)
        .where(e.agent == agent, e.type.in_(["step.failed", "subtask.failed"]), e.ts >= since)
        .where(e.run_id.in_(failed_runs))
        .distinct()
    )
    with store.engine.connect() as conn:
        return sorted({(w, r) for w, r in conn.execute(query)}, reverse=True)


def _act(store: EventStore, actions: list[Action], book: Book, now: datetime) -> list[tuple[Action, str]]:
    done = []
    for action in actions:
        record = Event(
            type="incident.action",
            run_id=f"incident:{action.incident_id}",
            workflow=MONITOR,
            key=f"incident-action|{action.id}",
            payload={
                "incident_id": action.incident_id,
                "kind": "action",
                "where": action.target,
                "detail": {"do": action.do, "step": action.step, "params": action.params},
            },
            ts=now,  # the tick's time, as its transitions: a fold at that time must not wait on it
        )
        if not store.append([record]):
            continue  # recorded by an earlier tick: carried out then
        try:
            outcome = _carry_out(store, action, now, book)
        except Exception as error:  # one action failing must not stop the others, nor the tick
            log.exception("runbook action %s failed", action.id)
            outcome = f"failed: {type(error).__name__}: {str(error)[:300]}"
        done.append((action, outcome))
        log.info("incident %s: %s", action.incident_id, outcome)
    return done


def _notify(store: EventStore, transitions: list[Transition], done: list[tuple[Action, str]]) -> int:
    from baton.alerts import Alert, send

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


def tick(
    store: EventStore, config: Monitoring, now: datetime | None = None, dags: Path | None = None
) -> Report:
    """One minute of monitoring (see the module's docstring). ``dags``: the dags folder, whose scheduled
    workflows are checked against their schedule (``runs_started``: :mod:`baton.ops.schedules`)."""
    from baton.coordination import breaker

    now = now or datetime.now(UTC)
    report = Report()
    for _ in range(MAX_BATCHES):
        folded = signals.fold(store, now)
        report.folded += folded
        if folded < signals.BATCH:
            break
    signals.purge(store, now)
    watched = None
    if dags is not None and config.detectors.runs_started.enabled:
        watched = schedules.watched_now(store, dags, now)
    report.anomalies = anomalies(store, config, now, watched)
    with store.engine.begin() as conn:
        book = _book(conn)
        half_open = half_open_agents(book)  # what their trials saw, in this transaction
        trials = breaker.trials(store, half_open, conn) if half_open else {}
        outcome = evaluate(book, report.anomalies, now, config, trials)
        report.transitions = outcome.transitions
        store.append_in(conn, [_event(t, t.notify) for t in outcome.transitions])
        signals.save_state(conn, BOOK, outcome.book.model_dump(mode="json"), now)
    report.actions = _act(store, outcome.actions, outcome.book, now)
    report.notified = _notify(store, outcome.transitions, report.actions)
    metrics.open_incidents(i.severity for i in outcome.book.incidents.values())
    return report


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
