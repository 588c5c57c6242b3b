"""What a step waiting for a person tells people, and how the wait ends under ``airflow dags test``."""

from __future__ import annotations

import logging
from typing import Any


def how_to_answer(context: Any, question: Any) -> str:
    """What the log says once a step waits for a person: the three ways to answer, with this question's
    options and fields, so that nobody has to look them up (under ``airflow dags test`` above all)."""
    ti = context["ti"]
    options = " | ".join(question.options)
    fields = ", ".join(sorted(question.params)) or "none"
    first = question.options[0] if question.options else "Approve"
    index = ti.map_index if ti.map_index is not None else -1
    where = f"{ti.dag_id}/dagRuns/{ti.run_id}/taskInstances/{ti.task_id}/{index}"
    return (
        f"Waiting for a person: {question.subject}\n"
        f"  options: {options}; form fields: {fields}\n"
        f"  answer on Airflow's Required Actions page, or from a shell with this Airflow's settings:\n"
        f"    baton approve {ti.run_id} {ti.task_id} --option '{first}'"
        + (f" --map-index {index}" if index >= 0 else "")
        + (" [--field name=value ...]" if question.params else "")
        + "\n"
        f"  or over the REST API: PATCH /api/v2/dags/{where}/hitlDetails "
        f'with {{"chosen_options": ["{first}"], "params_input": {{...}}}}'
    )


def stop_on_sigterm_under_test(context: Any) -> None:
    """Under ``airflow dags test`` / ``dag.test()`` the run waits in this very process, polling every
    second, and the task runner's SIGTERM handler (it calls the finished task's ``on_kill``) would keep it
    waiting forever: here SIGTERM ends the wait (exit 143), the question stays open for the next run."""
    import signal
    import threading

    dag_run = context.get("dag_run")
    by = getattr(dag_run, "triggering_user_name", None)  # dag.test() names its runs' user "dag_test"
    if by != "dag_test" or threading.current_thread() is not threading.main_thread():
        return

    def stop(signum: int, frame: Any) -> None:
        logging.getLogger("baton.escalation").warning(
            "SIGTERM while waiting for a person: the test run stops here; the question stays on the "
            "Required Actions page (baton approve answers it)"
        )
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
