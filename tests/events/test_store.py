"""The event store on SQLite and PostgreSQL: idempotent appends, order, blobs, projections, migrations."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError

from baton.events import migrations, projections, schema, summaries
from baton.events.decode import loads
from baton.events.event import CorruptEvent, Event
from baton.events.log import INLINE_LIMIT, StoreError
from baton.events.migrations import MIGRATIONS, current_version, upgrade
from baton.events.replay import fold
from baton.events.store import EventStore, engine_for


def _run_events(run_id: str = "run_1", workflow: str = "lead_qualification") -> list[Event]:
    common = {"run_id": run_id, "workflow": workflow, "template_version": 3}
    step = {**common, "step": "score", "try_number": 1, "agent": "scorer"}
    return [
        Event(type="run.started", payload={"conf_keys": ["region"], "conf_sha256": "ab" * 32}, **common),
        Event(type="step.started", payload={"pid": 7, "pool": "baton_agent_scorer"}, **step),
        Event(
            type="agent.selected",
            payload={"agent": "scorer", "candidates": ["scorer"], "reason": "named"},
            **step,
        ),
        Event(
            type="model.called",
            payload={
                "model": "m",
                "input_tokens": 100,
                "output_tokens": 20,
                "cost": 0.01,
                "latency_s": 0.5,
                "prompt_sha256": "ab" * 32,
                "prompt_chars": 42,
            },
            **step,
        ),
        Event(
            type="output.recorded", payload={"sha256": "cd" * 32, "size": 11, "output": {"score": 91}}, **step
        ),
        Event(type="step.succeeded", payload={"duration_s": 1.5}, **step),
        Event(type="run.succeeded", payload={"duration_s": 2.0}, **common),
    ]


def test_append_stores_each_event_once_and_numbers_them_in_order(store):
    events = _run_events()
    seqs = store.append(events)
    assert len(seqs) == len(events) and seqs == sorted(seqs)
    assert store.append(events) == [], "the same events again are duplicates"
    assert (
        store.append(
            [
                events[2],
                Event(
                    type="step.retried",
                    run_id="run_1",
                    workflow="w",
                    step="score",
                    try_number=1,
                    payload={"next_try": 2},
                ),
            ]
        )
        != []
    )
    read = list(store.read("run_1"))
    assert [e.type for e in read][:2] == ["run.started", "step.started"]
    assert len(read) == len(events) + 1
    assert [e.seq for e in read] == sorted(e.seq for e in read)
    assert (
        read[3].payload["input_tokens"] == 100 and read[3].agent == "scorer" and read[3].template_version == 3
    )


def _deferred_then_failed(store) -> None:
    with store.engine.begin() as conn, store.deferred(conn):
        store.append_in(conn, _run_events("run_2"))
        raise ValueError("the block failed")


def test_deferred_appends_go_in_at_the_end_of_their_block_in_order_or_not_at_all(store):
    """Inside ``deferred`` an append only queues its events (no sequence numbers yet); the block's end stores
    them in the order asked, each once by its key; a block that raises stores none of them."""
    events = _run_events()
    with store.engine.begin() as conn, store.deferred(conn) as queued:
        assert store.append_in(conn, events[:3]) == []
        assert store.append_in(conn, [events[0], *events[3:5]]) == []  # run.started again: stored once
        assert [e.type for e in queued] == [e.type for e in [*events[:3], events[0], *events[3:5]]]
        with pytest.raises(RuntimeError, match="already deferred"), store.deferred(conn):
            pass
    assert [e.type for e in store.read("run_1")] == [e.type for e in events[:5]]
    with pytest.raises(ValueError, match="the block failed"):
        _deferred_then_failed(store)
    assert list(store.read("run_2")) == []
    with store.engine.begin() as conn:  # the pooled connection appends at once again
        assert len(store.append_in(conn, _run_events("run_2")[:2])) == 2


def test_an_event_read_back_is_equal_to_the_one_appended_in_every_field(store):
    """A read builds its events without ``__init__`` (``Event.stored``): each field it sets is the field
    appended, and it sets every field the dataclass has (a field added to ``Event`` and not to ``stored``
    fails here)."""
    events = _run_events()
    seqs = store.append(events)
    read = list(store.read("run_1"))
    stored = [
        dataclasses.replace(e, seq=s, payload=e.row()["payload"]) for e, s in zip(events, seqs, strict=True)
    ]
    assert read == stored  # the payload as stored: its model's defaults filled in
    assert all(set(vars(e)) == {f.name for f in dataclasses.fields(Event)} for e in read)
    with pytest.raises(dataclasses.FrozenInstanceError):
        read[0].step = "other"  # type: ignore[misc]


def test_an_event_of_an_unknown_type_or_payload_is_refused_before_it_is_stored(store):
    known = "unknown event type 'step.exploded'; known: action.taken, agent.breaker_closed, "
    with pytest.raises(ValueError, match=known):
        Event(type="step.exploded", run_id="r", workflow="w")
    with pytest.raises(ValueError, match="next_try"):
        store.append([Event(type="step.retried", run_id="r", workflow="w", payload={})])
    assert list(store.read("r")) == []


def test_read_until_and_fold_rebuild_the_state_at_any_point(store):
    store.append(_run_events())
    read = list(store.read("run_1"))
    middle = fold("run_1", store.read("run_1", until=read[2].seq))
    assert (middle.state, middle.step_states(), middle.agents) == (
        "running",
        {"score": "running"},
        ["scorer"],
    )
    end = fold("run_1", store.read("run_1"))
    assert (end.state, end.step_states(), end.conf_keys) == ("success", {"score": "success"}, ["region"])
    step = end.steps[("score", -1)]
    assert (step.output, step.input_tokens, step.output_tokens, step.cost) == ({"score": 91}, 100, 20, 0.01)


def test_a_read_of_more_than_a_chunk_comes_back_whole_and_one_stopped_early_leaves_the_store_usable(
    store, monkeypatch
):
    """``rows_of`` reads a chunk at a time (PostgreSQL: psycopg's stream, SQLite: SQLAlchemy's partitions): a
    read over several chunks comes back in order and whole, the filters' expanded IN (types) included; a
    reader that stops after a few events leaves the pool's connection fit for the next read (psycopg cancels
    and drains the stream), many times over."""
    from baton.events import rows

    monkeypatch.setattr(rows, "CHUNK", 3)  # the read of 7 events spans three chunks
    store.append(_run_events() + _run_events("run_2"))
    everything = list(store.read())
    assert [e.seq for e in everything] == sorted(e.seq for e in everything) and len(everything) == 14
    assert [e.type for e in store.read("run_2", types=["run.started", "run.succeeded"])] == [
        "run.started",
        "run.succeeded",
    ]
    for _ in range(12):  # more early stops than the pool has connections
        reading = store.read()
        assert next(reading).run_id == "run_1"
        reading.close()
    assert fold("run_2", store.read("run_2", after=everything[8].seq)).events == 5


def test_one_event_on_postgresql_is_its_insert_alone_and_a_batch_is_one_transaction(pg_url):
    """A single append on PostgreSQL is its INSERT alone, sent by psycopg as compiled once (SQLAlchemy's
    execute sees only the batch's); it stores the event as a batch would, once: again, it stores nothing. A
    batch runs in a transaction, all or nothing: a batch whose last event fails to store stores none."""
    from sqlalchemy import delete, event

    engine = engine_for(pg_url)
    with engine.begin() as conn:
        conn.execute(delete(schema.events))
    store, executed = EventStore(engine), []

    @event.listens_for(engine, "before_cursor_execute")
    def seen(conn, cursor, statement, *args):
        if statement.startswith("INSERT INTO baton_events"):
            executed.append(conn.connection.dbapi_connection.autocommit)

    try:
        events = _run_events("alone")
        (seq,) = store.append(events[:1])
        assert store.append(events[:1]) == []
        assert store.append(events[1:]) and executed == [False]
        (first, *_) = store.read("alone")
        assert first == dataclasses.replace(events[0], seq=seq, payload=events[0].row()["payload"])
        broken = _run_events("all_or_none")
        broken[-1] = dataclasses.replace(broken[-1], workflow="w" * 300)  # longer than its VARCHAR(250)
        with pytest.raises(DataError, match="value too long for type character varying"):
            store.append(broken)
        with pytest.raises(DataError, match="value too long for type character varying"):
            store.append(broken[-1:])
        assert list(store.read("all_or_none")) == [] and len(list(store.read("alone"))) == len(events)
        assert store.append(_run_events("after")[:1])  # the pool's connection fit after the failed one
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def test_a_single_append_to_an_unmigrated_postgresql_store_says_what_to_do():
    """The single event's own path (psycopg's cursor) fails as the batch's does: StoreError, with the fix;
    a read, streamed by psycopg's cursor, with SQLAlchemy's error."""
    from tests.conftest import pg_database

    with pg_database("baton_bare") as url:
        bare = EventStore(engine_for(url))
        for events in (_run_events()[:1], _run_events()):
            with pytest.raises(StoreError, match=r"has no tables yet: run `baton db upgrade`"):
                bare.append(events)
        # a streamed read fails as SQLAlchemy's execute does (its error, not the driver's)
        with pytest.raises(ProgrammingError, match='relation "baton_events" does not exist'):
            list(bare.read())
        bare.engine.dispose()


def test_large_outputs_are_stored_once_by_reference(store):
    big = {"rows": ["x" * 100] * (INLINE_LIMIT // 50)}
    payload = store.output_payload(big)
    assert payload["ref"] == payload["sha256"] and "output" not in payload
    assert store.output_payload(big)["ref"] == payload["ref"]
    assert store.blob(payload["ref"]) == big
    small = store.output_payload({"a": 1})
    assert small["output"] == {"a": 1} and small.get("ref") is None


def test_the_runs_projection_follows_the_events_in_airflows_words_and_can_be_rebuilt_from_them(store):
    """One projection of a run (baton_run_summary), read in the execution table's columns: running, then
    success (never "completed"), its agents as they are chosen and its outputs once it ended."""
    events = _run_events()
    store.append(events[:3])
    (row,) = projections.executions(store)
    assert (
        row["id"],
        row["workflow_id"],
        row["trigger_id"],
        row["execution_status"],
        row["agents_involved"],
        row["result"],
    ) == (1, "run_1", "lead_qualification", "running", ["scorer"], None)
    assert row["timestamp"] == events[0].ts.isoformat()
    store.append(events[3:])
    (row,) = projections.executions(store)
    assert (row["execution_status"], row["result"]) == ("success", {"outputs": {"score": {"score": 91}}})
    store.append(
        [
            Event(type="run.started", run_id="run_2", workflow="lead_qualification"),
            Event(type="run.failed", run_id="run_2", workflow="lead_qualification", payload={"reason": "x"}),
        ]
    )
    before = [
        (r["id"], r["workflow_id"], r["execution_status"], r["agents_involved"], r["result"])
        for r in projections.executions(store)
    ]
    with store.engine.begin() as conn:
        for table in summaries.TABLES:
            conn.execute(table.delete())
    assert projections.executions(store) == []
    assert projections.rebuild(store) == 2
    after = [
        (r["id"], r["workflow_id"], r["execution_status"], r["agents_involved"], r["result"])
        for r in projections.executions(store)
    ]
    assert (
        after
        == before
        == [
            (2, "run_2", "failed", [], {"outputs": {}}),
            (1, "run_1", "success", ["scorer"], {"outputs": {"score": {"score": 91}}}),
        ]
    )


def test_the_execution_table_is_a_view_of_the_runs_projection_in_its_columns(store):
    store.append(_run_events())
    assert store.catch_up() == len(_run_events())  # what every reader of the projection does first
    with store.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, workflow_id, trigger_id, execution_status FROM workflow_executions")
        ).all()
    assert rows == [(1, "run_1", "lead_qualification", "success")]


def test_an_agent_chosen_before_its_runs_first_event_is_in_the_run_once_it_ends(store):
    events = _run_events()
    store.append(events[1:3])  # the step's start and its agent, before the run's start reached the store
    store.catch_up()  # a reader caught up then: no row of the run yet
    store.append(events[:1])
    (row,) = projections.executions(store)
    assert row["agents_involved"] == [], "no row held the agent when it was chosen"
    store.append(events[3:])
    (row,) = projections.executions(store)
    assert row["agents_involved"] == ["scorer"], "the run's end read its agents from its events"


def test_agent_stats_count_runs_success_latency_tokens_and_cost(store):
    for i, (ok, duration) in enumerate([(True, 1.0), (True, 3.0), (False, None), (True, 2.0)]):
        step = {"run_id": f"r{i}", "workflow": "w", "step": "s", "try_number": 1, "agent": "scorer"}
        kind = "step.succeeded" if ok else "step.failed"
        store.append(
            [
                Event(
                    type="model.called",
                    payload={
                        "model": "m",
                        "input_tokens": 10,
                        "output_tokens": 5,
                        "cost": 0.25,
                        "prompt_sha256": "0" * 64,
                        "prompt_chars": 1,
                    },
                    **step,
                ),
                Event(type=kind, payload={"duration_s": duration} if ok else {"error_class": "X"}, **step),
            ]
        )
    (stats,) = projections.agent_stats(store)
    assert (stats.agent, stats.runs, stats.steps, stats.succeeded, stats.failed) == ("scorer", 4, 4, 3, 1)
    assert stats.success_rate == 0.75
    assert (stats.p50_latency_s, stats.input_tokens, stats.output_tokens, stats.cost) == (2.0, 40, 20, 1.0)
    assert stats.p95_latency_s == pytest.approx(2.9)
    (only_the_last,) = projections.agent_stats(store, ["scorer"], last=2)  # the newest step and model call
    assert (only_the_last.runs, only_the_last.steps, only_the_last.succeeded, only_the_last.cost) == (
        1,
        1,
        1,
        0.25,
    )
    assert projections.agent_stats(store, ["someone_else"]) == []


def test_a_budgets_refusal_is_not_the_agents_failure_in_its_statistics(store):
    """As the monitor's failure rate and the agents' board count it: the one source of an agent's figures."""
    step = {"run_id": "r", "workflow": "w", "step": "s", "try_number": 1, "agent": "scorer"}
    store.append(
        [
            Event(type="step.succeeded", payload={"duration_s": 1.0}, **step),
            Event(
                type="step.failed",
                payload={"error_class": "BudgetExceeded", "error": "over"},
                **{**step, "try_number": 2},
            ),
        ]
    )
    (stats,) = projections.agent_stats(store)
    assert (stats.steps, stats.succeeded, stats.failed, stats.success_rate) == (1, 1, 0, 1.0)


