"""The projections written (``baton.events.summaries`` folds a batch of events into ``Changes``): one statement
per table and batch, built once per dialect (as the store's own append: building a statement costs more than
executing it on a single event's append), its rows in key order."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Connection, Engine, Float, bindparam, case, event, func, select, text, update

from baton.events import schema
from baton.events.changes import Changes, HourKey, RunChange, TaskChange, TaskKey


def write(conn: Connection, changes: Changes) -> None:
    """Tasks, then runs, then hours, calls and agents: every writer takes rows in this order (and each
    table's in key order), so no two transactions wait on each other's rows in opposite orders."""
    if changes.tasks:
        _write_tasks(conn, changes.tasks)
    if changes.runs:
        _write_runs(conn, changes.runs)
    if changes.run_agents:
        _add_agents(conn, changes.run_agents)
    if changes.ended:
        _close_runs(conn, sorted(changes.ended))
    if changes.hours:
        _write_hours(conn, changes.hours)
    if changes.calls:
        conn.execute(_calls_insert(), changes.calls)
    if changes.agents:
        _write_seen(conn, changes.agents)


# The agents each engine's database is known (in this process) to hold in baton_agents_seen: an agent is
# inserted there once per process, not at every call. A name counts as known once its transaction commits.
_SEEN: dict[Engine, set[str]] = {}
_PENDING = "baton_agents_seen_pending"


def _write_seen(conn: Connection, agents: dict[str, Any]) -> None:
    known = _known(conn.engine)
    new = sorted(agent for agent in agents if agent not in known)
    if new:
        conn.execute(_seen_insert(conn.dialect.name), [{"agent": a, "first_seen": agents[a]} for a in new])
        conn.info.setdefault(_PENDING, set()).update(new)


def _known(engine: Engine) -> set[str]:
    if engine not in _SEEN:
        _SEEN[engine] = set()
        event.listen(engine, "commit", lambda conn: _SEEN[engine].update(conn.info.pop(_PENDING, ())))
        event.listen(engine, "rollback", lambda conn: conn.info.pop(_PENDING, None))
    return _SEEN[engine]


def forget_seen() -> None:
    """Forget which agents are known to be stored (their table was emptied: a rebuild, a test)."""
    for known in _SEEN.values():
        known.clear()


@cache
def _calls_insert() -> Any:
    return schema.agent_calls.insert()


def _insert(dialect: str, table: Any) -> Any:
    return schema.insert_for(dialect)(table)


@cache
def _task_upsert(dialect: str) -> Any:
    """Built once per dialect (as the store's own append): a statement's construction costs more than
    its execution on a single event's append."""
    t, statement = schema.task_state.c, _insert(dialect, schema.task_state)
    x = statement.excluded
    newer, later = x.try_number >= t.try_number, x.try_number > t.try_number
    moved_on = (x.ended_s.is_not(None)) | later  # the try ended or a new one began: no question is open
    return statement.on_conflict_do_update(
        index_elements=["run_id", "step", "map_index"],
        set_={
            "try_number": case((later, x.try_number), else_=t.try_number),
            "state": case((x.state.is_not(None) & newer, x.state), else_=t.state),
            "agent": case((x.agent.is_not(None) & newer, x.agent), else_=t.agent),
            "started_s": case((x.started_s.is_not(None) & newer, x.started_s), else_=t.started_s),
            "ended_s": case((later, x.ended_s), (x.ended_s.is_not(None), x.ended_s), else_=t.ended_s),
            "seconds": t.seconds + x.seconds,
            "asked_s": case((x.asked_s.is_not(None), x.asked_s), (moved_on, None), else_=t.asked_s),
            "question": case((x.asked_s.is_not(None), x.question), (moved_on, None), else_=t.question),
        },
    )


@cache
def _task_mends() -> tuple[Any, Any]:
    """What one upsert cannot say: a failed try's seconds from the start its row holds; a question answered."""
    t = schema.task_state.c
    row = (t.run_id == bindparam("r")) & (t.step == bindparam("s")) & (t.map_index == bindparam("m"))
    ended = bindparam("end", type_=Float())
    seconds = (
        update(schema.task_state)
        .where(row, t.try_number == bindparam("try"), t.started_s.is_not(None), t.started_s <= ended)
        .values(seconds=t.seconds + (ended - t.started_s))
    )
    return seconds, update(schema.task_state).where(row).values(asked_s=None, question=None)


def _write_tasks(conn: Connection, tasks: dict[TaskKey, TaskChange]) -> None:
    rows, open_ends, answered = [], [], []
    for (run_id, step, map_index), c in sorted(tasks.items()):
        rows.append(
            {
                "run_id": run_id,
                "step": step,
                "map_index": map_index,
                "state": c.state,
                "try_number": c.try_number,
                "agent": c.agent,
                "started_s": c.started_s,
                "ended_s": c.ended_s,
                "seconds": c.seconds,
                "asked_s": c.asked_s,
                "question": c.question,
            }
        )
        key = {"r": run_id, "s": step, "m": map_index}
        if c.open_end is not None:
            open_ends.append({**key, "try": c.try_number, "end": c.open_end})
        if c.answered and c.asked_s is None:
            answered.append(key)
    conn.execute(_task_upsert(conn.dialect.name), rows)
    mend_seconds, mend_answered = _task_mends()
    if open_ends:
        conn.execute(mend_seconds, open_ends)
    if answered:
        conn.execute(mend_answered, answered)


COUNTERS = ("questions", "answers", "conflicts", "conflicts_auto", "conflicts_escalated")


@cache
def _run_upsert(dialect: str) -> Any:
    r, statement = schema.run_summary.c, _insert(dialect, schema.run_summary)
    x = statement.excluded
    ended = x.ended_at.is_not(None)
    return statement.on_conflict_do_update(
        index_elements=["run_id"],
        set_={
            "template_version": func.coalesce(x.template_version, r.template_version),
            "state": case(((x.state == "running") & (r.state != "running"), r.state), else_=x.state),
            "started_at": case((x.started_at < r.started_at, x.started_at), else_=r.started_at),
            "ended_at": case((ended, x.ended_at), else_=r.ended_at),
            "duration_s": case((ended, x.duration_s), else_=r.duration_s),
            **{name: getattr(r, name) + getattr(x, name) for name in COUNTERS},
        },
    )


def _write_runs(conn: Connection, runs: dict[str, RunChange]) -> None:
    rows = [
        {
            "run_id": run_id,
            "workflow": c.workflow,
            "template_version": c.template_version,
            "state": c.state,
            "started_at": c.started_at,
            "ended_at": c.ended_at,
            "duration_s": c.duration_s,
            "agents": [],  # a new row's (the upsert leaves an existing row's as they are): _add_agents
            **{name: c.counts[name] for name in COUNTERS},
        }
        for run_id, c in sorted(runs.items())
    ]
    conn.execute(_run_upsert(conn.dialect.name), rows)


_ADD_AGENT = {
    # Atomic in one statement: concurrent steps of one run cannot lose each other's agent, and a run's row
    # is written (and locked) only by the first event that names an agent new to it.
    "postgresql": text(
        "UPDATE baton_run_summary SET agents = COALESCE(agents, '[]'::jsonb) || jsonb_build_array(CAST(:agent AS text))"
        " WHERE run_id = :run_id AND NOT COALESCE(agents, '[]'::jsonb) @> jsonb_build_array(CAST(:agent AS text))"
    ),
    "sqlite": text(
        "UPDATE baton_run_summary SET agents = json_insert(COALESCE(agents, '[]'), '$[#]', :agent)"
        " WHERE run_id = :run_id AND NOT EXISTS"
        " (SELECT 1 FROM json_each(COALESCE(baton_run_summary.agents, '[]')) WHERE value = :agent)"
    ),
}


def _add_agents(conn: Connection, run_agents: dict[str, list[str]]) -> None:
    """Each agent chosen for a run, added to its row unless there already (in the order first chosen). A run
    whose row does not exist yet gets its agents when it ends (``_close_runs`` reads them from its events)."""
    rows = [
        {"run_id": run_id, "agent": agent}
        for run_id, agents in sorted(run_agents.items())
        for agent in agents
    ]
    conn.execute(_ADD_AGENT[conn.dialect.name], rows)


def payload_field(dialect: str, name: str, as_: str = "string") -> Any:
    """An event payload's field in SQL (``as_``: string, float, integer or boolean). On SQLite a payload
    that Python wrote with NaN or Infinity (its json refuses neither; PostgreSQL's refuses both) is not
    JSON to SQLite's functions, which then fail the whole statement: such a payload's field reads NULL."""
    e = schema.events.c
    value = getattr(e.payload[name], f"as_{as_}")()
    return value if dialect == "postgresql" else case((func.json_valid(e.payload) == 1, value), else_=None)


@cache
def _closing(dialect: str) -> tuple[Any, Any]:
    """The ended runs' times, tasks, and their tries' and items' seconds (a fan-out task counts its items,
    which ran side by side, not its own wall time): one read; and the update of each."""
    t, e, r = schema.task_state.c, schema.events.c, schema.run_summary.c
    ids = bindparam("ids", expanding=True)
    latency = payload_field(dialect, "latency_s", "float")
    finite = case(((latency >= 0) & (latency < 1e12), latency), else_=0.0)  # NaN compares false
    mine = _of_runs(ids)
    items = (
        select(e.run_id, e.step, e.map_index, func.sum(finite).label("total"))
        .join(mine, mine.c.seq == e.seq)
        .where(mine.c.type == "subtask.succeeded")
        .group_by(e.run_id, e.step, e.map_index)
        .subquery()
    )
    same = (items.c.run_id == t.run_id) & (items.c.step == t.step) & (items.c.map_index == t.map_index)
    work = (
        select(
            t.run_id,
            func.count().label("tasks"),
            func.sum(func.coalesce(items.c.total, t.seconds)).label("work"),
        )
        .select_from(schema.task_state.outerjoin(items, same))
        .where(t.run_id.in_(ids))
        .group_by(t.run_id)
        .subquery()
    )
    read = select(r.run_id, r.started_at, r.ended_at, r.duration_s, work.c.tasks, work.c.work).select_from(
        schema.run_summary.outerjoin(work, work.c.run_id == r.run_id)
    )
    values = {
        "tasks": bindparam("tasks"),
        "work_s": bindparam("work"),
        "duration_s": bindparam("took"),
        "agents": bindparam("agents", type_=r.agents.type),
        "result": bindparam("result", type_=r.result.type),
    }
    write = update(schema.run_summary).where(r.run_id == bindparam("rid")).values(**values)
    return read.where(r.run_id.in_(ids)), write


def _of_runs(ids: Any) -> Any:
    """The sequence numbers and types of the events of the runs ``ids``, read by their run alone: on
    PostgreSQL a MATERIALIZED CTE, which the planner cannot merge with the caller's condition on the type.
    With both conditions in one scan it read the (agent, type) index for the type: every event of that type
    in the store, a bitmap of millions of rows for a batch of a few dozen runs (10 M events: 1.3-1.6 s a
    query, the projections' rebuild growing with the square of the store)."""
    e = schema.events.c
    return (
        select(e.seq, e.type)
        .where(e.run_id.in_(ids))
        .cte("of_runs")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )


@cache
def _agents_and_outputs() -> Any:
    """The ended runs' agents chosen and outputs recorded, in sequence order."""
    e = schema.events.c
    mine = _of_runs(bindparam("ids", expanding=True))
    query = select(e.run_id, e.type, e.step, e.agent, e.payload).join(mine, mine.c.seq == e.seq)
    return query.where(mine.c.type.in_(("agent.selected", "output.recorded"))).order_by(e.seq)


def _close_runs(conn: Connection, run_ids: Sequence[str]) -> None:
    """The ended runs' tasks and seconds (``_closing``), a duration the run's end did not say, and the
    agents and outputs of their events (a step's output inline, or the reference of its blob)."""
    agents: dict[str, list[str]] = {run_id: [] for run_id in run_ids}
    outputs: dict[str, dict[str, Any]] = {run_id: {} for run_id in run_ids}
    for run_id, kind, step, agent, payload in conn.execute(_agents_and_outputs(), {"ids": list(run_ids)}):
        if kind == "agent.selected" and agent and agent not in agents[run_id]:
            agents[run_id].append(agent)
        elif kind == "output.recorded" and step:
            outputs[run_id][step] = (
                payload.get("output") if payload.get("ref") is None else {"ref": payload["ref"]}
            )
    read, write = _closing(conn.dialect.name)
    rows = []
    for run_id, started, ended, duration, tasks, work in conn.execute(read, {"ids": list(run_ids)}):
        if duration is None and ended is not None:
            duration = max(0.0, (ended - started).total_seconds())
        rows.append(
            {
                "rid": run_id,
                "tasks": int(tasks or 0),
                "work": round(work or 0.0, 3),
                "took": duration,
                "agents": agents[run_id],
                "result": {"outputs": outputs[run_id]},
            }
        )
    if rows:
        conn.execute(write, rows)


@cache
def _hour_upsert(dialect: str) -> Any:
    h, statement = schema.step_hours.c, _insert(dialect, schema.step_hours)
    summed = ("tries", "failures", "ok_seconds", "breaker_opens")
    return statement.on_conflict_do_update(
        index_elements=["hour", "workflow", "step", "agent"],
        set_={name: getattr(h, name) + getattr(statement.excluded, name) for name in summed},
    )


def _write_hours(conn: Connection, hours: dict[HourKey, list[float]]) -> None:
    rows = [
        {
            "hour": hour,
            "workflow": workflow,
            "step": step,
            "agent": agent,
            "tries": int(tries),
            "failures": int(failures),
            "ok_seconds": seconds,
            "breaker_opens": int(opens),
        }
        for (hour, workflow, step, agent), (tries, failures, seconds, opens) in sorted(hours.items())
    ]
    conn.execute(_hour_upsert(conn.dialect.name), rows)


@cache
def _seen_insert(dialect: str) -> Any:
    return _insert(dialect, schema.agents_seen).on_conflict_do_nothing(index_elements=["agent"])
