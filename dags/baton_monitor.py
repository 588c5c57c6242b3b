"""Airflow DAG file of Baton's monitor: ``baton_monitor`` runs every minute, or every ``tick`` of this
folder's ``monitoring.yaml`` (``baton.dagfile.monitor_dag``).

Each run folds the events since the last into signals, runs the detectors of ``monitoring.yaml`` (or the
defaults), opens, updates and resolves incidents, carries out their runbooks and posts to Slack: see
``baton.ops.monitor``. One run at a time; a late run is not caught up (the next one covers it).
"""

from pathlib import Path

from baton.dagfile import monitor_dag

monitor_dag(Path(__file__).resolve().parent)
