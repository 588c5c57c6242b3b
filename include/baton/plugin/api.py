"""Baton's API, served by Airflow's API server under /baton, behind Airflow's authentication: runs,
timelines, agent stats and model spend against the budgets from the event store; the monitor's
incidents, their post-incident reports, and a person's acknowledgement or stop of an incident's runbook
(as the logged-in user, with the right to change ``baton_monitor``'s runs: the monitor's DAG is what an
incident belongs to in Airflow's terms)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from baton.budgets.config import budgets_of
from baton.budgets.report import cost_document
from baton.errors import TemplateError
from baton.events import projections, replay
from baton.events.feedback import FeedbackError, record
from baton.events.store import EventStore
from baton.ops.incidents import IncidentError
from baton.ops.monitor import record as incident_record
from baton.ops.reports.errors import patterns
from baton.plugin import actions, dashboard_api, pages, templates_api

app = FastAPI(title="Baton events", description="Runs, timelines and agent stats from Baton's event store.")
app.include_router(dashboard_api.router)  # the Coordination and Management tabs' GET routes


@app.get("/api/runs")
def runs(user: GetUserDep, limit: int = 100) -> list[dict]:
    """The runs, one row each (the run projection, in Airflow's states), newest first."""
    return projections.executions(EventStore.from_airflow(), limit=limit)


@app.get("/api/runs/{run_id}/timeline")
def run_timeline(run_id: str, user: GetUserDep, until: int | None = None) -> dict:
    """A run's events and the state they add up to."""
    store = EventStore.from_airflow()
    if not store.has_run(run_id):
        raise HTTPException(404, f"no events for run '{run_id}'")
    events = list(store.read(run_id, until=until))
    state = replay.fold(run_id, events)
    return {
        "run_id": run_id,
        "workflow": state.workflow,
        "state": state.state,
        "steps": state.step_states(),
        "agents": state.agents,
        "corrupt": [str(c) for c in state.corrupt],
        "events": [
            {
                "seq": e.seq,
                "ts": e.ts.isoformat(),
                "type": e.type,
                "step": e.step,
                "map_index": e.map_index,
                "try_number": e.try_number,
                "agent": e.agent,
                "payload": e.payload,
            }
            for e in events
            if isinstance(e, replay.Event)
        ],
    }


@app.get("/api/agents/stats")
def agents(user: GetUserDep) -> list[dict]:
    """Per-agent runs, success rate, p50/p95 latency, tokens and cost."""
    return [asdict(s) for s in projections.agent_stats(EventStore.from_airflow())]


# --- incidents ----------------------------------------------------------------------------------------

MONITOR = incident_record.MONITOR
IncidentId = Annotated[str, Path(pattern=r"^inc-[0-9a-f]{12}$", description="e.g. inc-1cd07b4561be")]
ReadIncidents = Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=MONITOR))
ActOnIncidents = Depends(requires_access_dag("PUT", DagAccessEntity.RUN, param_dag_id=MONITOR))


@app.get("/api/incidents", dependencies=[ReadIncidents])
def incidents(limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict]:
    """The monitor's incidents, newest first, each as its latest transition says."""
    return incident_record.incidents(EventStore.from_airflow(), limit)


@app.get("/api/incidents/{incident_id}", dependencies=[ReadIncidents])
def incident(incident_id: IncidentId) -> dict:
    """The post-incident report (first anomalous event, opening, resolution, MTTD/MTTR, the runs and
    agents affected, the actions taken) and the incident's timeline of events."""
    store = EventStore.from_airflow()
    events = incident_record.timeline(store, incident_id)
    from baton.ops.monitor.postmortem import postmortem  # deferred: numpy, scipy on a report, not at start

    report = postmortem(store, incident_id)
    if not events or report is None:
        raise HTTPException(404, f"no incident '{incident_id}'")
    return {
        "report": {**asdict(report), "mttd_s": report.mttd_s, "mttr_s": report.mttr_s},
        "timeline": [{"ts": e.ts.isoformat(), "type": e.type, "payload": e.payload} for e in events],
    }


@app.post("/api/incidents/{incident_id}/{verb}", dependencies=[ActOnIncidents])
def act_on_incident(incident_id: IncidentId, verb: Literal["ack", "stop"], user: GetUserDep) -> dict:
    """The logged-in user acknowledges the incident (``ack``: no more notifications, its escalations are
    skipped) or stops its runbook (``stop``: no further action, no undoing at resolution). Recorded as the
    incident's event under the user's name, and posted; doing it twice changes nothing."""
    by = user.get_name()
    try:
        changed = incident_record.person_acts(EventStore.from_airflow(), incident_id, verb, by)
    except IncidentError as error:
        raise HTTPException(409, str(error)) from None
    return {"incident_id": incident_id, "verb": verb, "by": by, "changed": changed}


# --- spend --------------------------------------------------------------------------------------------

ReadRuns = Depends(requires_access_dag("GET", DagAccessEntity.RUN))


