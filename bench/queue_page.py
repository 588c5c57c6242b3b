"""Benchmark: the Coordination page's queue (issue 57) on a large Airflow metadata database — how long
``GET /baton/api/dashboard/queue`` takes to read Baton's task instances not started, in the scheduler's
order, when the database holds a long history, against the same read with no history in the same run.

Two throwaway PostgreSQL databases (``--server``, default ``$BATON_TEST_PG`` or 127.0.0.1:5432, dropped at
the end): Airflow's metadata (its tables and indexes made from Airflow's own models) and Baton's store (``baton
db upgrade``'s). They are filled with 20 DAGs, half of them tagged ``baton``, and ``--active`` runs in flight
(default 1,000: a fifth queued, their tasks not started; the rest running), each with ``--tasks`` task
instances (default 5; in a running run one running, one queued, one scheduled, the rest waiting for their
upstream), weighed as Baton's rule weighs
them, and each with its ``priority.assigned`` event in the store. The queue is read ``--calls`` times
(default 50) at the page's limit (50) and at the route's largest (500), as the route reads it
(``baton.plugin.queue_view.waiting``, through a session of the metadata database): the baseline. Then
``--runs`` finished runs (default 100,000, every task instance succeeded: ``--runs`` x ``--tasks`` rows) are
added, the tables analysed, and the queue read again.

Run from the repository root:

    .venv/bin/python bench/queue_page.py [--runs 100000] [--active 1000] [--tasks 5] [--calls 50]

Last line: ``queue of N waiting among N task instances: p95 N ms (50 shown), N ms (500 shown); N.NN x with no
history`` (the ratio is of the p95 at 50 shown; the pages' goal for a route is a p95 under 300 ms). Always
exits 0 once the figures are printed.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

from cli_types import SEED_MAX, bounded_int
from dashboard import p
from harness import Databases, server_argument
from sqlalchemy import Engine, create_engine, func, insert, select, text
from sqlalchemy.orm import Session

from baton.events.event import Event
from baton.events.migrations import upgrade
from baton.events.store import EventStore, engine_for
from baton.events.types import BATON_TAG
from baton.queue import Standing, weight_of

DAGS = 20  # half tagged baton
LIMITS = (50, 500)  # the page's, and the route's largest
CHUNK = 20_000  # rows an INSERT carries


def metadata_tables(url: str) -> Engine:
    """Airflow's metadata tables, with the indexes its models declare, on ``url``."""
    from airflow.models import import_all_models  # deferred: a refusal loads no Airflow
    from airflow.models.base import Base  # deferred: a refusal loads no Airflow

    import_all_models()
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    return engine


