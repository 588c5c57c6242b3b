"""Airflow listener: records what Baton's code never sees — runs starting and ending, a timeout, a
killed worker, a run or a task marked failed in the UI, steps skipped by the scheduler.

Listener hooks run in the task process, the scheduler and the API server; each writes with the
same idempotency keys as the operator, so a fact seen by both is stored once. A listener never
raises: a store that cannot be written is logged.
"""

from __future__ import annotations

import logging
import os
import socket
from functools import cache
from typing import Any
from uuid import UUID

from airflow.listeners import hookimpl
from sqlalchemy import or_, select, update

from baton.events import lifecycle, schema
from baton.events.event import Event, run_started_payload, worker_name
from baton.events.recorder import redact
from baton.events.store import EventStore
from baton.events.types import BATON_TAG, TI_TERMINAL
from baton.queue import is_baton_rule, task_standing

log = logging.getLogger(__name__)


@cache
def _store() -> EventStore:
    return EventStore.from_airflow()


def _session_of(orm_object: Any) -> Any:
    """The metadata-DB session an ORM object (DagRun, TaskInstance) is attached to, if any.

    Listeners in the scheduler run inside its critical section, which forbids commits: they read
    through the scheduler's own session and never open (or commit) one.
    """
    from sqlalchemy.orm import object_session
    from sqlalchemy.orm.exc import UnmappedInstanceError

    try:
        return object_session(orm_object)
    except UnmappedInstanceError:  # a RuntimeTaskInstance in a task process: no metadata DB there
        return None


def _is_baton(dag_id: str, dag: Any, orm_object: Any) -> bool:
    """Whether a DAG is a Baton workflow: by its tags, or by the metadata DB's record of them."""
    tags = getattr(dag, "tags", None)
    if tags is not None:
        return BATON_TAG in tags
    session = _session_of(orm_object)
    if session is None:
        return False
    from airflow.models.dag import DagTag

    query = select(DagTag.name).where(DagTag.dag_id == dag_id, DagTag.name == BATON_TAG)
    return session.scalar(query) is not None


def _state(ti: Any) -> str:
    """A task instance's state as text ('up_for_retry'), whether Airflow hands an enum or a string."""
    state = getattr(ti, "state", None)
    return str(getattr(state, "value", state))


def _record(events: list[Event]) -> None:
    try:
        _store().append(events)
    except Exception:
        log.exception("Could not record Baton events %s", [e.key for e in events])


def _ti_event(ti: Any, kind: str, payload: dict[str, Any]) -> Event | None:
    task = getattr(ti, "task", None)
    in_task = type(ti).__name__ == "RuntimeTaskInstance"
    if in_task and getattr(task, "records_own_events", False):
        return None  # Baton's operator, in this very process, records its start and its end itself
    dag = getattr(task, "dag", None) if task is not None else None
    if not _is_baton(ti.dag_id, dag, ti):
        return None
    agent = (getattr(task, "agent", None) or {}).get("name") if task is not None else None
    return Event.of_task(
        ti,
        kind,
        agent=agent,
        template_version=getattr(task, "template_version", None),
        payload={**payload, "recorded_by": "listener"},
    )


def _on_ti(ti: Any, kind: str, payload: dict[str, Any]) -> None:
    try:
        event = _ti_event(ti, kind, payload)
    except Exception:
        log.exception("Could not describe task instance %s for Baton's events", ti)
        return
    if event is not None:
        _record([event])


def _append(events: list[Event]) -> None:
    _store().append(events)


def _job_component(component: Any) -> str | None:
    """The platform component a lifecycle hook's caller is: a job (scheduler, triggerer, dag processor) by
    its command line; None for a task runner (``TaskRunnerMarker``), which calls the same hooks."""
    return lifecycle.airflow_component() if type(component).__name__ == "Job" else None


