"""The runs' page of the Coordination tab: runs newest first, a page at a time (keyset pagination on the
start and the run id), each with its progress, the steps running now, an ETA, its agents and the people it
waits on. Reads one page of ``baton_run_summary`` (by its indexes), the page's tasks, and the recent
successful runs of the running runs' workflows: a few small reads whatever the store's size."""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, case, func, or_, select, tuple_

from baton.events import schema
from baton.events.store import EventStore
from baton.ops.dashboard.common import SYSTEM_WORKFLOWS, decode_cursor, encode_cursor, iso, rounded

STATES: dict[str, tuple[str, ...] | None] = {
    "running": ("running",),
    "finished": ("success", "failed"),
    "all": None,
}
DONE = ("success", "failed", "skipped")
SHOWN = 10  # the running tasks and open questions listed per run (their counts are whole)
HISTORY = 20  # the recent successful runs of a workflow whose median duration gives a running run's ETA


def page(
    store: EventStore,
    state: str = "all",
    workflow: str | None = None,
    limit: int = 50,
    before: str | None = None,
    now: datetime | None = None,
    system: bool = False,
) -> dict[str, Any]:
    """``limit`` runs newest first (of ``state`` running, finished or all; of ``workflow``), older than
    the cursor ``before``; ``next``: the cursor of the following page, None on the last one. Baton's own
    runs (``SYSTEM_WORKFLOWS``: the monitor's minute, compensations, incident pages) only with ``system``
    or when ``workflow`` names one.

    :raises CursorError: ``before`` is not a cursor this function gave.
    """
    if state not in STATES:
        raise ValueError(f"state is one of {', '.join(STATES)}, not {state!r}")
    position = decode_cursor(before) if before else None
    now = now or datetime.now(UTC)
    store.catch_up()  # its projections, from the log: every event stored before this read
    with store.engine.connect() as conn:
        rows = conn.execute(_runs_query(state, workflow, position, limit + 1, system)).all()
        more, rows = len(rows) > limit, rows[:limit]
        ids = [row.run_id for row in rows]
        tasks = _tasks(conn, ids)
        history = _history(conn, sorted({row.workflow for row in rows if row.state == "running"}))
        stops = _stops(conn, [row.run_id for row in rows if row.state == "failed"])
    runs = [
        _run(row, tasks.get(row.run_id), history.get(row.workflow), now, stops.get(row.run_id))
        for row in rows
    ]
    last = rows[-1] if rows else None
    return {"runs": runs, "next": encode_cursor(last.started_at, last.run_id) if more and last else None}


def _runs_query(
    state: str, workflow: str | None, position: tuple[datetime, str] | None, limit: int, system: bool = False
) -> Any:
    r = schema.run_summary.c
    query = select(
        r.run_id,
        r.workflow,
        r.template_version,
        r.state,
        r.started_at,
        r.ended_at,
        r.duration_s,
        r.tasks,
        r.agents,
    )
    if STATES[state] is not None:
        query = query.where(r.state.in_(STATES[state]))
    if workflow is not None:
        query = query.where(r.workflow == workflow)
    elif not system:
        query = query.where(r.workflow.not_in(sorted(SYSTEM_WORKFLOWS)))
    if position is not None:
        query = query.where(tuple_(r.started_at, r.run_id) < tuple_(*position))
    return query.order_by(r.started_at.desc(), r.run_id.desc()).limit(limit)