def test_a_corrupt_payload_is_reported_with_its_sequence_number(store):
    store.append(_run_events()[:2])
    row = {
        "run_id": "run_1",
        "workflow": "w",
        "type": "step.succeeded",
        "payload": {"duration_s": "soon"},
        "ts": _run_events()[0].ts,
        "idempotency_key": "forged-1",
        "map_index": -1,
        "try_number": 1,
    }
    with store.engine.begin() as conn:
        conn.execute(insert(schema.events).values(**row))
        if store.engine.dialect.name == "sqlite":  # SQLite keeps whatever text it is given
            conn.execute(
                insert(schema.events).values(**{**row, "idempotency_key": "forged-2", "payload": {}})
            )
            conn.execute(
                text("UPDATE baton_events SET payload = '{not json' WHERE idempotency_key = 'forged-2'")
            )
    read = list(store.read("run_1"))
    corrupt = [e for e in read if isinstance(e, CorruptEvent)]
    assert (
        str(corrupt[0]) == f"event {corrupt[0].seq} (step.succeeded): payload does not fit: ('duration_s',): "
        "Input should be a valid number, unable to parse string as a number"
    )
    if store.engine.dialect.name == "sqlite":
        assert str(corrupt[1]).startswith(f"event {corrupt[1].seq} (step.succeeded): payload is not JSON: ")
    state = fold("run_1", read)
    assert state.corrupt == corrupt and state.step_states() == {"score": "running"}


