"""A person answering Airflow's human-in-the-loop requests during a ``dag.test()`` run with ``baton approve``
(issue 17): the command writes the answer through Airflow's own ``PATCH .../hitlDetails`` handler, which
resumes the parked task; every workflow test with a person in it runs it."""

from __future__ import annotations

from typing import Any


def waiting(dag_id: str, task_id: str) -> tuple[str, dict[str, Any]] | None:
    """(task instance id, what was asked) of ``task_id`` when it waits for a person, unanswered."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    with create_session() as session:
        parked = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.task_id == task_id,
                TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
            )
        ).all()
        for ti in parked:
            detail = session.get(HITLDetail, ti.id)
            if detail is not None and not detail.response_received:
                asked = {
                    "subject": detail.subject,
                    "body": detail.body,
                    "options": list(detail.options),
                    "params": dict(detail.params or {}),
                }
                return ti.id, asked
    return None


def respond(ti_id: str, chosen: list[str], params: dict[str, Any], user: str) -> None:
    """Answer with ``baton approve``: ``chosen`` options, ``params`` as ``--field key=<JSON>``."""
    import json

    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    from baton.cli import main as baton

    with create_session() as session:
        ti = session.get(TaskInstance, ti_id)
        where = [ti.run_id, ti.task_id, "--dag", ti.dag_id, "--map-index", str(ti.map_index)]
    options = [arg for option in chosen for arg in ("--option", option)]
    fields = [arg for key, value in params.items() for arg in ("--field", f"{key}={json.dumps(value)}")]
    assert baton(["approve", *where, *options, *fields, "--by", user]) == 0, (chosen, params)


class Person:
    """Answers the first request of ``task_id`` with ``chosen`` (and ``params``); pass it as the
    ``person`` of ``run_dag_test_in_subprocess``. ``asked`` is what the run asked, once it did."""

    def __init__(
        self, dag_id: str, task_id: str, chosen: list[str], params: dict | None = None, user: str = ""
    ):
        self.dag_id, self.task_id, self.chosen, self.params = dag_id, task_id, chosen, params or {}
        self.user = user or "a person"
        self.asked: dict[str, Any] | None = None

    def __call__(self) -> bool:
        """Look once; answer when asked. Whether the request was answered."""
        found = waiting(self.dag_id, self.task_id)
        if found is None:
            return False
        ti_id, self.asked = found
        respond(ti_id, self.chosen, self.params, self.user)
        return True


class CarefulPerson(Person):
    """A ``Person`` who first gets ``baton approve`` wrong in every way a hurried person would (``tries``:
    argument lists after ``RUN STEP``), keeping what the command printed and returned for each, then answers.
    """

    def __init__(self, *args: Any, tries: list[list[str]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.tries = tries
        self.attempts: list[tuple[int, str]] = []
        self.run_id: str | None = None

    def __call__(self) -> bool:
        import contextlib
        import io

        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session

        from baton.cli import main as baton

        found = waiting(self.dag_id, self.task_id)
        if found is None:
            return False
        with create_session() as session:
            self.run_id = session.get(TaskInstance, found[0]).run_id
        for argv in self.tries:
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                try:
                    status = baton(["approve", self.run_id, self.task_id, *argv])
                except SystemExit as exit:  # argparse refused it
                    status = int(exit.code or 0)
            self.attempts.append((status, printed.getvalue()))
        return super().__call__()
