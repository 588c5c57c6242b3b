"""Another run's conf: from the metadata database (the CLI), or from inside a task.

Airflow 3.3's Task SDK has no public call that returns the conf of a run other than the task's own (the
``RuntimeTaskInstance`` helpers give counts and states; the REST API needs a token a task does not have).
The ``baton_compensate`` DAG needs it to render a past run's compensations with that run's inputs, so
this module asks the API server through the supervisor's ``GetDagRun`` message, the way the SDK's own
``get_dagrun_state`` asks for a state. It is the one place Baton touches that internal channel; when the
SDK offers a public call, only this function changes.
"""

from __future__ import annotations

from typing import Any


def conf_of_run(dag_id: str, run_id: str) -> dict[str, Any]:
    """The conf of run ``run_id`` of ``dag_id``, asked of the API server (a task has no metadata-DB
    access in Airflow 3)."""
    from airflow.sdk.execution_time.comms import GetDagRun
    from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

    return dict(SUPERVISOR_COMMS.send(GetDagRun(dag_id=dag_id, run_id=run_id)).conf or {})


def conf_from_metadata_db(dag_id: str, run_id: str) -> dict[str, Any]:
    """The run's conf, from Airflow's metadata DB (events keep only its digest): where the CLI runs."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = DagRun.find(dag_id=dag_id, run_id=run_id, session=session)
        return dict(runs[0].conf or {}) if runs else {}