def _tasks(conn: Connection, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per run: its tasks known, those done, and (at most ``SHOWN`` each) those running and those whose
    question to a person is open."""
    if not run_ids:
        return {}
    t = schema.task_state.c
    running, asked = t.state == "running", t.asked_s.is_not(None)
    counts = select(
        t.run_id,
        func.count(),
        func.sum(case((t.state.in_(DONE), 1), else_=0)),
        func.sum(case((t.state == "success", 1), else_=0)),
        func.sum(case((running, 1), else_=0)),
        func.sum(case((asked, 1), else_=0)),
    ).where(t.run_id.in_(run_ids))
    found: dict[str, dict[str, Any]] = {}
    for run_id, known, done, succeeded, now_running, open_questions in conn.execute(
        counts.group_by(t.run_id)
    ):
        found[run_id] = {
            "known": known,
            "done": int(done or 0),
            "succeeded": int(succeeded or 0),
            "running_count": int(now_running or 0),
            "pending_count": int(open_questions or 0),
            "running": [],
            "pending": [],
        }
    # numbered apart: the tasks waiting on a person, and the others (running)
    order = func.row_number().over(partition_by=(t.run_id, asked), order_by=(t.step, t.map_index)).label("n")
    listed = (
        select(
            t.run_id, t.step, t.map_index, t.try_number, t.agent, t.state, t.started_s, t.asked_s, t.question
        )
        .add_columns(order)
        .where(t.run_id.in_(run_ids), or_(running, asked))
        .subquery()
    )
    for row in conn.execute(select(listed).where(listed.c.n <= SHOWN)):
        _list_task(found[row.run_id], row)
    return found


def _list_task(run: dict[str, Any], row: Any) -> None:
    where = {"step": row.step, "map_index": row.map_index}
    if row.state == "running" and len(run["running"]) < SHOWN:
        run["running"].append(
            {**where, "try_number": row.try_number, "agent": row.agent, "since": iso(row.started_s)}
        )
    if row.asked_s is not None and len(run["pending"]) < SHOWN:
        run["pending"].append({**where, "kind": row.question, "since": iso(row.asked_s)})


def _history(conn: Connection, workflows: list[str]) -> dict[str, dict[str, float]]:
    """Per workflow: the median duration and the median task count of its ``HISTORY`` latest successful runs."""
    r = schema.run_summary.c
    found = {}
    for workflow in workflows:
        query = (
            select(r.duration_s, r.tasks)
            .where(r.workflow == workflow, r.state == "success", r.duration_s.is_not(None))
            .order_by(r.started_at.desc())
            .limit(HISTORY)
        )
        rows = conn.execute(query).all()
        if rows:
            found[workflow] = {
                "duration_s": statistics.median(d for d, _ in rows),
                "tasks": statistics.median(n or 0 for _, n in rows),
            }
    return found


def _stops(conn: Connection, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per run a person stopped (of ``run_ids``): who, why and when (its ``run.stopped`` event)."""
    if not run_ids:
        return {}
    e = schema.events.c
    query = select(e.run_id, e.payload, e.ts).where(e.run_id.in_(run_ids), e.type == "run.stopped")
    found = {}
    for run_id, payload, ts in conn.execute(query.order_by(e.seq)):
        body = payload if isinstance(payload, dict) else json.loads(payload or "{}")
        found.setdefault(run_id, {"by": body.get("by", ""), "reason": body.get("reason", ""), "at": iso(ts)})
    return found


def _run(
    row: Any,
    tasks: dict[str, Any] | None,
    history: dict[str, float] | None,
    now: datetime,
    stopped: dict[str, Any] | None = None,
) -> dict:
    """A run as the page lists it. Honest about what it does not know: no ETA while a person is awaited (they
    may take days) or without a history of successful runs; ``progress.succeeded`` beside ``done`` (a
    stopped or failed run's tasks are done, not succeeded); ``stopped``: who stopped it and why."""
    tasks = tasks or {
        "known": 0,
        "done": 0,
        "succeeded": 0,
        "running_count": 0,
        "pending_count": 0,
        "running": [],
        "pending": [],
    }
    running = row.state == "running"
    elapsed = max(0.0, (now - row.started_at).total_seconds())
    total = tasks["known"]
    eta, overdue = None, False
    waiting = running and tasks["pending_count"] > 0
    if running and history:
        total = max(total, int(history["tasks"]))
        overdue = elapsed > history["duration_s"]
        eta = None if waiting or overdue else round(history["duration_s"] - elapsed, 1)
    return {
        "run_id": row.run_id,
        "workflow": row.workflow,
        "template_version": row.template_version,
        "state": row.state,
        "started_at": iso(row.started_at),
        "ended_at": iso(row.ended_at),
        "duration_s": rounded(row.duration_s),
        "elapsed_s": round(elapsed, 1) if running else None,
        "state_shown": "stopped" if stopped else row.state,
        "stopped": stopped,
        "progress": {"done": tasks["done"], "succeeded": tasks["succeeded"], "total": total},
        "running": tasks["running"] if running else [],
        "running_count": tasks["running_count"] if running else 0,
        "eta_s": eta,
        "eta_note": _eta_note(running, waiting, overdue, history),
        "agents": list(row.agents or []),
        "people_pending": tasks["pending"] if running else [],
        "people_pending_count": tasks["pending_count"] if running else 0,
    }


def _eta_note(running: bool, waiting: bool, overdue: bool, history: dict[str, float] | None) -> str | None:
    """Why a running run has no ETA (None when it has one, or has ended)."""
    if not running:
        return None
    if waiting:
        return "waiting on a person"
    if history is None:
        return "no successful run yet to estimate from"
    if overdue:
        return f"longer than its usual {history['duration_s']:.0f} s"
    return None
