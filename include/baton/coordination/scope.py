"""The Jinja scope of one try of a step, from Airflow's task context: ``inputs`` (the validated params),
``steps`` (the upstream outputs it reads, a for_each's batches joined), ``context`` (filled by the
shared context), ``trigger`` (what started the run) and ``run``."""

from __future__ import annotations

from typing import Any

from baton.coordination import evaluation
from baton.coordination.subtasks import join_batches
from baton.plan import CompiledStep
from baton.spec.priority import PARAM as PRIORITY_PARAM


def jinja_scope(step: CompiledStep, context: Any) -> dict[str, Any]:
    ti = context["ti"]
    steps = {step_id: ti.xcom_pull(task_ids=step.task_of(step_id)) for step_id in step.reads}
    for step_id in step.fanned_reads:  # a for_each step: join its batches (one XCom per map index)
        steps[step_id] = join_batches(steps[step_id])
    run = context["dag_run"]
    logical_date = context.get("logical_date")
    # the run's priority (baton.spec.priority) is a param of the DAG, not an input of the template
    params = {k: v for k, v in context["params"].items() if k != PRIORITY_PARAM}
    return {
        "inputs": {**step.input_defaults, **{k: v for k, v in params.items() if v is not None}}
        if step.input_defaults
        else params,
        "steps": steps,
        "context": {},
        "trigger": trigger_scope(step.trigger_kind, context),
        "run": {
            "id": run.run_id,
            "logical_date": logical_date.isoformat() if logical_date else None,
            "ds": context.get("ds"),
            "try_number": ti.try_number,
        },
    }


def trigger_scope(kind: str | None, context: Any) -> dict[str, Any]:
    """What started the run (empty for a manual or scheduled run): the asset events that triggered it
    (``payload``: the newest one's extra; ``events``: all); for a sensor, what it found is also at the
    top (``trigger.rows``, ``trigger.count``, ``trigger.value``, ``trigger.period``)."""
    if kind is None:
        return {}
    if (case := evaluation.current()) is not None and case.trigger is not None:
        return _case_trigger(kind, case.id, dict(case.trigger))
    events = [
        {
            "asset": asset_key.name,
            "payload": dict(event.extra or {}),
            "source_dag_id": event.source_dag_id,
            "source_run_id": event.source_run_id,
            "timestamp": event.timestamp.isoformat() if event.timestamp else None,
        }
        for asset_key, asset_events in (context.get("triggering_asset_events") or {}).items()
        for event in asset_events
    ]
    events.sort(key=lambda e: e["timestamp"] or "")
    if not events:
        return {"events": [], "payload": {}}
    payload = events[-1]["payload"]
    if kind == "queue":  # a watcher's event: the message is under "payload"
        payload = payload.get("payload", payload)
    found = payload if kind == "sensor" else {}  # trigger.rows, trigger.value ...
    return {**found, "events": events, "payload": payload, "asset": events[-1]["asset"]}


def _case_trigger(kind: str, case_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """An evaluation case's ``trigger``, in the shape an asset event, a sensor or a queue's message gives."""
    event = {"asset": "", "payload": payload, "source_dag_id": "evaluation", "source_run_id": case_id,
             "timestamp": None}  # fmt: skip
    return {**(payload if kind == "sensor" else {}), "events": [event], "payload": payload, "asset": ""}
