"""A person answering Airflow's human-in-the-loop requests during a ``dag.test()`` run, the way
``PATCH .../taskInstances/<task>/<map index>/hitlDetails`` does: the response on the task's HITL detail,
and the parked task resumed with it (Airflow's ``handle_event_submit``)."""

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
    """Record ``user``'s answer and resume the parked task."""
    from airflow._shared.timezones import timezone
    from airflow.models.hitl import HITLDetail, HITLUser
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.get(TaskInstance, ti_id)
        detail = session.get(HITLDetail, ti_id)
        assert set(chosen) <= set(detail.options), (chosen, detail.options)
        detail.responded_by = HITLUser(id=user, name=user)
        detail.responded_at = timezone.utcnow()
        detail.chosen_options = chosen
        detail.params_input = params
        session.add(detail)
        handle_event_submit(TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=session)


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
