"""Airflow DAG loader of Baton: builds one DAG per workflow template in dags/workflows/*.yaml.

A broken template shows as this file's import error (file, key path, fix) while every healthy
template still loads. Run `baton validate` for the same messages on the command line.
"""

from pathlib import Path

from baton.compile import load_dags

globals().update(load_dags(Path(__file__).resolve().parent))