def _dags(conn: Any) -> list[str]:
    from airflow.models.dag import DagModel, DagTag  # deferred: a refusal loads no Airflow
    from airflow.models.dagbundle import DagBundleModel  # deferred: a refusal loads no Airflow

    conn.execute(insert(DagBundleModel.__table__), [{"name": "bench"}])
    dags = [f"queue_bench_{i:02d}" for i in range(DAGS)]
    rows = [
        {
            "dag_id": d,
            "bundle_name": "bench",
            "max_active_tasks": 16,
            "max_consecutive_failed_dag_runs": 0,
            "has_task_concurrency_limits": False,
            "is_paused": False,
        }
        for d in dags
    ]
    conn.execute(insert(DagModel.__table__), rows)
    conn.execute(insert(DagTag.__table__), [{"dag_id": d, "name": BATON_TAG} for d in dags[: DAGS // 2]])
    return dags


def add_runs(
    engine: Engine, dags: list[str], count: int, tasks: int, active: bool, rng: random.Random
) -> None:
    """``count`` runs over ``dags``, each with ``tasks`` task instances: in flight (``active``) or finished."""
    from airflow.models.dagrun import DagRun  # deferred: a refusal loads no Airflow
    from airflow.models.taskinstance import TaskInstance  # deferred: a refusal loads no Airflow

    now = datetime.now(UTC)
    waiting = ["running", "queued", "scheduled"] + [None] * (tasks - 3)  # a running run's (--tasks >= 3)
    runs, tis = [], []
    for n in range(count):
        dag_id, run_id = dags[n % len(dags)], f"bench__{'active' if active else 'done'}_{n:07d}"
        queued = now - timedelta(seconds=rng.uniform(0, 3600) if active else rng.uniform(3600, 365 * 86400))
        state = ("queued" if n % 5 == 0 else "running") if active else "success"
        started = waiting if state == "running" else [None] * tasks  # a queued run's tasks have no state yet
        runs.append(
            {
                "dag_id": dag_id,
                "run_id": run_id,
                "run_type": "manual",
                "state": state,
                "queued_at": queued,
                "logical_date": queued,
                "run_after": queued,
            }
        )
        weight = weight_of(queued + timedelta(seconds=rng.choice((60, 3600, 8 * 3600))))
        for t in range(tasks):
            ti_state = started[t] if active else "success"
            tis.append(
                {
                    "id": uuid.uuid4(),
                    "dag_id": dag_id,
                    "run_id": run_id,
                    "task_id": f"step_{t}",
                    "map_index": -1,
                    "state": ti_state,
                    "pool": "default_pool",
                    "priority_weight": weight,
                    "try_number": 1,
                }
            )
        if len(tis) >= CHUNK or n == count - 1:
            with engine.begin() as conn:
                conn.execute(insert(DagRun.__table__), runs)
                conn.execute(insert(TaskInstance.__table__), tis)
            runs, tis = [], []


def standings(store: EventStore, engine: Engine) -> int:
    """A ``priority.assigned`` for every run in flight, as the listener records it when a run starts."""
    from airflow.models.dagrun import DagRun  # deferred: a refusal loads no Airflow

    with engine.connect() as conn:
        rows = conn.execute(
            select(DagRun.dag_id, DagRun.run_id, DagRun.queued_at).where(DagRun.state != "success")
        )
        events = []
        for dag_id, run_id, queued in rows:
            start_by = queued + timedelta(minutes=30)
            standing = Standing(
                level=50,
                max_wait_s=1800.0,
                queued_at=queued.isoformat(),
                weight=weight_of(start_by),
                start_by=start_by.isoformat(),
                reason="level 50: waits at most 30 min",
            )
            events.append(
                Event(type="priority.assigned", run_id=run_id, workflow=dag_id, payload=standing.model_dump())
            )
    for i in range(0, len(events), 1000):
        store.append(events[i : i + 1000])
    return len(events)


def read(engine: Engine, store: EventStore, calls: int) -> dict[int, list[float]]:
    """Milliseconds of each read of the queue, at each of LIMITS, as the route reads it."""
    from baton.plugin.queue_view import waiting  # deferred: Airflow's models (no refusal loads them)

    times: dict[int, list[float]] = {limit: [] for limit in LIMITS}
    shown = {}
    with Session(engine) as session:
        for limit in LIMITS:
            waiting(session, store, limit)  # a warm-up read, not counted
            for _ in range(calls):
                began = time.perf_counter()
                answer = waiting(session, store, limit)
                times[limit].append((time.perf_counter() - began) * 1000)
                session.rollback()  # a request's session ends with it
            shown[limit] = len(answer["queue"])
    print(
        f"  shown: {shown}; p50 / p95 ms: "
        + ", ".join(f"{limit}: {p(times[limit], 50):.1f} / {p(times[limit], 95):.1f}" for limit in LIMITS)
    )
    return times


def _count(engine: Engine, where: Any = None) -> int:
    from airflow.models.taskinstance import TaskInstance  # deferred: a refusal loads no Airflow

    query = select(func.count()).select_from(TaskInstance.__table__)
    with engine.connect() as conn:
        return int(conn.scalar(query if where is None else query.where(where)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=bounded_int(0, 2_000_000), default=100_000, help="finished runs added")
    parser.add_argument("--active", type=bounded_int(1, 100_000), default=1_000, help="runs in flight")
    parser.add_argument("--tasks", type=bounded_int(3, 50), default=5, help="task instances per run")
    parser.add_argument("--calls", type=bounded_int(1, 10_000), default=50, help="measured reads per limit")
    parser.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=57)
    server_argument(parser)
    return parser


def main() -> int:
    parser = _parser()
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with ExitStack() as stack:
        dbs = Databases(parser, stack, args.server, "baton_bench_queue", ("meta", "store"))
        engine = metadata_tables(dbs.url("meta"))
        stack.callback(engine.dispose)
        store_engine = engine_for(dbs.url("store"))
        stack.callback(store_engine.dispose)
        upgrade(store_engine)
        store = EventStore(store_engine)
        with engine.begin() as conn:
            dags = _dags(conn)
        add_runs(engine, dags, args.active, args.tasks, True, rng)
        print(
            f"{args.active:,} runs in flight over {DAGS} DAGs ({DAGS // 2} Baton's), "
            f"{standings(store, engine):,} priority.assigned events"
        )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
        print("no history:")
        before = read(engine, store, args.calls)
        began = time.perf_counter()
        add_runs(engine, dags, args.runs, args.tasks, False, rng)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
        total = _count(engine)
        print(
            f"history: {args.runs:,} finished runs added ({total:,} task instances) in "
            f"{time.perf_counter() - began:.0f} s"
        )
        after = read(engine, store, args.calls)
        from airflow.models.taskinstance import TaskInstance  # deferred: a refusal loads no Airflow

        not_started = TaskInstance.state.is_(None) | TaskInstance.state.in_(("scheduled", "queued"))
        pending = _count(engine, not_started & TaskInstance.dag_id.in_(dags[: DAGS // 2]))
    ratio = p(after[LIMITS[0]], 95) / max(p(before[LIMITS[0]], 95), 1e-9)
    print(
        f"queue of {pending:,} waiting among {total:,} task instances: p95 {p(after[LIMITS[0]], 95):.0f} ms "
        f"({LIMITS[0]} shown), {p(after[LIMITS[1]], 95):.0f} ms ({LIMITS[1]} shown); {ratio:.2f} x with no history"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
