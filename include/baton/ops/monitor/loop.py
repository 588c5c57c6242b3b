"""One minute of monitoring: fold the new events into signals, run the detectors, move the incidents, act.

:func:`tick` is what the ``baton_monitor`` DAG runs every minute (and ``baton monitor tick`` by hand):

1. :func:`baton.ops.monitor.signals.fold` the events since the last tick into per-minute buckets;
2. run every configured detector (``dags/monitoring.yaml``, else the defaults; :mod:`baton.ops.detectors`)
   on every scope's signal, check the scheduled workflows' runs against their schedules
   (:mod:`baton.ops.monitor.schedules`), and look for faults of the platform itself
   (:mod:`baton.ops.monitor.platform`);
3. :func:`baton.ops.incidents.evaluate` the anomalies against the incident book, and record each
   transition as an ``incident.*`` event, with the book, in one transaction (:mod:`baton.ops.monitor.record`);
4. carry out the runbook actions due (:mod:`baton.ops.monitor.actions`): each is recorded first under the
   action's own id (an ``incident.action`` event), and carried out only by the tick whose record was new,
   so never twice;
5. post to Slack (the alerts' channel) what the book says to notify: one message when an incident
   opens, one per escalation and one when it resolves, not one per failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from baton import metrics
from baton.coordination import breaker
from baton.events.store import EventStore
from baton.ops.detectors import detect
from baton.ops.incidents import Action, Anomaly, Transition, evaluate, half_open_agents
from baton.ops.monitor import platform, schedules, signals
from baton.ops.monitor.actions import act
from baton.ops.monitor.record import BOOK, event_of, notify, read_book
from baton.ops.monitor.state import save_state
from baton.spec.detectors import COUNT_SIGNALS, EVENT_SIGNALS, SCHEDULE_SIGNALS, SIGNAL_KINDS
from baton.spec.monitoring import Monitoring

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
    if kind in SCHEDULE_SIGNALS:  # the scheduled workflows Airflow runs (baton.ops.monitor.schedules)
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


def tick(
    store: EventStore,
    config: Monitoring,
    now: datetime | None = None,
    dags: Path | None = None,
    broker_url: str | None = None,
) -> Report:
    """One minute of monitoring (see the module's docstring). ``dags``: the dags folder, whose scheduled
    workflows are checked against their schedule (``runs_started``: :mod:`baton.ops.monitor.schedules`);
    ``broker_url``: the Celery executor's broker, watched for restarts (:mod:`baton.ops.monitor.platform`)."""
    now = now or datetime.now(UTC)
    report = Report()
    for _ in range(MAX_BATCHES):
        folded = signals.fold(store, now)
        report.folded += folded
        if folded < signals.BATCH:
            break
    signals.purge(store, now)
    store.catch_up()  # the pages' projection, from the log, when nobody has read it this minute
    watched = None
    if dags is not None and config.detectors.runs_started.enabled:
        watched = schedules.watched_now(store, dags, now)
    report.anomalies = anomalies(store, config, now, watched)
    if config.detectors.platform.enabled:
        report.anomalies += platform.probe(store, now, broker_url)
    with store.engine.begin() as conn:
        book = read_book(conn)
        half_open = half_open_agents(book)  # what their trials saw, in this transaction
        trials = breaker.trials(store, half_open, conn) if half_open else {}
        outcome = evaluate(book, report.anomalies, now, config, trials)
        report.transitions = outcome.transitions
        store.append_in(conn, [event_of(t, t.notify) for t in outcome.transitions])
        save_state(conn, BOOK, outcome.book.model_dump(mode="json"), now)
    report.actions = act(store, outcome.actions, outcome.book, now)
    report.notified = notify(store, outcome.transitions, report.actions)
    metrics.open_incidents(i.severity for i in outcome.book.incidents.values())
    return report
