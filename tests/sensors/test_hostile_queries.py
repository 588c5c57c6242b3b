"""Hostile sensor queries on real databases (PostgreSQL and a SQLite file): one that never ends is
stopped by the sensor's statement_timeout, one that writes is refused by the read-only session, and a
trigger cancelled mid-query frees both the database and the triggerer's thread."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from demo.business import create
from pydantic import ValidationError
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from baton.errors import SensorQueryError
from baton.hooks.readonly import QueryHandle, read_only
from baton.sensors.business import BusinessSensor, SensorError, sensor_id
from baton.spec.triggers import SqlThreshold
from baton.triggers.sql import SqlSensorTrigger, check

NEVER_ENDS = "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM t) SELECT count(*) AS value FROM t"
DELETING_CTE = "WITH d AS (DELETE FROM payments RETURNING amount) SELECT sum(amount) AS value FROM d"
DELETE_RETURNING = "DELETE FROM payments RETURNING amount AS value"
THRESHOLD = {"threshold": 1.0, "bind": {}}
TIMED_OUT = (
    "the query ran longer than its statement_timeout of 1 s and the database stopped it (fix: raise "
    "trigger.sensor.sql_threshold.statement_timeout (at most 10m), or make the query cheaper)"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """The demo business tables, seeded: in a SQLite file, or in a throwaway PostgreSQL database."""
    if request.param == "postgresql":
        return request.getfixturevalue("business_db")
    url = f"sqlite:///{tmp_path / 'business.db'}"
    create(url)
    return url


def _spec(query: str, statement_timeout: float = 1.0) -> dict:
    return {"conn_id": "baton_business", "query": query, "op": ">=", "statement_timeout": statement_timeout}


def _count(url: str, table: str = "payments") -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        count = conn.scalar(text(f"SELECT count(*) FROM {table}"))
    engine.dispose()
    return count


def test_a_query_that_never_ends_is_stopped_by_the_statement_timeout(database):
    """Stopped, not run until the disk fills: the error is the one the session gives only for a statement
    its timeout stopped (PostgreSQL's statement timeout, SQLite's progress handler past the deadline)."""
    with pytest.raises(SensorQueryError) as caught:
        check("sql_threshold", _spec(NEVER_ENDS), database, None, THRESHOLD)
    assert str(caught.value) == TIMED_OUT


def test_the_workers_first_look_fails_the_task_with_the_sensor_named(database, monkeypatch, airflow_db):
    """Before it defers, the task looks once itself: in the same session, with the same message."""
    monkeypatch.setenv("AIRFLOW_CONN_BATON_BUSINESS", _airflow_uri(database))
    context = {
        "ti": SimpleNamespace(run_id="r1", dag_id="revenue__sensor", task_id="wait", try_number=1),
        "params": {},
        "run_id": "r1",
    }
    with pytest.raises(SensorError) as caught:
        _sensor().execute(context)
    assert str(caught.value) == f"trigger.sensor.sql_threshold: {TIMED_OUT}"


def test_the_timeout_reaches_the_task_through_the_trigger_with_the_sensor_named(database, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BATON_BUSINESS", _airflow_uri(database))
    trigger = _trigger(NEVER_ENDS)
    events = asyncio.run(_events(trigger))
    assert [event.payload for event in events] == [{"status": "error", "error": TIMED_OUT, "stopped": True}]
    sensor = _sensor()
    with pytest.raises(SensorError) as caught:
        sensor.execute_complete({}, events[0].payload)
    assert str(caught.value) == f"trigger.sensor.sql_threshold: {TIMED_OUT}"


def test_a_data_modifying_cte_is_refused_when_the_template_is_validated():
    with pytest.raises(ValidationError) as caught:
        SqlThreshold(conn_id="baton_business", query=DELETING_CTE, threshold=1)
    assert caught.value.errors()[0]["msg"] == (
        "Value error, the query contains a DELETE in a WITH clause (fix: a sensor only reads: select what "
        "the workflow needs, and let its steps change data)"
    )


def _write_refused(driver_message: str) -> str:
    return (
        f"the query tried to write ({driver_message}), and a sensor's session is read-only (fix: make the "
        "query a SELECT that only reads; the workflow's steps change data)"
    )


WRITE_REFUSED = {  # PostgreSQL names the statement it refuses: the CTE's is the SELECT
    ("postgresql", DELETING_CTE): _write_refused("cannot execute SELECT in a read-only transaction"),
    ("postgresql", DELETE_RETURNING): _write_refused("cannot execute DELETE in a read-only transaction"),
    ("sqlite", DELETE_RETURNING): _write_refused("attempt to write a readonly database"),
}


@pytest.mark.parametrize("query", [DELETING_CTE, DELETE_RETURNING])
def test_past_validation_the_read_only_session_refuses_a_write_and_every_row_stays(database, query):
    before = _count(database)
    assert before > 0
    dialect = "sqlite" if database.startswith("sqlite") else "postgresql"
    if dialect == "sqlite" and query == DELETING_CTE:
        # SQLite has no data-modifying CTEs: the same text is a syntax error there, and writes nothing.
        with pytest.raises(OperationalError, match=r'near "DELETE": syntax error'):
            check("sql_threshold", _spec(query), database, None, THRESHOLD)
    else:
        with pytest.raises(SensorQueryError) as caught:
            check("sql_threshold", _spec(query), database, None, THRESHOLD)
        assert str(caught.value) == WRITE_REFUSED[dialect, query]
    assert _count(database) == before


def test_a_query_cannot_turn_its_postgresql_session_read_write_or_lift_its_timeout(business_db):
    """Both pass validation (a SELECT of a function): the session, not the check, stops them."""
    before = _count(business_db)
    read_write = (
        "SELECT set_config('transaction_read_only', 'off', true) AS value, "
        "(SELECT count(*) FROM payments) AS n"
    )
    with pytest.raises(
        DBAPIError, match="transaction read-write mode must be set before any query"
    ) as caught:
        check("sql_threshold", _spec(read_write), business_db, None, THRESHOLD)
    assert caught.value.orig.sqlstate == "25001"  # active_sql_transaction
    no_timeout = (
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM t) "
        "SELECT set_config('statement_timeout', '0', true) AS off, count(*) AS value FROM t"
    )
    with pytest.raises(SensorQueryError) as caught:  # the session's timeout holds: set_config cannot lift it
        check("sql_threshold", _spec(no_timeout), business_db, None, THRESHOLD)
    assert str(caught.value) == TIMED_OUT
    assert _count(business_db) == before


def test_the_new_rows_queries_run_read_only_too(database):
    """max_key (where a ``start: now`` sensor begins) and the rows query share the session."""
    spec = {"conn_id": "baton_business", "table": "payments", "key": "seq", "statement_timeout": 1.0}
    with pytest.raises(SensorQueryError) as caught, read_only(database, 1.0, "new_rows") as conn:
        conn.execute(text("DELETE FROM payments"))
    dialect = "sqlite" if database.startswith("sqlite") else "postgresql"
    assert str(caught.value) == WRITE_REFUSED[dialect, DELETE_RETURNING]  # as for DELETE ... RETURNING
    found = check("new_rows", spec, database, 0, {})
    assert found["status"] == "fired" and len(found["rows"]) == min(500, _count(database))


def test_cancelling_the_trigger_mid_query_cancels_it_on_postgresql(business_db, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BATON_BUSINESS", _airflow_uri(business_db))
    marker = "baton_cancel_probe"
    query = NEVER_ENDS.replace("SELECT count(*)", f"SELECT /* {marker} */ count(*)")
    engine = create_engine(business_db)

    def running() -> list:
        with engine.connect() as conn:
            return conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE :q "
                    "AND pid <> pg_backend_pid()"
                ),
                {"q": f"%{marker}%"},
            ).all()

    async def scenario() -> list:
        task = asyncio.ensure_future(_events(_trigger(query, statement_timeout=60)))
        await _until(lambda: running(), "the sensor's query running on PostgreSQL")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _until(lambda: not running(), "no active query of the sensor left on PostgreSQL")
        return running()

    try:
        assert _with_one_thread(scenario()) == []
    finally:
        engine.dispose()


def test_cancelling_the_trigger_mid_query_frees_the_thread_on_sqlite(tmp_path, monkeypatch):
    """The look's query runs in the pool's only thread (SQLite calls the session's progress handler there
    as the statement runs); a probe queued behind it runs only once the trigger is cancelled: the cancel
    stopped the query and let the thread go (its timeout, 600 s, is far after the probe's wait of 60 s)."""
    url = f"sqlite:///{tmp_path / 'business.db'}"
    create(url)
    monkeypatch.setenv("AIRFLOW_CONN_BATON_BUSINESS", _airflow_uri(url))
    progress, cancelled, looks = QueryHandle._progress, threading.Event(), []

    def watched(handle: QueryHandle) -> int:
        looks.append(threading.get_ident())
        return progress(handle)

    monkeypatch.setattr(QueryHandle, "_progress", watched)

    async def scenario() -> tuple[bool, int]:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(_events(_trigger(NEVER_ENDS, statement_timeout=600)))
        await _until(lambda: looks, "the sensor's query running on SQLite", timeout=60)
        # Queued behind the look in the pool's only thread: it runs when that thread is let go.
        probe = loop.run_in_executor(None, lambda: (cancelled.is_set(), threading.get_ident()))
        queued = len(looks)
        await _until(lambda: len(looks) > queued + 100, "the query running on after the probe was queued", 60)
        cancelled.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        try:
            return await asyncio.wait_for(probe, timeout=60)
        except TimeoutError:
            raise AssertionError("the look still held the thread 60 s after the cancel") from None

    after_the_cancel, thread = _with_one_thread(scenario())
    assert after_the_cancel and {thread} == set(looks)


def test_the_trigger_serializes_to_its_arguments_and_timings_do_not_move_the_mark():
    arguments = {
        "kind": "sql_threshold",
        "spec": _spec("SELECT 1 AS value", 5.0),
        "conn_id": "baton_business",
        "mark": None,
        "params": THRESHOLD,
        "poke_interval": 30.0,
        "deadline": 1e10,
    }
    path, kwargs = SqlSensorTrigger(**arguments).serialize()
    assert (path, kwargs) == ("baton.triggers.sql.SqlSensorTrigger", arguments)
    spec = _spec("SELECT 1 AS value")
    assert sensor_id("sql_threshold", {**spec, "statement_timeout": 60.0}) == sensor_id("sql_threshold", spec)


def test_statement_timeout_is_bounded_and_defaults_to_30_seconds():
    assert SqlThreshold(conn_id="c", query="SELECT 1 AS value", threshold=1).statement_timeout.seconds == 30
    for value, message in [
        ("0s", "Value error, statement_timeout is 0 s; use at least 1s"),
        (
            "11m",
            "Value error, statement_timeout is 660 s; use at most 10m, what one look of a sensor may hold a "
            "triggerer thread (a query that needs longer belongs in a scheduled step)",
        ),
    ]:
        with pytest.raises(ValidationError) as caught:
            SqlThreshold(conn_id="c", query="SELECT 1 AS value", threshold=1, statement_timeout=value)
        assert caught.value.errors()[0]["msg"] == message


# --- helpers ----------------------------------------------------------------------------------------


def _airflow_uri(url: str) -> str:
    """An Airflow connection URI for a SQLAlchemy URL (what an operator sets as AIRFLOW_CONN_...)."""
    if url.startswith("sqlite"):
        return "sqlite:///" + url.removeprefix("sqlite:///")
    return url.replace("postgresql+psycopg://", "postgres://")


def _trigger(query: str, statement_timeout: float = 1.0) -> SqlSensorTrigger:
    return SqlSensorTrigger(
        kind="sql_threshold",
        spec=_spec(query, statement_timeout),
        conn_id="baton_business",
        mark=None,
        params=THRESHOLD,
        poke_interval=30.0,
        deadline=time.time() + 600,
    )


def _sensor() -> BusinessSensor:
    return BusinessSensor(
        task_id="wait",
        workflow="revenue",
        kind="sql_threshold",
        spec={**_spec(NEVER_ENDS), "threshold": 1},
        key_path="trigger.sensor.sql_threshold",
    )


async def _events(trigger: SqlSensorTrigger) -> list:
    return [event async for event in trigger.run()]


def _with_one_thread(scenario):
    """Run ``scenario`` on a loop whose default executor has one thread: the thread a look runs in is
    the one every later ``to_thread`` needs, as in the triggerer's small pool. The loop closes without
    waiting for that thread, so a look that was not cancelled fails the test instead of hanging it."""
    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(executor)
    try:
        return loop.run_until_complete(scenario)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        loop.close()


async def _until(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}")
        await asyncio.sleep(0.1)


def test_the_compiled_sensor_task_gets_its_statement_timeout_in_seconds(tmp_path, dags_folder):
    from baton.compile.build import sensor_dag
    from baton.spec import load_roster, load_workflow

    text = (dags_folder / "workflows" / "revenue_milestone.yaml").read_text()
    assert "      poke_interval: 30s\n" in text
    path = tmp_path / "revenue_milestone.yaml"
    path.write_text(
        text.replace("      poke_interval: 30s\n", "      poke_interval: 30s\n      statement_timeout: 5s\n")
    )
    workflow = load_workflow(path, load_roster(dags_folder / "agents.yaml"), root=tmp_path)
    (task,) = sensor_dag(workflow).tasks
    assert (task.spec["statement_timeout"], task.spec["poke_interval"]) == (5.0, 30.0)
