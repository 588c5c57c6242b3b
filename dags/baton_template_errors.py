"""Airflow DAG file of Baton's template errors: every broken template in dags/workflows/ shows as
this file's import error (file, line, key path, fix) in the Airflow UI.

It is apart from baton_workflows.py because Airflow marks every DAG of a file with an import error
stale and refuses to trigger it; here the error touches no healthy DAG, and it clears itself once
the templates are fixed.
"""

from pathlib import Path

from baton.compile.loader import load_template_errors

globals().update(load_template_errors(Path(__file__).resolve().parent))
