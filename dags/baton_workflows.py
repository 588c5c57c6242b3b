"""Airflow DAG file of Baton: one DAG per healthy workflow template in dags/workflows/*.yaml.

Broken templates are left out here and show as the import error of baton_template_errors.py (file,
line, key path, fix); `baton validate` prints the same messages on the command line. Beside shard files
(`baton shard N`: baton_workflows_<k>_of_<n>.py) it leaves their templates to them.
"""

from pathlib import Path

from baton.compile.loader import load_dags

globals().update(load_dags(Path(__file__)))
