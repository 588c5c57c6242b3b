"""The read side of the Coordination and Management tabs: GET routes under /baton/api/dashboard,
behind Airflow's authentication (the right to read DAG runs), each answering from the store's projections
in a few indexed reads (``baton.ops.dashboard``).

- ``/runs``: runs newest first, a page at a time (``next`` is the cursor of the following page), of a
  workflow and a state, Baton's own runs left out unless asked for;
- ``/agents``: per agent, its last hour, load slots, circuit, last day's spend and budget headroom;
- ``/runs/{run_id}/gantt``: one run's tries, fan-out items, compensations and markers (bounded);
- ``/analytics``: a window's workflow analytics, hourly trend and suggestions;
- ``/queue``: Baton's task instances not started yet, in the order the scheduler takes them, with their
  runs' standing (level, start-by time, predicted finish, risk, and why)."""

from __future__ import annotations

from pathlib import Path as Folder
from typing import Annotated, Literal

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import requires_access_dag
from airflow.configuration import conf
from fastapi import APIRouter, Depends, HTTPException, Path, Query

from baton.budgets.config import budgets_of
from baton.errors import TemplateError
from baton.events.store import EventStore
from baton.ops.dashboard import runs as listed
from baton.ops.dashboard.agents import board
from baton.ops.dashboard.analytics import report
from baton.ops.dashboard.common import CursorError
from baton.ops.dashboard.gantt import chart
from baton.plugin.queue_view import standing_of, waiting

router = APIRouter(prefix="/api/dashboard", tags=["dashboard"])

READ_RUNS = requires_access_dag("GET", DagAccessEntity.RUN)  # tests override this dependency
ReadRuns = Depends(READ_RUNS)


def event_store() -> EventStore:
    """The store the routes read (a dependency: a test gives its own)."""
    return EventStore.from_airflow()


Store = Annotated[EventStore, Depends(event_store)]
Workflow = Annotated[str | None, Query(max_length=250, description="only this workflow's runs")]


@router.get("/runs", dependencies=[ReadRuns])
def runs(
    store: Store,
    state: Literal["running", "finished", "all"] = "all",
    workflow: Workflow = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[str | None, Query(max_length=1200, description="a previous page's `next`")] = None,
    system: Annotated[
        bool, Query(description="with Baton's own runs (monitor, compensations, incidents)")
    ] = False,
) -> dict:
    """Runs newest first: state, times, progress, the steps running now, ETA, agents, people pending.
    Baton's own runs only with ``system`` (or ``workflow`` naming one)."""
    try:
        return listed.page(store, state, workflow, limit, before, system=system)
    except CursorError as error:
        raise HTTPException(422, str(error)) from None


@router.get("/agents", dependencies=[ReadRuns])
def agents(store: Store) -> dict:
    """Per agent: calls and failures of the last hour with p50/p95 latency, slots in use, circuit,
    spend of the last 24 h, and the headroom of its day or month budgets (``budgets_error`` names a
    budgets file that cannot be read: no headroom is shown then)."""
    try:
        budgets, error = budgets_of(Folder(conf.get("core", "dags_folder"))), None
    except TemplateError as broken:
        budgets, error = (), str(broken)[:4000]
    return {**board(store, budgets), "budgets_error": error}


@router.get("/runs/{run_id}/gantt", dependencies=[ReadRuns])
def gantt(store: Store, run_id: Annotated[str, Path(min_length=1, max_length=250)]) -> dict:
    """One run's bars (tries, fan-out items, compensations) and markers; ``truncated`` when bounded."""
    found = chart(store, run_id)
    if found is None:
        raise HTTPException(404, f"no events for run '{run_id}'")
    return found


@router.get("/analytics", dependencies=[ReadRuns])
def analytics(
    store: Store,
    hours: Annotated[float, Query(gt=0, le=24 * 366, allow_inf_nan=False)] = 24,
    workflow: Workflow = None,
) -> dict:
    """The analytics of the runs started in the last ``hours``: figures, a trend and suggestions."""
    return report(store, hours, workflow)


@router.get("/queue", dependencies=[ReadRuns])
def queue(store: Store, session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict:
    """Baton's task instances not started yet, in the scheduler's order, with their runs' standing."""
    return waiting(session, store, limit)


@router.get("/runs/{run_id}/priority", dependencies=[ReadRuns])
def priority(store: Store, run_id: Annotated[str, Path(min_length=1, max_length=250)]) -> dict:
    """Where the run stood in Airflow's queue as it started (``priority.assigned``), or null."""
    return {"priority": standing_of(store, run_id)}
