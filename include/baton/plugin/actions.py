"""What a person may do from the Coordination page, each an ``action.taken`` event under their name:
trigger a workflow with its inputs, stop a run in an emergency (and compensate it), reassign a routed
step's next try to a chosen agent, open or close an agent's circuit. (Acknowledging an incident is the
incidents API's.)

Every action needs the right to change runs of its DAG (a viewer sees the pages but cannot act), and the
header ``X-Baton-Action: 1``: the pages send it; a form on another site cannot (a cross-site request that
sets a header needs CORS, which these routes never grant), so a cookie alone cannot act. What changes
Airflow (trigger, stop, the compensation) goes through Airflow's own REST API with the caller's own token:
Airflow checks their permissions and validates the inputs against the DAG's params itself.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path as Folder
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.configuration import conf
from airflow.models.hitl import HITLDetail
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from baton.compile.build import COMPENSATE_DAG_ID as COMPENSATE_DAG
from baton.compile.loader import read_roster, steps_of
from baton.coordination import load
from baton.events.event import Event
from baton.events.store import EventStore
from baton.ops.airflow_api import AirflowApi, AirflowApiError

ACTION_HEADER = "X-Baton-Action"
MAX_CONF = 100_000  # bytes of a trigger's inputs as JSON


def _from_a_page(x_baton_action: Annotated[str | None, Header()] = None) -> None:
    if x_baton_action != "1":
        raise HTTPException(
            403,
            f"an action needs the header {ACTION_HEADER}: 1 (Baton's pages send it; a form on another site cannot)",
        )


FromAPage = Depends(_from_a_page)
ActOnRuns = Depends(requires_access_dag("PUT", DagAccessEntity.RUN))
TriggerRuns = Depends(requires_access_dag("POST", DagAccessEntity.RUN))
DagId = Annotated[str, Path(max_length=250, pattern=r"^[A-Za-z0-9_.-]+$")]
RunId = Annotated[str, Path(max_length=250)]
router = APIRouter(prefix="/api/actions", dependencies=[FromAPage])


class Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conf: dict[str, Any] = Field(default_factory=dict, description="the workflow's inputs")


class Stop(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=1000, description="why (kept with the compensation)")
    compensate: bool = True


class Reassign(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent: str = Field(min_length=1, max_length=250)
    reason: str = Field(default="", max_length=1000)
    retry_now: bool = Field(default=False, description="start the next try now, not after the retry delay")


class Settle(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accept: bool = Field(description="true: apply the proposed decision; false: every run takes the control")


class Circuit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    open: bool
    minutes: int = Field(
        default=60, ge=1, le=7 * 24 * 60, description="how long an opened circuit stays open"
    )


def _token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:] if header.lower().startswith("bearer ") else request.cookies.get("_token", "")


def _airflow(request: Request) -> Any:
    """Airflow's REST API at the address this request came to, as the caller: under Airflow's root path
    (``[api] base_url``'s path, e.g. ``/airflow``, which Starlette keeps as ``app_root_path``), as a proxy
    that routes only that path to Airflow needs."""
    root = request.scope.get("app_root_path", "").rstrip("/")
    return AirflowApi.as_caller(f"{request.url.scheme}://{request.url.netloc}{root}", _token(request))


def _record(
    store: EventStore, verb: str, target: str, by: str, ok: bool, detail: str, workflow: str = "baton"
) -> None:
    payload = {"verb": verb, "target": target[:600], "by": by[:250], "ok": ok, "detail": detail[:2000]}
    at = datetime.now(UTC).isoformat()
    event = Event(type="action.taken", run_id=f"action:{target}"[:250], workflow=workflow, payload=payload,
                  discriminator=f"{verb}@{at}")  # fmt: skip
    store.append([event])


def _through_airflow(store: EventStore, verb: str, target: str, by: str, work: Any, workflow: str) -> Any:
    """``work()`` (calls to Airflow's API), recorded whatever its outcome; Airflow's refusal is the answer's."""
    try:
        done = work()
    except AirflowApiError as error:
        _record(store, verb, target, by, False, str(error), workflow=workflow)
        raise HTTPException(
            error.status if error.status and error.status < 500 else 502, str(error)
        ) from None
    _record(store, verb, target, by, True, str(done), workflow=workflow)
    return done


@router.post("/dags/{dag_id}/trigger", dependencies=[TriggerRuns])
def trigger(dag_id: DagId, body: Trigger, request: Request, user: GetUserDep) -> dict:
    """Start a run of ``dag_id`` with ``conf`` (Airflow validates it against the DAG's params)."""
    if len(json.dumps(body.conf)) > MAX_CONF:
        raise HTTPException(413, f"the inputs are over {MAX_CONF:,} bytes as JSON")
    run_id = f"manual__baton__{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}"
    api, store = _airflow(request), EventStore.from_airflow()
    _through_airflow(store, "trigger", f"{dag_id}/{run_id}", user.get_name(),
                     lambda: api.trigger(dag_id, run_id, body.conf) and run_id, dag_id)  # fmt: skip
    return {"dag_id": dag_id, "run_id": run_id}


@router.post("/dags/{dag_id}/runs/{run_id}/stop", dependencies=[ActOnRuns])
def stop(dag_id: DagId, run_id: RunId, body: Stop, request: Request, user: GetUserDep) -> dict:
    """Stop a run in an emergency (Airflow marks it failed and stops its tasks), then compensate the steps
    it completed (a run of ``baton_compensate``: newest first, each once)."""
    api, store, by = _airflow(request), EventStore.from_airflow(), user.get_name()
    was = _through_airflow(store, "stop", f"{dag_id}/{run_id}", by, lambda: api.stop(dag_id, run_id), dag_id)
    closed = _close_questions(dag_id, run_id, by)
    compensation = None
    if body.compensate:
        compensation = f"manual__stop__{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}"
    payload = {
        "by": by[:250],
        "reason": body.reason,
        "compensation_run_id": compensation,
        "questions_closed": closed,
    }
    store.append([Event(type="run.stopped", run_id=run_id, workflow=dag_id, payload=payload,
                        discriminator=datetime.now(UTC).isoformat())])  # fmt: skip
    if compensation is not None:
        inputs = {"run_id": run_id, "reason": f"stopped by {by}: {body.reason}"}
        start = lambda: api.trigger(COMPENSATE_DAG, compensation, inputs) and compensation  # noqa: E731
        _through_airflow(store, "stop", f"{COMPENSATE_DAG}/{compensation}", by, start, dag_id)
    return {"dag_id": dag_id, "run_id": run_id, "was": was, "compensation_run_id": compensation,
            "questions_closed": closed}  # fmt: skip


def _close_questions(dag_id: str, run_id: str, by: str) -> list[str]:
    """Close the stopped run's questions still open on Airflow's Required Actions page: a stopped task will
    never read an answer, so one given later would be a decision nobody acts on. Each is marked answered,
    with no option chosen, by "run stopped by <person>" (Airflow's own answer route then refuses a second
    answer: 409). Airflow's HITL rows, in this API server's metadata-DB session; the task ids closed."""
    ti = TaskInstance
    query = (
        select(HITLDetail, ti.task_id, ti.map_index)
        .join(ti, HITLDetail.ti_id == ti.id)
        .where(ti.dag_id == dag_id, ti.run_id == run_id, HITLDetail.responded_at.is_(None))
    )
    closed = []
    with create_session() as session:
        for detail, task_id, map_index in session.execute(query).all():
            detail.responded_at = datetime.now(UTC)
            detail.responded_by = {"id": "baton", "name": f"run stopped by {by}"[:250]}
            detail.chosen_options = []
            closed.append(task_id if map_index < 0 else f"{task_id}[{map_index}]")
    return sorted(closed)


@router.post("/dags/{dag_id}/runs/{run_id}/steps/{step}/reassign", dependencies=[ActOnRuns])
def reassign(
    dag_id: DagId,
    run_id: RunId,
    step: Annotated[str, Path(max_length=250)],
    body: Reassign,
    request: Request,
    user: GetUserDep,
) -> dict:
    """The agent of the next try of a routed step of a run: one of the agents the step may be routed to;
    with ``retry_now``, that try starts now (Airflow clears the task)."""
    store = EventStore.from_airflow()
    started = list(store.read(run_id, types=["run.started"]))
    if (
        not started or getattr(started[0], "workflow", None) != dag_id
    ):  # a run of another DAG is not this one's
        raise HTTPException(404, f"no run '{run_id[:250]}' of {dag_id} in Baton's events")
    compiled = _steps(dag_id).get(step)
    if compiled is None or not compiled.routed or compiled.fan_out is not None:
        raise HTTPException(409, f"'{step[:250]}' is not a routed step (one agent, no for_each) of {dag_id}")
    candidates = [a.name for a in compiled.candidates]
    if body.agent not in candidates:
        raise HTTPException(
            409, f"agent '{body.agent[:250]}' may not do {step}: its candidates are {', '.join(candidates)}"
        )
    _refuse_a_try_that_cannot_come(store, run_id, step, body.retry_now)
    tries = [e.try_number for e in store.read(run_id, step=(step, -1), types=["step.started"])]
    after = max(tries, default=0)
    payload = {"agent": body.agent, "after_try": after, "by": user.get_name()[:250], "reason": body.reason}
    store.append([Event(type="step.reassigned", run_id=run_id, workflow=dag_id, step=step, try_number=after,
                        payload=payload, discriminator=datetime.now(UTC).isoformat())])  # fmt: skip
    target, by = f"{dag_id}/{run_id}/{step}", user.get_name()
    _record(store, "reassign", target, by, True, f"try {after + 1} -> {body.agent}", workflow=dag_id)
    if body.retry_now:
        api = _airflow(request)
        _through_airflow(store, "reassign", target, by, lambda: api.retry_now(dag_id, run_id, step), dag_id)
    return {
        "run_id": run_id,
        "step": step,
        "agent": body.agent,
        "try": after + 1,
        "retry_now": body.retry_now,
    }


def _refuse_a_try_that_cannot_come(store: EventStore, run_id: str, step: str, retry_now: bool) -> None:
    """409 when the reassigned try would never run: the run has ended (its tasks start no more tries), or,
    with ``retry_now``, the step has succeeded (re-running it alone would make a new call and leave what
    followed it as it was: Airflow's clear of the task with its downstream tasks is the way to redo it)."""
    ended = list(store.read(run_id, types=["run.succeeded", "run.failed"]))
    if ended:
        state = "success" if ended[-1].type == "run.succeeded" else "failed"
        raise HTTPException(
            409,
            f"run {run_id[:250]} has ended ({state}): no try of '{step}' is to come, so none can be reassigned",
        )
    outcomes = list(
        store.read(run_id, step=(step, -1), types=["step.succeeded", "step.failed", "step.started"])
    )
    if retry_now and outcomes and outcomes[-1].type == "step.succeeded":
        raise HTTPException(
            409,
            f"'{step}' succeeded in try {outcomes[-1].try_number}: starting it now would call an agent again and "
            "leave the steps after it as they are; clear it with its downstream tasks in Airflow to redo them",
        )


def _steps(dag_id: str) -> dict[str, Any]:
    """The compiled steps of the workflow ``dag_id`` in this Airflow's dags folder."""
    return steps_of(Folder(conf.get("core", "dags_folder")), dag_id)


@router.post("/dags/{dag_id}/experiments/{step}/settle", dependencies=[ActOnRuns])
def settle(dag_id: DagId, step: Annotated[str, Path(max_length=250)], body: Settle, user: GetUserDep) -> dict:
    """A person's answer to the decision an experiment (``variants`` with ``approve: true``) proposes."""
    compiled = _steps(dag_id).get(step)
    if compiled is None or compiled.spec.variants is None:
        raise HTTPException(404, f"no experiment on step '{step[:250]}' of {dag_id}")
    from baton.coordination import variants  # deferred: scipy on a settle, not at the API server's start

    store, by = EventStore.from_airflow(), user.get_name()
    try:
        decision = variants.settle(store, dag_id, step, by, body.accept)
    except LookupError as error:
        raise HTTPException(409, str(error)) from None
    _record(
        store, "settle", f"{dag_id}.{step}", by, True, f"{decision['status']} {decision['variant']}", dag_id
    )
    return decision


@router.post("/agents/{agent}/circuit", dependencies=[ActOnRuns])
def circuit(agent: Annotated[str, Path(max_length=250, pattern=r"^[A-Za-z0-9_.-]+$")], body: Circuit,
            user: GetUserDep) -> dict:  # fmt: skip
    """Open an agent's circuit (routing sends its work to other capable agents) or close it."""
    store, by = EventStore.from_airflow(), user.get_name()
    if body.open:
        _refuse_an_unknown_agent(agent)
        until = datetime.now(UTC) + timedelta(minutes=body.minutes)
        load.hold_open(store, agent, until, f"opened by {by} on the Coordination page")
        detail = f"open until {until.isoformat(timespec='seconds')}"
    else:
        detail = "closed" if load.release(store, agent) else "was closed already"
    _record(store, "open_circuit" if body.open else "close_circuit", f"agent:{agent}", by, True, detail)
    return {"agent": agent, "open": body.open, "detail": detail}


def _refuse_an_unknown_agent(agent: str) -> None:
    """404 for a circuit of an agent the roster does not name (it would be a row nothing routes to, shown
    for good); 409 when the roster itself does not validate. Closing is never refused: a circuit left by an
    agent since removed from the roster can still be closed."""
    roster, error = read_roster(Folder(conf.get("core", "dags_folder")))
    if roster is None:
        raise HTTPException(
            409,
            f"the roster (agents.yaml) does not validate, so no agent can be checked: {str(error)[:1000]}",
        )
    names = sorted(a.name for a in roster.agents)
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    if agent not in names:
        raise HTTPException(404, f"no agent '{agent}' in the roster (agents.yaml): its agents are {shown}")