def test_migrations_run_once_and_an_unmigrated_store_says_what_to_do(tmp_path, store):
    with store.engine.connect() as conn:
        assert current_version(conn) == MIGRATIONS[-1][0]
    assert upgrade(store.engine) == []
    bare = EventStore(engine_for(f"sqlite:///{tmp_path / 'bare.db'}"))
    with pytest.raises(StoreError, match=r"has no tables yet: run `baton db upgrade` \(make run does it\)"):
        bare.append(_run_events()[:1])
    assert upgrade(bare.engine) == [
        "1: events, blobs and workflow_executions",
        "2: the shared context of runs",
        "3: agent load slots and circuit breakers",
        "4: signal buckets and the monitor's state",
        "5: a runbook's cap on an agent's concurrency",
        "6: the budgets' ledger of reservations and spend",
        "7: an index of each step's history, for learned routing and experiments",
        "8: the dashboard's projections: runs, tasks, agents' calls and hourly step figures",
        "9: one projection of a run, in Airflow's states: workflow_executions a view of it",
        "10: the pages' projection caught up from the log, out of the append's transaction: its cursor",
        "11: the callers waiting for an agent's slot, the next slot to the run that must start soonest",
    ]
    assert bare.append(_run_events()[:1]) != []


def test_a_store_at_version_8_keeps_its_runs_in_one_projection_and_the_execution_table_as_a_view(store):
    """A store made before version 9: its execution table said "completed", its run summary had no agents
    nor outputs and its agents' calls no run nor tokens. Upgrading reads them from the events again, and the
    execution table's name is a view of the runs in Airflow's words."""
    store.append(_run_events())
    engine = store.engine
    with engine.begin() as conn:
        conn.execute(text("DROP VIEW workflow_executions"))
        migrations._V1_EXECUTIONS.create(conn)
        conn.execute(
            migrations._V1_EXECUTIONS.insert().values(
                workflow_id="run_1",
                trigger_id="lead_qualification",
                agents_involved=["scorer"],
                execution_status="completed",
                result=None,
                timestamp=_run_events()[0].ts,
            )
        )
        for table, column in (
            ("baton_run_summary", "agents"),
            ("baton_run_summary", "result"),
            ("baton_agent_calls", "run_id"),
            ("baton_agent_calls", "input_tokens"),
            ("baton_agent_calls", "output_tokens"),
        ):
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(text("DELETE FROM baton_schema_version WHERE version >= 9"))
    try:
        applied = upgrade(engine)
    finally:  # whatever happened, the shared PostgreSQL store is at the last version again
        upgrade(engine)
    assert applied == [
        "9: one projection of a run, in Airflow's states: workflow_executions a view of it",
        "10: the pages' projection caught up from the log, out of the append's transaction: its cursor",
        "11: the callers waiting for an agent's slot, the next slot to the run that must start soonest",
    ]
    (row,) = projections.executions(store)
    assert (row["execution_status"], row["agents_involved"], row["result"]) == (
        "success",
        ["scorer"],
        {"outputs": {"score": {"score": 91}}},
    )
    with engine.connect() as conn:
        assert conn.execute(text("SELECT execution_status FROM workflow_executions")).all() == [("success",)]
    (stats,) = projections.agent_stats(store)
    assert (stats.runs, stats.input_tokens, stats.output_tokens) == (1, 100, 20)
    assert upgrade(engine) == []


