"""Baton's Celery settings (``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=baton.celery_config.CELERY_CONFIG``):
Airflow's own defaults, plus one thing: a worker loads the task runtime (:mod:`baton.preload`) once,
before it forks its pool, so that each task process inherits it instead of importing it again, as the
LocalExecutor's forkserver does (scripts/env.sh). Only a Celery worker fires ``worker_init``: the
scheduler, which imports this module too, loads nothing more.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init

CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)


@worker_init.connect
def preload(**_: Any) -> None:
    import baton.preload  # noqa: F401  # deferred: for a worker only; the scheduler imports this module too
