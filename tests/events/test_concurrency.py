"""Concurrent appends from 8 processes against PostgreSQL: none lost, none duplicated, in order."""

from __future__ import annotations

import multiprocessing

from sqlalchemy import func, select

from baton.events import projections, schema, summaries
from baton.events.event import Event
from baton.events.store import EventStore, engine_for

WORKERS = 8
EACH = 160
SHARED = 20  # events every worker tries to write (the listener and the operator racing)


def _append(url: str, worker: int) -> None:
    store = EventStore(engine_for(url))
    store.append(
        [
            Event(
                type="agent.selected",
                run_id="shared",
                workflow="w",
                step=f"pick_{worker}",
                try_number=1,
                agent=f"agent_{worker}",
                payload={"agent": f"agent_{worker}"},
            )
        ]
    )
    for i in range(EACH):
        store.append(
            [
                Event(
                    type="step.started",
                    run_id=f"run_{worker}",
                    workflow="w",
                    step=f"s{i}",
                    try_number=1,
                    payload={"pid": worker},
                )
            ]
        )
        if i % (EACH // SHARED) == 0:
            shared = i // (EACH // SHARED)
            store.append(
                [
                    Event(
                        type="step.succeeded",
                        run_id="shared",
                        workflow="w",
                        step=f"s{shared}",
                        try_number=1,
                        payload={"recorded_by": "listener"},
                    )
                ]
            )


def test_eight_processes_append_concurrently_without_loss_or_duplicates(pg_url):
    store = EventStore(engine_for(pg_url))
    with store.engine.begin() as conn:
        conn.execute(schema.events.delete())
        for table in summaries.TABLES:
            conn.execute(table.delete())
    store.append([Event(type="run.started", run_id="shared", workflow="w")])
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_append, args=(pg_url, worker)) for worker in range(WORKERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    e = schema.events.c
    with store.engine.connect() as conn:
        total = conn.scalar(select(func.count()).select_from(schema.events))
        distinct_keys = conn.scalar(select(func.count(e.idempotency_key.distinct())))
        rows = conn.execute(select(e.seq, e.run_id, e.step).order_by(e.seq)).all()
    assert total == distinct_keys == WORKERS * EACH + SHARED + WORKERS + 1
    assert len({seq for seq, _, _ in rows}) == total
    for worker in range(WORKERS):
        steps = [int(step[1:]) for _, run_id, step in rows if run_id == f"run_{worker}"]
        assert steps == list(range(EACH)), f"worker {worker}: its events are not in its order"
    shared = sorted(
        int(step[1:]) for _, run_id, step in rows if run_id == "shared" and step and step.startswith("s")
    )
    assert shared == list(range(SHARED))
    agents = projections.executions(store)[0]["agents_involved"]
    assert sorted(agents) == [f"agent_{worker}" for worker in range(WORKERS)], (
        "no agent lost in the projection"
    )