def test_a_store_at_version_4_gains_the_concurrency_cap_and_keeps_its_breakers(tmp_path):
    """A store made before the cap existed: its agent_health table has no such column (dropped here to
    rebuild it), and rows in it; upgrading adds the column, keeps every row, and is not applied twice."""
    engine = engine_for(f"sqlite:///{tmp_path / 'v4.db'}")
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE baton_agent_health DROP COLUMN concurrency_cap"))
        conn.execute(text("DROP TABLE baton_budget_ledger"))  # made at version 6
        conn.execute(text("DELETE FROM baton_schema_version WHERE version >= 5"))
        conn.execute(
            text(
                "INSERT INTO baton_agent_health (agent, consecutive_failures, last_error, updated_at) "
                "VALUES ('alpha', 3, 'boom', CURRENT_TIMESTAMP)"
            )
        )
        assert current_version(conn) == 4
    assert upgrade(engine) == [
        "5: a runbook's cap on an agent's concurrency",
        "6: the budgets' ledger of reservations and spend",
        "7: an index of each step's history, for learned routing and experiments",
        "8: the dashboard's projections: runs, tasks, agents' calls and hourly step figures",
        "9: one projection of a run, in Airflow's states: workflow_executions a view of it",
        "10: the pages' projection caught up from the log, out of the append's transaction: its cursor",
        "11: the callers waiting for an agent's slot, the next slot to the run that must start soonest",
    ]
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                schema.agent_health.c.agent,
                schema.agent_health.c.consecutive_failures,
                schema.agent_health.c.concurrency_cap,
            )
        ).all()
    assert rows == [("alpha", 3, None)]
    assert upgrade(engine) == []