@hookimpl
def on_starting(component: Any) -> None:
    """Resolve the store's connection when a component starts, not inside the scheduler's loop
    (a lookup there could read, and commit, Airflow's metadata DB); record a job's start for the monitor."""
    try:
        _store()
    except Exception:
        log.exception("Baton's event store could not be resolved; events will be retried per write")
        _store.cache_clear()
    lifecycle.started(_append, _job_component(component))


@hookimpl
def before_stopping(component: Any) -> None:
    """A job ending cleanly: recorded, so that its next start is not read as a crash."""
    lifecycle.stopped(_append, _job_component(component))


@hookimpl
def on_task_instance_running(previous_state: Any, task_instance: Any) -> None:
    in_task = type(task_instance).__name__ == "RuntimeTaskInstance"  # this very process runs the step
    payload = (
        {"pid": os.getpid(), "hostname": socket.gethostname(), "worker": worker_name()} if in_task else {}
    )
    pool = getattr(task_instance, "pool", None) or getattr(getattr(task_instance, "task", None), "pool", "")
    _on_ti(task_instance, "step.started", {**payload, "pool": pool or ""})


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    _on_ti(task_instance, "step.succeeded", {})


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    will_retry = _state(task_instance) == "up_for_retry"
    # Not an exception: the scheduler's own words (the task process died, stopped heartbeating, or its
    # state was changed externally): the try is lost, as the next try would record it.
    lost = "TaskLost" if error else "Error"
    error_class = type(error).__name__ if isinstance(error, BaseException) else lost
    payload = {"error_class": error_class, "error": redact(str(error or ""))[:1000], "will_retry": will_retry}
    try:
        failed = _ti_event(task_instance, "step.failed", payload)
        if failed is None:
            return
        events = [failed]
        if will_retry:
            retried = {"next_try": failed.try_number + 1, "recorded_by": "listener"}
            events.append(Event(**{**_fields(failed), "type": "step.retried", "payload": retried}))
    except Exception:
        log.exception("Could not describe task instance %s for Baton's events", task_instance)
        return
    _record(events)


def _fields(event: Event) -> dict[str, Any]:
    return {
        k: getattr(event, k)
        for k in ("run_id", "workflow", "step", "map_index", "try_number", "agent", "template_version")
    }


@hookimpl
def on_task_instance_skipped(previous_state: Any, task_instance: Any) -> None:
    _on_ti(task_instance, "step.skipped", {"reason": "the step skipped itself"})


def _run_event(dag_run: Any, kind: str, payload: dict[str, Any]) -> Event | None:
    if not _is_baton(dag_run.dag_id, getattr(dag_run, "dag", None), dag_run):
        return None
    return Event(type=kind, run_id=dag_run.run_id, workflow=dag_run.dag_id, payload=payload)


def _duration(dag_run: Any) -> float | None:
    start, end = getattr(dag_run, "start_date", None), getattr(dag_run, "end_date", None)
    return round((end - start).total_seconds(), 3) if start and end else None


def _unrecorded_steps(dag_run: Any) -> list[Event]:
    """Steps whose final state has no event yet: skipped by the scheduler, marked in the UI."""
    e = schema.events.c
    with _store().engine.connect() as conn:
        seen = set(conn.execute(select(e.step, e.map_index, e.type).where(e.run_id == dag_run.run_id)).all())
    events = []
    session = _session_of(dag_run)
    task_instances = dag_run.get_task_instances(session=session) if session else dag_run.get_task_instances()
    for ti in task_instances:
        kind = TI_TERMINAL.get(_state(ti))
        if kind is None or (ti.task_id, ti.map_index, kind) in seen:
            continue
        payload = {"recorded_by": "run end"}
        if kind == "step.skipped":
            payload["reason"] = f"{_state(ti)} when the run ended"
        elif kind == "step.failed":
            payload |= {"error_class": "MarkedFailed", "error": "failed without a recorded error (marked?)"}
        events.append(
            Event(
                type=kind,
                run_id=dag_run.run_id,
                workflow=dag_run.dag_id,
                step=ti.task_id,
                map_index=ti.map_index,
                try_number=ti.try_number or 0,
                payload=payload,
            )
        )
    return events


