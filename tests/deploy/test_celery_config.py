"""baton.celery_config: Airflow's Celery defaults, and the task runtime preloaded by a worker only (with
what tasks otherwise imported on first use: scipy.stats for a rollout decision, 1.8 s of CPU a task, the
OpenAI client, Airflow's DAG bag; see baton.preload)."""

from __future__ import annotations

import os
import subprocess
import sys

CHECK = """
import sys
FIRST_USE = {first_use!r}
from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init
from baton.celery_config import CELERY_CONFIG

assert CELERY_CONFIG == DEFAULT_CELERY_CONFIG, set(CELERY_CONFIG) ^ set(DEFAULT_CELERY_CONFIG)
print("before", "baton.preload" in sys.modules, "baton.plugin.listener" in sys.modules)
worker_init.send(sender=None)  # what a Celery worker's main process fires before it forks its pool
print("after", "baton.preload" in sys.modules, "baton.plugin.listener" in sys.modules)
print("first use", *(name in sys.modules for name in FIRST_USE))
from baton import extensions
print("extensions", "demo.skills" in sys.modules, extensions._loaded)
"""
FIRST_USE = ("scipy.stats", "openai.resources.chat.chat", "airflow.dag_processing.dagbag", "psycopg")


def test_only_a_worker_starting_preloads_the_task_runtime():
    """... and the extensions; one that fails is reported, and forgotten so that each task tries it again
    and reports it in its own log."""
    env = {**os.environ, "BATON_EXTENSIONS": "demo.skills,no_such_baton_extension"}
    done = subprocess.run(
        [sys.executable, "-c", CHECK.format(first_use=FIRST_USE)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout + done.stderr  # Airflow's logging writes to stdout
    assert [line for line in done.stdout.splitlines() if "[error" not in line][-4:] == [
        "before False False",
        "after True True",
        "first use True True True True",
        "extensions True None",
    ]
    assert (
        "extension module 'no_such_baton_extension' (BATON_EXTENSIONS) failed to import: ModuleNotFoundError"
        in printed
    )
