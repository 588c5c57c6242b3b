"""The runbook's actions carried out, each once: recorded first under the action's own id (an
``incident.action`` event), and carried out only by the tick whose record was new.

``open_circuit`` / ``close_circuit`` (the agent's breaker in Baton's store: routing moves its work to
agents with the same capabilities), ``probe_circuit`` (half-open: the agent's next call is a trial, see
:mod:`baton.ops.incidents.trials`), ``lower_concurrency`` / ``restore_concurrency`` (the agent's load
slots capped in Baton's store, ``baton.coordination.load.cap``, and what it had given back at
resolution), ``escalate`` (a person asked on Airflow's Required Actions page: :mod:`.paging`), and, over
Airflow's REST API with the connection ``baton_airflow_api`` (:mod:`baton.ops.airflow_api`),
``pause_workflow`` / ``resume_workflow`` and ``retry_failed_runs`` (the failed task instances of the
runs that failed while the incident was open are cleared). Without that connection they are recorded
as not carried out, naming it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from baton.coordination import breaker, load
from baton.events import schema
from baton.events.event import Event
from baton.events.store import EventStore
from baton.ops.airflow_api import CONN_ID, AirflowApi
from baton.ops.incidents import Action, Book
from baton.ops.monitor.paging import request
from baton.ops.monitor.record import MONITOR
from baton.ops.monitor.state import load_state, save_state

log = logging.getLogger(__name__)

HOLD = timedelta(days=7)  # a circuit a runbook opened stays open this long at most, if never closed


def act(store: EventStore, actions: list[Action], book: Book, now: datetime) -> list[tuple[Action, str]]:
    """Record each action (an ``incident.action`` event keyed by its id) and carry out those whose record
    was new: an action recorded by an earlier tick was carried out then. (action, outcome) of each done."""
    done = []
    for action in actions:
        record = Event(
            type="incident.action",
            run_id=f"incident:{action.incident_id}",
            workflow=MONITOR,
            key=f"incident-action|{action.id}",
            payload={
                "incident_id": action.incident_id,
                "kind": "action",
                "where": action.target,
                "detail": {"do": action.do, "step": action.step, "params": action.params},
            },
            ts=now,  # the tick's time, as its transitions: a fold at that time must not wait on it
        )
        if not store.append([record]):
            continue  # recorded by an earlier tick: carried out then
        try:
            outcome = carry_out(store, action, now, book)
        except Exception as error:  # one action failing must not stop the others, nor the tick
            log.exception("runbook action %s failed", action.id)
            outcome = f"failed: {type(error).__name__}: {str(error)[:300]}"
        done.append((action, outcome))
        log.info("incident %s: %s", action.incident_id, outcome)
    return done


def carry_out(store: EventStore, action: Action, now: datetime, book: Book | None = None) -> str:
    """Carry out one runbook action; what was done, in a sentence for the incident's record."""
    agent = action.target.removeprefix("agent:")
    if action.do == "open_circuit":
        load.hold_open(store, agent, now + HOLD, f"held open by incident {action.incident_id}")
        return f"opened the circuit of {agent}: routing sends its work to agents with its capabilities"
    if action.do == "probe_circuit":
        if not breaker.half_open(store, agent):
            return f"the circuit of {agent} was not held: nothing to try"
        return f"half-opened the circuit of {agent}: its next call is a trial (a failure opens it again)"
    if action.do == "close_circuit":
        was_open = load.release(store, agent)
        return f"closed the circuit of {agent}" if was_open else f"the circuit of {agent} was already closed"
    if action.do in ("lower_concurrency", "restore_concurrency"):
        return _concurrency(store, action, agent, now)
    if action.do == "escalate":  # Slack hears it with the transition; a person is asked in Airflow too
        return request(action, book)
    if action.do in ("pause_workflow", "resume_workflow", "retry_failed_runs"):
        return _through_airflow(store, action, now)
    raise ValueError(f"no way to carry out the runbook action {action.do!r}")  # act() records it failed


def _through_airflow(store: EventStore, action: Action, now: datetime) -> str:
    """The actions that change Airflow itself, over its REST API (``baton.ops.airflow_api``)."""
    api = AirflowApi.from_connection()
    if api is None:
        return f"not carried out: {action.do} needs the Airflow connection {CONN_ID} (Airflow's REST API)"
    scope, _, name = action.target.partition(":")
    if action.do in ("pause_workflow", "resume_workflow"):
        return _pause_or_resume(store, api, action, name, now)
    since = datetime.fromisoformat(action.params["failed_since"])
    limit = int(action.params.get("max_runs", 20))
    if scope == "agent":
        runs = _failed_runs_of_agent(store, name, since)[:limit]
    else:
        runs = [(name, run) for run in api.failed_runs(name, since, limit)]
    for dag_id, run_id in runs:
        api.retry(dag_id, run_id)
    return f"retried {len(runs)} failed run(s): " + ", ".join(f"{d}/{r}" for d, r in runs)


def _pause_or_resume(store: EventStore, api: Any, action: Action, dag_id: str, now: datetime) -> str:
    """Pause a workflow, remembering whether it was paused already; resume it only if the pause was ours
    (a workflow a person had paused before the incident stays paused)."""
    key = f"paused:{action.incident_id}/{action.step}"  # the pause and its undoing share the step
    if action.do == "pause_workflow":
        was_paused = api.set_paused(dag_id, True)
        with store.engine.begin() as conn:
            save_state(conn, key, {"dag_id": dag_id, "was_paused": was_paused}, now)
        return f"paused workflow {dag_id}" + (" (it was paused already)" if was_paused else "")
    with store.engine.connect() as conn:
        pause = load_state(conn, key) or {}
    if pause.get("was_paused"):
        return f"left workflow {dag_id} paused: it was paused before the incident"
    api.set_paused(dag_id, False)
    return f"resumed workflow {dag_id}"


def _concurrency(store: EventStore, action: Action, agent: str, now: datetime) -> str:
    """Cap the agent's slots (its calls above the cap finish; no new one starts until under it), and at
    resolution give back what it had before: no cap, or the cap another incident had set."""
    key = f"cap:{action.incident_id}/{action.step}"  # the lowering and its undoing share the step
    if action.do == "lower_concurrency":
        before = load.cap(store, agent, int(action.params["to"]))
        with store.engine.begin() as conn:
            save_state(conn, key, {"agent": agent, "before": before}, now)
        return f"lowered the concurrency of {agent} to {action.params['to']} slot(s)"
    with store.engine.connect() as conn:
        saved = load_state(conn, key) or {}
    if saved.get("before"):
        load.cap(store, agent, int(saved["before"]))
        return f"gave {agent} back the cap of {saved['before']} slot(s) it had before the incident"
    load.uncap(store, agent)
    return f"restored the concurrency of {agent} (its max_concurrency)"


def _failed_runs_of_agent(store: EventStore, agent: str, since: datetime) -> list[tuple[str, str]]:
    """(workflow, run) of the runs that failed since ``since`` after one of ``agent``'s steps failed."""
    e = schema.events.c
    failed_runs = select(e.run_id).where(e.type == "run.failed", e.ts >= since)
    query = (
        select(e.workflow, e.run_id)
        .where(e.agent == agent, e.type.in_(["step.failed", "subtask.failed"]), e.ts >= since)
        .where(e.run_id.in_(failed_runs))
        .distinct()
    )
    with store.engine.connect() as conn:
        return sorted({(w, r) for w, r in conn.execute(query)}, reverse=True)