@app.get("/api/cost", dependencies=[ReadRuns])
def cost(
    days: Annotated[int, Query(ge=1, le=366)] = 7,
    by: Literal["workflow", "agent", "model", "day"] = "workflow",
) -> dict:
    """``baton cost --json``: model spend of the last ``days`` by workflow, agent, model or day, and each
    budget of ``budgets.yaml`` against its limit with its forecast. A broken budgets file is named in
    ``budgets_error`` (the spend is still shown)."""
    from pathlib import Path as Folder

    from airflow.configuration import conf

    try:
        budgets, error = budgets_of(Folder(conf.get("core", "dags_folder"))), None
    except TemplateError as broken:
        budgets, error = (), str(broken)[:4000]
    return {**cost_document(EventStore.from_airflow(), budgets, days, by), "budgets_error": error}


@app.get("/api/errors", dependencies=[ReadRuns])
def errors(
    hours: Annotated[float, Query(gt=0, le=24 * 366, allow_inf_nan=False)] = 24,
    recent: Annotated[float, Query(gt=0, le=24 * 366, allow_inf_nan=False)] = 1,
    workflow: Annotated[str | None, Query(max_length=250)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict:
    """``baton errors --json``: the failures of the last ``hours`` grouped by normalised message, error
    class, workflow, step and agent, with what is new, rising or quiet in the last ``recent`` hours; the
    ``limit`` most frequent patterns, and how many there are in all (``total``): a store with many kinds of
    failure does not make every poll of the Management page a large answer."""
    found = patterns(EventStore.from_airflow(), hours, recent, workflow)
    return {
        "hours": hours,
        "recent_hours": recent,
        "total": len(found),
        "patterns": [p.document() for p in found[:limit]],
    }


@app.get("/api/rollouts", dependencies=[ReadRuns])
def rollouts(workflow: Annotated[str | None, Query(max_length=250)] = None) -> dict:
    """``baton rollout --json``: each version rollout of the templates, its share, stage, each version's runs,
    the runs in flight on each, what the guardrails say and its decisions."""
    from pathlib import Path as Folder

    from airflow.configuration import conf

    from baton.ops.reports.rollouts import report as rollouts_report  # deferred: scipy on a report

    return {
        "rollouts": rollouts_report(
            EventStore.from_airflow(), Folder(conf.get("core", "dags_folder")), workflow
        )
    }


@app.get("/api/evaluations", dependencies=[ReadRuns])
def evaluations(workflow: Annotated[str | None, Query(max_length=250)] = None) -> dict:
    """Each workflow's recorded evaluations (``baton eval --record``), newest first: the share of checks
    each version held, against the stable version's, and the cases that regressed."""
    from pathlib import Path as Folder

    from airflow.configuration import conf

    from baton.ops.reports.evaluations import report as evaluations_report  # deferred: only this route's

    return {
        "evaluations": evaluations_report(
            EventStore.from_airflow(), Folder(conf.get("core", "dags_folder")), workflow
        )
    }


@app.get("/api/experiments", dependencies=[ReadRuns])
def experiments(workflow: Annotated[str | None, Query(max_length=250)] = None) -> dict:
    """Each step's experiment (``variants``): its arms, each arm's runs and outcomes, and its decision (or
    what it waits for)."""
    from pathlib import Path as Folder

    from airflow.configuration import conf

    from baton.ops.reports.experiments import report as experiments_report  # deferred: scipy on a report

    return {
        "experiments": experiments_report(
            EventStore.from_airflow(), Folder(conf.get("core", "dags_folder")), workflow
        )
    }


# --- feedback -----------------------------------------------------------------------------------------

ActOnRuns = Depends(requires_access_dag("PUT", DagAccessEntity.RUN))


class Feedback(BaseModel):
    """A verdict on a step's output: 0 (bad) .. 1 (good)."""

    model_config = ConfigDict(extra="forbid")
    step: str = Field(min_length=1, max_length=250)
    score: float = Field(ge=0, le=1, allow_inf_nan=False)


@app.post("/api/dags/{dag_id}/runs/{run_id}/feedback", dependencies=[ActOnRuns])
def feedback(
    dag_id: Annotated[str, Path(max_length=250)],
    run_id: Annotated[str, Path(max_length=250)],
    body: Feedback,
    user: GetUserDep,
) -> dict:
    """``baton feedback``: the logged-in user's score for a step of a run of ``dag_id`` (as one who may
    change that DAG's runs), recorded as its ``feedback.recorded`` event; learned routing learns it."""
    try:
        event = record(
            EventStore.from_airflow(), run_id, body.step, body.score, user.get_name(), "api", dag_id
        )
    except FeedbackError as error:
        raise HTTPException(404 if str(error).startswith("no run") else 422, str(error)) from None
    return {
        "dag_id": dag_id,
        "run_id": run_id,
        "step": body.step,
        "score": body.score,
        "by": event.payload["by"],
    }


# --- the Coordination and Management pages: their pages, template routes and actions -------


for part in (pages.router, templates_api.router, actions.router):
    app.include_router(part)