def _on_run(dag_run: Any, kind: str, payload: dict[str, Any], reconcile: bool) -> None:
    try:
        event = _run_event(dag_run, kind, payload)
        if event is not None:
            _record([*(_unrecorded_steps(dag_run) if reconcile else []), event])
    except Exception:
        log.exception("Could not record Baton's %s of %s", kind, getattr(dag_run, "run_id", "?"))


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    payload = run_started_payload(dag_run, getattr(dag_run, "logical_date", None))
    _on_run(dag_run, "run.started", payload, reconcile=False)
    try:
        event = _priority_event(dag_run)
        if event is not None:
            _record([event])
    except Exception:
        log.exception("Could not record the priority of %s", getattr(dag_run, "run_id", "?"))


def _priority_event(dag_run: Any) -> Event | None:
    """``priority.assigned``: where the run stands in the queue as it starts (the scheduler has set its DAG).

    Airflow weighed the run's task instances when it created them, without the run and, in the scheduler,
    without its deadline (``baton.queue``). They are weighed again here with both, before any of them is
    scheduled, through the scheduler's own session (its transaction commits the new weights)."""
    dag = getattr(dag_run, "dag", None)
    tasks = [task for task in getattr(dag, "tasks", None) or [] if is_baton_rule(task.weight_rule)]
    if not tasks:
        return None
    session = _session_of(dag_run)
    deadlines = _stored_deadlines(session, dag)
    standing = task_standing(tasks[0], dag_run, whole_run=True, deadlines=deadlines)
    if session is not None:
        _reweigh(session, dag_run, tasks, deadlines)
    return Event(
        type="priority.assigned",
        run_id=dag_run.run_id,
        workflow=dag_run.dag_id,
        payload=standing.model_dump(),
    )


def _stored_deadlines(session: Any, dag: Any) -> dict[str, Any]:
    """The DAG's Deadline Alerts as Airflow stored them (id -> ``callback_def``), read in the scheduler's session
    when the DAG holds their ids; nothing when it holds the alerts themselves (or there is no session)."""
    ids = [alert for alert in getattr(dag, "deadline", None) or [] if isinstance(alert, str)]
    if session is None or not ids:
        return {}
    # the metadata DB's models: only the scheduler's side has them (task processes have no metadata DB)
    from airflow.models.deadline_alert import DeadlineAlert

    rows = session.execute(
        select(DeadlineAlert.id, DeadlineAlert.callback_def).where(
            DeadlineAlert.id.in_([UUID(i) for i in ids])
        )
    )
    return {str(row.id): row.callback_def for row in rows}


def _reweigh(session: Any, dag_run: Any, tasks: list[Any], deadlines: dict[str, Any]) -> None:
    """The weights of the run's task instances not yet scheduled, with its deadline and its own level."""
    # the metadata DB's models: only the scheduler's side has them (task processes have no metadata DB)
    from airflow.models.taskinstance import TaskInstance as TI

    by_weight: dict[int, list[str]] = {}
    for task in tasks:
        by_weight.setdefault(task_standing(task, dag_run, deadlines=deadlines).weight, []).append(
            task.task_id
        )
    for weight, task_ids in by_weight.items():
        session.execute(
            update(TI)
            .where(TI.dag_id == dag_run.dag_id, TI.run_id == dag_run.run_id, TI.task_id.in_(task_ids))
            .where(or_(TI.state.is_(None), TI.state == "scheduled"))
            .values(priority_weight=weight)
            .execution_options(synchronize_session=False)
        )


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _on_run(dag_run, "run.succeeded", {"duration_s": _duration(dag_run)}, reconcile=True)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _on_run(
        dag_run,
        "run.failed",
        {"duration_s": _duration(dag_run), "reason": str(msg or "")[:500]},
        reconcile=True,
    )
