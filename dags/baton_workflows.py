"""Airflow DAG file of Baton: one DAG per healthy workflow template in dags/workflows/*.yaml.

Broken templates are left out here and show as the import error of baton_template_errors.py (file,
line, key path, fix); `baton validate` prints the same messages on the command line.
"""

from pathlib import Path

from baton.compile.loader import load_dags

globals().update(load_dags(Path(__file__).resolve().parent))
