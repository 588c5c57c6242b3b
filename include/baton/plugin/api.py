"""The events read API, served by Airflow's API server under /baton, behind Airflow's authentication."""

from __future__ import annotations

from dataclasses import asdict

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import FastAPI, HTTPException

from baton.events import projections, replay
from baton.events.store import EventStore

app = FastAPI(title="Baton events", description="Runs, timelines and agent stats from Baton's event store.")


@app.get("/api/runs")
def runs(user: GetUserDep, limit: int = 100) -> list[dict]:
    """Seed 002's workflow_executions: one row per run, newest first."""
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
