"""Faults of the platform itself seen by the monitor (issue 56): a component that starts again with no clean
stop since its last start (a scheduler or a worker SIGKILLed), the store's PostgreSQL restarting, the
Celery broker (Redis) restarting. Each is an anomaly of kind ``platform`` on its component; the tick opens
one incident for it and resolves it once the component stays up. The servers are real ones of the test's
own (devtools.servers), restarted for real; the lifecycle events are the ones the listener and the Celery
worker write."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete

from baton.events import lifecycle, schema
from baton.events.event import Event
from baton.events.migrations import upgrade
from baton.events.store import EventStore, engine_for
from baton.ops.monitor import loop, platform
from baton.ops.monitor.state import load_state
from baton.plugin.listener import _job_component
from baton.spec.monitoring import Monitoring
from devtools.servers import PrivatePostgres, PrivateRedis

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def _life(kind: str, component: str, pid: int, monkeypatch, name: str = "") -> Event:
    """The event the process ``pid`` (a worker named ``name``) records as ``component``."""
    monkeypatch.setenv("BATON_WORKER_NAME", name)
    event = lifecycle.life_event(kind, component)
    return replace(event, payload={**event.payload, "pid": pid}, discriminator=f"{pid}|{kind}", key="")


def _wheres(anomalies) -> list[str]:
    return [a.where for a in anomalies]


def test_a_component_that_starts_again_without_stopping_is_an_anomaly_and_a_clean_restart_is_not(
    clean, monkeypatch
):
    clean.append([_life("started", "scheduler", 10, monkeypatch)])
    assert platform.probe(clean, NOW) == []  # a first start: nothing before it to have died

    clean.append(
        [_life("stopped", "scheduler", 10, monkeypatch), _life("started", "scheduler", 11, monkeypatch)]
    )
    assert platform.probe(clean, NOW) == []  # stopped cleanly, then started: a restart, not a crash

    clean.append([_life("started", "scheduler", 12, monkeypatch)])  # 11 never said it stopped: it died
    (crash,) = platform.probe(clean, NOW)
    assert (crash.kind, crash.where) == ("platform", "scheduler")
    assert crash.evidence["reason"] == "started again without a clean stop since its start before: it died"

    # Workers are told apart by name: worker-2 starting is not worker-1 dying.
    clean.append([_life("started", "worker", 20, monkeypatch, "worker-1")])
    clean.append([_life("started", "worker", 21, monkeypatch, "worker-2")])
    assert platform.probe(clean, NOW) == []
    clean.append([_life("started", "worker", 22, monkeypatch, "worker-1")])
    (crash,) = platform.probe(clean, NOW)
    assert (crash.where, crash.evidence["name"]) == ("worker", "worker-1")
    assert platform.probe(clean, NOW) == []  # each start is read once


def test_the_tick_opens_one_incident_per_crashed_component_and_resolves_it_once_it_stays_up(
    clean, monkeypatch
):
    config = Monitoring.model_validate({"incidents": {"resolve_after": "3m"}})
    clean.append([_life("started", "triggerer", 30, monkeypatch)])
    assert loop.tick(clean, config, NOW).transitions == []
    clean.append([_life("started", "triggerer", 31, monkeypatch)])
    opened = loop.tick(clean, config, NOW + timedelta(minutes=1))
    assert [(t.type, t.kind, t.where, t.severity) for t in opened.transitions] == [
        ("incident.opened", "platform", "triggerer", "critical")
    ]
    assert loop.tick(clean, config, NOW + timedelta(minutes=2)).transitions == []  # up, not yet 3 minutes
    resolved = loop.tick(clean, config, NOW + timedelta(minutes=5))
    assert [(t.type, t.where) for t in resolved.transitions] == [("incident.resolved", "triggerer")]

    off = Monitoring.model_validate({"detectors": {"platform": {"enabled": False}}})
    clean.append([_life("started", "triggerer", 32, monkeypatch)])
    assert "platform@triggerer" not in [
        a.fingerprint for a in loop.tick(clean, off, NOW + timedelta(minutes=6)).anomalies
    ]


def test_the_monitoring_file_refuses_an_unknown_key_of_the_platform_signal():
    with pytest.raises(ValueError, match=r"detectors\.platform\.window\s+Extra inputs are not permitted"):
        Monitoring.model_validate({"detectors": {"platform": {"window": "5m"}}})


def test_a_backlog_of_lifecycle_events_is_read_a_batch_a_tick_and_the_remembered_components_are_bounded(
    clean, monkeypatch
):
    monkeypatch.setattr(platform, "BATCH", 50)
    monkeypatch.setattr(platform, "MAX_KEYS", 30)
    events = [_life("started", "worker", 1000 + i, monkeypatch, f"worker-{i}") for i in range(80)]
    events.append(_life("started", "worker", 2000, monkeypatch, "worker-79"))  # the last one died
    clean.append(events)
    assert platform.probe(clean, NOW) == []  # the first 50
    (crash,) = platform.probe(clean, NOW)  # the other 31, the crash among them
    assert crash.evidence["name"] == "worker-79"
    with clean.engine.connect() as conn:
        state = load_state(conn, platform.STATE)
    assert (
        len(state["last"]) == 30
        and "worker|" + events[-1].payload["hostname"] + "|worker-79" in state["last"]
    )


def test_a_lifecycle_payload_out_of_bounds_is_refused_with_the_field():
    with pytest.raises(ValueError, match=r"component\s+String should have at most 40 characters"):
        Event(type="platform.started", run_id="platform:x", workflow="baton_monitor",
              payload={"component": "x" * 10_000, "pid": 1}).row()  # fmt: skip


def test_two_ticks_at_once_report_a_crash_once(pg_url, monkeypatch):
    """On PostgreSQL, where two ticks can overlap (SQLite's write transaction holds the whole database)."""
    clean = EventStore(engine_for(pg_url))
    with clean.engine.begin() as conn:
        conn.execute(delete(schema.events))
        conn.execute(delete(schema.monitor_state))
    clean.append([_life("started", "scheduler", 40, monkeypatch)])
    platform.probe(clean, NOW)
    clean.append([_life("started", "scheduler", 41, monkeypatch)])
    found, errors = [], []

    def probe() -> None:
        try:
            found.extend(platform.probe(clean, NOW))
        except BaseException as error:  # a thread's failure must fail the test
            errors.append(error)

    threads = [threading.Thread(target=probe) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and _wheres(found) == ["scheduler"]


@pytest.mark.parametrize(
    ("argv", "component"),
    [
        (["/venv/bin/airflow", "scheduler"], "scheduler"),
        (["airflow", "dag-processor"], "dag-processor"),
        (["airflow", "triggerer", "--capacity", "10"], "triggerer"),
        (["airflow", "celery", "worker", "--concurrency", "2"], "worker"),
        (["airflow", "api-server"], None),
        (["airflow", "tasks", "run"], None),
        (["python", "scheduler"], None),
        (["airflow"], None),
        ([], None),
    ],
)
def test_a_component_is_known_by_its_command_line(argv, component):
    assert lifecycle.airflow_component(argv) == component


def test_a_task_runners_lifecycle_hooks_are_not_a_component_starting(monkeypatch):
    monkeypatch.setattr(lifecycle.sys, "argv", ["airflow", "celery", "worker"])  # a task forked by a worker

    class TaskRunnerMarker:  # what the task runner passes to on_starting and before_stopping
        pass

    class Job:
        pass

    assert _job_component(TaskRunnerMarker()) is None
    assert _job_component(Job()) == "worker"


@pytest.fixture(scope="module")
def private_pg():
    with PrivatePostgres() as server:
        yield server


def test_a_restart_of_the_stores_postgresql_is_an_anomaly(private_pg):
    engine = engine_for(private_pg.url)
    upgrade(engine)
    store = EventStore(engine)
    with engine.begin() as conn:
        conn.execute(delete(schema.monitor_state))
    assert platform.probe(store, NOW) == []
    assert platform.probe(store, NOW) == []  # up all along
    private_pg.restart()
    engine.dispose()  # the pool's connections died with the server
    (restart,) = platform.probe(store, NOW)
    assert restart.where == "postgres" and restart.evidence["started_at"] > restart.evidence["started_before"]
    assert platform.probe(store, NOW) == []
    engine.dispose()


def test_a_restart_of_the_celery_broker_is_an_anomaly_and_a_broker_that_does_not_answer_is_not(clean, caplog):
    with PrivateRedis() as redis:
        assert platform.probe(clean, NOW, redis.url) == []
        assert platform.probe(clean, NOW, redis.url) == []
        redis.restart()
        (restart,) = platform.probe(clean, NOW, redis.url)
        assert restart.where == "broker"
        redis.stop()
        with caplog.at_level(logging.WARNING, logger=platform.__name__):
            assert platform.probe(clean, NOW, redis.url) == []  # down now: nothing to compare
        assert "The Celery broker did not answer the monitor (ConnectionError)" in caplog.text
        redis.start()  # back, a new server: the restart is seen once it answers
        assert _wheres(platform.probe(clean, NOW, redis.url)) == ["broker"]
    assert platform.probe(clean, NOW, "amqp://guest@127.0.0.1//") == []  # not watched: RabbitMQ


def test_the_lifecycle_events_are_the_monitors_and_out_of_the_teams_figures():
    from baton.ops.dashboard.common import SYSTEM_WORKFLOWS
    from baton.ops.monitor.record import MONITOR

    assert lifecycle.WORKFLOW == MONITOR and MONITOR in SYSTEM_WORKFLOWS
