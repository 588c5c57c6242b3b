"""Airflow DAG file of Baton's monitor: ``baton_monitor`` runs every minute, or every ``tick`` of
``monitoring.yaml`` (issue 18).

Each run folds the events since the last into signals, runs the detectors of ``monitoring.yaml`` (or the
defaults), opens, updates and resolves incidents, carries out their runbooks and posts to Slack: see
``baton.ops.monitor``. One run at a time; a late run is not caught up (the next one covers it).
"""

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import dag, task

FOLDER = Path(__file__).resolve().parent
TICK = timedelta(minutes=1)


def _tick() -> timedelta:
    """monitoring.yaml's ``tick``, read when Airflow parses this file, and only when the folder has one (so
    the bundled folder parses nothing more). A broken monitoring.yaml leaves the minute: the DAG still
    loads, and each of its runs fails with the file's errors, their key paths and fixes."""
    if not (FOLDER / "monitoring.yaml").is_file():
        return TICK
    from baton.errors import BatonError
    from baton.ops.monitoring_config import load_config

    try:
        return load_config(FOLDER).tick
    except (BatonError, OSError):
        return TICK


@dag(
    dag_id="baton_monitor",
    description="Baton's monitor: signals, anomaly detection, incidents and their runbooks, every tick",
    schedule=_tick(),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["baton", "operations"],
    default_args={"owner": "baton", "retries": 0, "execution_timeout": timedelta(minutes=5)},
)
def baton_monitor():
    @task
    def tick() -> dict:
        from baton.events import EventStore
        from baton.ops.monitor import tick
        from baton.ops.monitoring_config import load_config

        report = tick(EventStore.from_airflow(), load_config(FOLDER), dags=FOLDER)
        return {
            "events_folded": report.folded,
            "anomalies": [f"{a.kind}@{a.where}" for a in report.anomalies],
            "transitions": [f"{t.type} {t.where}" for t in report.transitions],
            "actions": [f"{a.do} {a.target}: {outcome}" for a, outcome in report.actions],
            "notified": report.notified,
        }

    tick()


baton_monitor()