def test_the_idempotency_key_is_unique_in_the_table(store):
    event = _run_events()[0]
    with store.engine.begin() as conn:
        conn.execute(insert(schema.events).values(**event.row()))
    with pytest.raises(IntegrityError, match="(?i)unique"), store.engine.begin() as conn:
        conn.execute(insert(schema.events).values(**event.row()))
    with store.engine.connect() as conn:
        assert conn.scalar(select(schema.events.c.seq).where(schema.events.c.idempotency_key == event.key))


def test_every_time_the_store_gives_back_is_utc_aware(store):
    """SQLite keeps no zone and PostgreSQL converts to the session's: both read back the same UTC instant,
    aware, through the store, a plain select and an aggregate, so no reader compares naive with aware."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import func

    at = datetime(2026, 11, 23, 15, 4, 5, 123456, tzinfo=UTC)
    store.append([Event(type="run.started", run_id="tz_run", workflow="w", payload={}, ts=at)])
    (read,) = store.read("tz_run")
    assert read.ts == at and read.ts.utcoffset() == timedelta(0)
    e = schema.events.c
    with store.engine.connect() as conn:
        plain = conn.scalar(select(e.ts).where(e.run_id == "tz_run"))
        latest = conn.scalar(select(func.max(e.ts)).where(e.run_id == "tz_run"))
    for value in (plain, latest):
        assert value == at and value.utcoffset() == timedelta(0), value


def test_a_payload_sqlite_kept_with_nan_reads_back_through_every_path(tmp_path):
    """Baton writes NaN as null (pydantic's JSON mode), but SQLite keeps whatever text a row was given (an
    older writer, a hand-made fix): such a row reads as the json module reads it, by ``read`` and by the
    replays' ``step_history``."""
    store = EventStore(engine_for(f"sqlite:///{tmp_path / 'nan.db'}"))
    upgrade(store.engine)
    payload = {"model": "m", "input_tokens": 1, "prompt_sha256": "ab" * 32, "prompt_chars": 4}
    store.append([Event(type="model.called", run_id="r", workflow="w", step="s", agent="a", payload=payload)])
    with store.engine.begin() as conn:
        kept = json.dumps({**payload, "latency_s": float("nan"), "cost": float("inf")})  # NaN, Infinity
        conn.execute(text("UPDATE baton_events SET payload = :kept"), {"kept": kept})
    assert store.engine.dialect._json_deserializer is loads  # the JSON columns' reader is read()'s
    (read,) = store.read("r")
    assert math.isnan(read.payload["latency_s"]) and read.payload["cost"] == math.inf
    ((*_, history),) = store.step_history("w", "s", ["model.called"], 10)
    assert math.isnan(history["latency_s"]) and history["cost"] == math.inf
