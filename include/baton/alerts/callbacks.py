"""The alerts Airflow calls: a task that fails for good, and a run or a step past its Deadline Alert."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from baton.alerts import delivery
from baton.alerts.delivery import send
from baton.alerts.message import DEADLINE_CALLBACK, Alert

if TYPE_CHECKING:
    from airflow.sdk import DeadlineAlert

    from baton.events.store import EventStore
    from baton.spec.models import Workflow

log = logging.getLogger("baton.alerts")  # one logger for every alert, whichever module raised it


def on_task_failure(context: Any) -> None:
    """A task's ``on_failure_callback`` (its last try failed): a ``step_failed`` alert. Never raises."""
    try:
        ti = context["ti"]
        exception = context.get("exception")
        if isinstance(exception, BaseException):
            error_class, detail = type(exception).__name__, str(exception)
        else:  # the dag processor's callback for a lost task passes a message, not an exception
            error_class, detail = "", str(exception or "")
        map_index = getattr(ti, "map_index", None)
        alert = Alert(
            kind="step_failed",
            workflow=ti.dag_id,
            run_id=ti.run_id,
            step=ti.task_id,
            map_index=map_index if map_index is not None else -1,
            error_class=error_class,
            attempt=getattr(ti, "try_number", None),
            message=f"{error_class}: {detail}" if error_class and detail else detail or "the step failed",
        )
    except Exception:
        log.exception("could not build a failure alert from the task's context")
        return
    send(alert)


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _step_done_by(store: EventStore, run_id: str, step: str, deadline: datetime | None) -> bool:
    """Whether every started instance of the step finished (succeeded or skipped) by the deadline."""
    from baton.events.event import Event  # deferred: DAG files load the alerts: no event catalogue at parse

    started: set[int] = set()
    finished: dict[int, datetime] = {}
    types = ["step.started", "step.succeeded", "step.skipped"]
    for event in store.read(run_id, types=types):
        if not isinstance(event, Event) or event.step != step:
            continue
        if event.type == "step.started":
            started.add(event.map_index)
        else:
            finished.setdefault(event.map_index, event.ts)
    if not finished or not started <= set(finished):
        return False
    if deadline is None:
        return True
    return all(_when(ts) is None or _when(ts) <= deadline for ts in finished.values())


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


async def deadline_missed(
    workflow: str, deadline_s: float, step: str | None = None, context: dict | None = None
) -> None:
    """The Deadline Alert callback (run by Airflow's triggerer): a ``deadline_missed`` alert, unless
    the step it watches finished in time. Never raises."""
    import asyncio

    try:
        dag_run = (context or {}).get("dag_run") or {}
        deadline = (context or {}).get("deadline") or {}
        run_id = dag_run.get("dag_run_id") or dag_run.get("run_id") or "unknown run"
        deadline_time = _when(deadline.get("deadline_time"))
        ended = _when(dag_run.get("end_date"))
        if ended is not None and deadline_time is not None and ended <= deadline_time:
            log.info(
                "%s run %s ended %s at %s, before its deadline %s: no alert",
                workflow,
                run_id,
                dag_run.get("state"),
                ended,
                deadline_time,
            )
            return
        if step is not None:
            try:
                store = await asyncio.to_thread(delivery._default_store)
                done = await asyncio.to_thread(_step_done_by, store, run_id, step, deadline_time)
            except Exception:  # the store cannot say the step made it: better an alert too many than none
                log.exception(
                    "could not check step %s of %s run %s in the store; alerting", step, workflow, run_id
                )
                done = False
            if done:
                log.info("%s run %s: step %s was done before its deadline; no alert", workflow, run_id, step)
                return
        limit = _duration(deadline_s)
        what = f"step {step} was not done" if step else "the run had not finished"
        at = f" (deadline {deadline_time:%Y-%m-%d %H:%M:%S} UTC)" if deadline_time else ""
        alert = Alert(
            kind="deadline_missed",
            workflow=workflow,
            run_id=run_id,
            step=step,
            message=f"{what} {limit} after the run was queued{at}; the run is {dag_run.get('state', '?')}",
        )
        await asyncio.to_thread(send, alert)
    except Exception:
        log.exception("the deadline callback of %s (step %s) failed", workflow, step)


def deadline_alerts(workflow: Workflow) -> list[DeadlineAlert]:
    """Airflow Deadline Alerts for a template: ``deadline`` (the run) and each step's ``deadline``.

    Airflow's deadlines belong to the DagRun, so a step's deadline is one on the run, measured from
    the time the run was queued; its callback checks the event store for the step.
    """
    watched = [(None, workflow.deadline)] + [(s.id, s.deadline) for s in workflow.steps]
    watched = [(step, interval) for step, interval in watched if interval is not None]
    if not watched:
        return []
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    alerts = []
    for step, interval in watched:
        kwargs: dict[str, Any] = {"workflow": workflow.workflow, "deadline_s": interval.total_seconds()}
        if step is not None:
            kwargs["step"] = step
        name = (
            f"{workflow.workflow}: "
            + (f"step {step}" if step else "run")
            + f" within {_duration(interval.total_seconds())}"
        )
        alerts.append(
            DeadlineAlert(
                reference=DeadlineReference.DAGRUN_QUEUED_AT,
                interval=interval,
                callback=AsyncCallback(DEADLINE_CALLBACK, kwargs=kwargs),
                name=name[:250],
            )
        )
    return alerts
