"""The dashboard's projections (baton.events.summaries): caught up from the log, equal to a rebuild
from the events alone, right under concurrent writers, and filled by migration 8 for a store's past runs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import delete, select, text

from baton.events import projections, schema, summaries
from baton.events.event import Event
from baton.events.migrations import upgrade
from tests.ops.dashboard.scenario import T0, Run


def _tables(store) -> dict[str, list[tuple]]:
    """Every dashboard row, in key order (a call's row without its id), caught up from the log as a reader's."""
    store.catch_up()
    found = {}
    with store.engine.connect() as conn:
        for table in summaries.TABLES:
            columns = [c for c in table.c if c.name != "id"]
            rows = conn.execute(select(*columns)).all()
            found[table.name] = sorted(tuple(row) for row in rows)
    return found


def _story(store) -> None:
    """A run that retries a step on another agent, asks a person, meets a context conflict; a second one
    still running, waiting on a person."""
    run = Run(store, "run_a")
    run.start("fetch", 1, agent="reader")
    run.model("fetch", 2, "reader", 0.02)
    run.succeed("fetch", 4, 3.0, agent="reader")
    run.start("score", 4, agent="flaky")
    run.fail("score", 6, agent="flaky")
    run.start("score", 7, agent="steady", try_number=2)
    run.append(
        run.event("approval.requested", 8, "score", 2, payload={"subject": "ok?", "kind": "review"}),
        *run.conflict("score", 8, "merged", 2),
    )
    run.append(run.event("approval.answered", 9, "score", 2, payload={"chosen": ["Approve"], "by": "ana"}))
    run.succeed("score", 10, 3.0, agent="steady", try_number=2)
    run.end(11)
    other = Run(store, "run_b", at=T0 + timedelta(minutes=1))
    other.start("fetch", 1, agent="reader")
    other.append(
        other.event("approval.requested", 2, "fetch", payload={"subject": "which?", "kind": "escalation"})
    )


def test_a_runs_summary_and_tasks_follow_its_events(store):
    _story(store)
    store.catch_up()
    with store.engine.connect() as conn:
        r = schema.run_summary.c
        done = conn.execute(select(schema.run_summary).where(r.run_id == "run_a")).one()._mapping
        tasks = {
            (row.step, row.try_number): row
            for row in conn.execute(select(schema.task_state).where(schema.task_state.c.run_id == "run_a"))
        }
        waiting = conn.execute(select(schema.task_state).where(schema.task_state.c.run_id == "run_b")).one()
    assert (done["state"], done["duration_s"], done["tasks"], done["template_version"]) == (
        "success",
        11.0,
        2,
        2,
    )
    assert (done["questions"], done["answers"], done["conflicts"], done["conflicts_auto"]) == (1, 1, 1, 1)
    assert (
        done["work_s"] == 3.0 + 2.0 + 3.0
    )  # fetch, score's failed try (its start to its end), score's second
    score = tasks[("score", 2)]
    assert (score.state, score.agent, score.asked_s, score.seconds) == ("success", "steady", None, 5.0)
    assert (waiting.state, waiting.question) == ("running", "escalation")
    assert waiting.asked_s == (T0 + timedelta(minutes=1, seconds=2)).timestamp()


def test_a_rebuild_from_the_events_alone_gives_the_same_rows(store):
    _story(store)
    before = _tables(store)
    assert before["baton_agent_calls"] and before["baton_step_hours"]
    with store.engine.begin() as conn:
        for table in summaries.TABLES:
            conn.execute(delete(table))
    assert projections.rebuild(store) == 2
    assert _tables(store) == before


def test_the_same_events_twice_change_nothing(store):
    run = Run(store, "run_a")
    run.start("fetch", 1, agent="reader")
    before = _tables(store)
    run.start("fetch", 1, agent="reader")  # stored once by their keys: not folded again
    assert _tables(store) == before


def test_concurrent_writers_of_one_run_lose_nothing_and_never_deadlock(store):
    """Twenty tasks of one run written from eight threads (each a start, then an end, then a question
    answered): every count and every task's seconds are there."""
    run = Run(store, "run_c")

    def task(index: int) -> None:
        step = f"s{index:02d}"
        run.start(step, 1, agent=f"agent{index % 3}")
        run.append(
            *run.conflict(step, 2, None),
            run.event("approval.requested", 2, step, payload={"subject": "?", "kind": "approval"}),
        )
        run.succeed(step, 3, 2.0, agent=f"agent{index % 3}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(task, range(20)))
    run.end(4)
    store.catch_up()
    with store.engine.connect() as conn:
        summary = conn.execute(select(schema.run_summary).where(schema.run_summary.c.run_id == "run_c")).one()
        open_questions = conn.scalar(
            select(text("count(*)"))
            .select_from(schema.task_state)
            .where(schema.task_state.c.asked_s.is_not(None))
        )
    assert (summary.conflicts, summary.questions, summary.tasks, summary.work_s) == (20, 20, 20, 40.0)
    assert open_questions == 0, "each step's end closed its question"


def test_migration_8_fills_the_dashboard_from_a_stores_past_runs(store):
    _story(store)
    expected = _tables(store)
    with store.engine.begin() as conn:
        conn.execute(text("DROP VIEW workflow_executions"))  # made by version 9, of baton_run_summary
        for table in summaries.TABLES:
            table.drop(conn)
        conn.execute(text("DELETE FROM baton_schema_version WHERE version >= 8"))
    try:
        applied = upgrade(store.engine)
    finally:
        with store.engine.begin() as conn:  # whatever happened, the shared PostgreSQL store keeps its tables
            for table in summaries.TABLES:
                table.create(conn, checkfirst=True)
        upgrade(store.engine)
    assert applied == [
        "8: the dashboard's projections: runs, tasks, agents' calls and hourly step figures",
        "9: one projection of a run, in Airflow's states: workflow_executions a view of it",
        "10: the pages' projection caught up from the log, out of the append's transaction: its cursor",
        "11: the callers waiting for an agent's slot, the next slot to the run that must start soonest",
    ]
    assert _tables(store) == expected


def test_collect_keeps_a_tasks_latest_try_and_leaves_fanout_items_off_its_row():
    common = {"run_id": "r", "workflow": "w", "step": "s", "ts": T0}
    events = [
        Event(type="step.started", try_number=1, **common),
        Event(
            type="step.failed", try_number=1, payload={"error_class": "BudgetExceeded"}, agent="a", **common
        ),
        Event(type="step.started", try_number=2, **common),
        Event(
            type="agent.selected", try_number=2, agent="b", payload={"agent": "b", "subtask": "0"}, **common
        ),
        Event(
            type="subtask.succeeded",
            try_number=2,
            agent="b",
            payload={"subtask": "0", "sha256": "x", "size": 1},
            **common,
        ),
    ]
    changes = summaries.collect(events)
    (task,) = changes.tasks.values()
    assert (task.try_number, task.state, task.agent, task.ended_s) == (2, "running", None, None)
    assert [c["kind"] for c in changes.calls] == ["item"], "a budget's refusal is not the agent's failure"
    assert list(changes.agents) == ["b"]


def test_a_duration_that_is_not_a_finite_number_of_seconds_counts_for_nothing(store):
    odd = [-1.0]
    if store.engine.dialect.name == "sqlite":  # PostgreSQL's json refuses them: such an append fails there
        odd += [float("inf"), float("nan")]
    for i, took in enumerate(odd):
        run = Run(store, f"odd-{i}")
        run.start("s", 1)
        item = {"subtask": "0", "latency_s": took, "sha256": "ab", "size": 1}
        run.append(run.event("subtask.succeeded", 2, "s", agent="scorer", payload=item))
        run.succeed("s", 2, took)
        run.end(3)
    store.catch_up()
    with store.engine.connect() as conn:
        work = conn.execute(select(schema.run_summary.c.work_s)).scalars().all()
        latencies = conn.execute(select(schema.agent_calls.c.latency_s)).scalars().all()
        seconds = conn.execute(select(schema.step_hours.c.ok_seconds)).scalars().all()
    assert work == [0.0] * len(odd)
    assert latencies == [None] * 2 * len(odd) and seconds == [0.0]
