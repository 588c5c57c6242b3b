"""The DAG of the version an evaluation runs, for the throwaway dag bundle of :mod:`baton.evaluate.run`: its
one DAG file holds ``globals().update(evaluated_dags())``. The template and roster are named by the
evaluation's process (``BATON_EVAL_TEMPLATE``, ``BATON_EVAL_ROSTER``), which alone parses that bundle."""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import DAG

from baton.compile.build import build_dag
from baton.plan import plan_workflow
from baton.spec.loading import read_roster, read_workflow

TEMPLATE_ENV = "BATON_EVAL_TEMPLATE"
ROSTER_ENV = "BATON_EVAL_ROSTER"
DAG_FILE = "baton_evaluated.py"
BUNDLE = "baton-eval"  # the throwaway dag bundle's name
DAG_FILE_TEXT = (
    '"""The airflow DAG of the template an evaluation (baton eval) runs."""\n'
    "from baton.evaluate.bundle import evaluated_dags\n\n"
    "globals().update(evaluated_dags())\n"
)


def evaluated_dags() -> dict[str, DAG]:
    """The DAG of the evaluated template, with no Deadline Alerts (``dag.test()`` of Airflow 3.3.2 cannot
    finish a run that has them, and an evaluation has no deadline) and no failure callbacks (a failed case
    alerts nobody: the evaluation's report says what failed)."""
    roster_path = Path(os.environ[ROSTER_ENV])
    roster = read_roster(roster_path)[0] if roster_path.is_file() else None
    workflow, _ = read_workflow(Path(os.environ[TEMPLATE_ENV]), roster)
    dag = build_dag(plan_workflow(workflow, roster))
    dag.deadline = None
    for task in dag.tasks:
        task.on_failure_callback = []
    return {dag.dag_id: dag}


__all__ = ["BUNDLE", "DAG_FILE", "DAG_FILE_TEXT", "ROSTER_ENV", "TEMPLATE_ENV", "evaluated_dags"]
