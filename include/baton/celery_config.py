"""Baton's Celery settings (``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=baton.celery_config.CELERY_CONFIG``):
Airflow's own defaults, plus two things: a worker loads the task runtime (:mod:`baton.preload`) once,
before it forks its pool, so that each task process inherits it instead of importing it again, as the
LocalExecutor's forkserver does (scripts/env.sh); and it records its start and clean stop for the monitor
(``platform.started`` / ``platform.stopped``). Only a Celery worker fires ``worker_init``: the
scheduler, which imports this module too, loads nothing more.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init, worker_ready, worker_shutdown

from baton.events import lifecycle

CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)


@worker_init.connect
def preload(**_: Any) -> None:
    import baton.preload  # noqa: F401  # deferred: for a worker only; the scheduler imports this module too


def _append(events: list[Any]) -> None:
    from baton.events.store import EventStore  # deferred: the store's engine, only in a worker that records

    store = EventStore.from_airflow()
    try:
        store.append(events)
    finally:
        store.engine.dispose()  # no pooled connection left for a pool process forked later to share


@worker_ready.connect
def ready(**_: Any) -> None:
    """The worker is up: recorded for the monitor, which reads a start with no clean stop before it as a crash
    (``baton.events.lifecycle``)."""
    lifecycle.started(_append, "worker")


@worker_shutdown.connect
def shutdown(**_: Any) -> None:
    lifecycle.stopped(_append, "worker")
