"""baton.celery_config: Airflow's Celery defaults, and the task runtime preloaded by a worker only (with
what tasks otherwise imported on first use: scipy.stats for a rollout decision, 1.8 s of CPU a task, the
OpenAI client, Airflow's DAG bag; see baton.preload)."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
FIRST_USE = sys.argv[1:]
from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init
from baton.celery_config import CELERY_CONFIG

assert CELERY_CONFIG == DEFAULT_CELERY_CONFIG, set(CELERY_CONFIG) ^ set(DEFAULT_CELERY_CONFIG)
print("before", "baton.preload" in sys.modules, "baton.plugin.listener" in sys.modules)
print("first use before", *(name in sys.modules for name in FIRST_USE))
worker_init.send(sender=None)  # what a Celery worker's main process fires before it forks its pool
print("after", "baton.preload" in sys.modules, "baton.plugin.listener" in sys.modules)
print("first use", *(name in sys.modules for name in FIRST_USE))
"""
FIRST_USE = ("scipy.stats", "openai.resources.chat.chat", "airflow.dag_processing.dagbag", "psycopg")


def test_only_a_worker_starting_preloads_the_task_runtime():
    done = subprocess.run(
        [sys.executable, "-c", CHECK, *FIRST_USE], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-4:] == [
        "before False False",
        "first use before False False False False",  # so the preload is what loads them
        "after True True",
        "first use True True True True",
    ]
