"""The pages' projection caught up from the log (baton.events.catchup), on SQLite and PostgreSQL: an append
leaves it to the catch-up; a crash between the two loses nothing; concurrent catch-ups apply each event once;
an event that commits after a later one (PostgreSQL) is applied when it commits; the pages read what was
appended just before them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from baton.events import catchup, schema, summaries
from baton.events.event import Event
from baton.events.projections import PAGES, rebuild
from baton.ops.dashboard import agents, analytics, gantt, runs
from tests.threads import run_threads

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
INCLUDE = Path(__file__).resolve().parents[2] / "include"


def _run(run_id: str, steps: int = 3, at: datetime = NOW, agent: str = "scorer") -> list[Event]:
    """A run's events as the writers append them: its start, per step a start, an agent and an end."""
    common = {"run_id": run_id, "workflow": "lead_scoring", "template_version": 1}
    events = [Event(type="run.started", payload={"run_type": "manual"}, ts=at, **common)]
    for i in range(steps):
        step = {**common, "step": f"s{i}", "try_number": 1, "agent": agent}
        ts = at + timedelta(seconds=i + 1)
        chosen = {"agent": agent, "candidates": [agent], "reason": "named"}
        events += [
            Event(type="step.started", ts=ts, **step),
            Event(type="agent.selected", payload=chosen, ts=ts, **step),
            Event(type="step.succeeded", payload={"duration_s": 1.0}, ts=ts + timedelta(seconds=1), **step),
        ]
    events.append(Event(type="run.succeeded", payload={"duration_s": steps + 1.0}, ts=at, **common))
    return events


def _rows(store) -> dict[str, list[tuple]]:
    """Every row of the projection as it stands (no catch-up), in key order; a call's row without its id."""
    with store.engine.connect() as conn:
        return {
            table.name: sorted(
                tuple(r) for r in conn.execute(select(*[c for c in table.c if c.name != "id"]))
            )
            for table in summaries.TABLES
        }


def _rebuilt(store) -> dict[str, list[tuple]]:
    """The rows a rebuild from the events alone gives (the projection is rebuilt: the test's last look)."""
    rebuild(store)
    return _rows(store)


def _cursor(store) -> tuple[int, list]:
    c = schema.projection_cursors.c
    with store.engine.connect() as conn:
        return tuple(conn.execute(select(c.seq, c.gaps).where(c.name == PAGES)).one())


def _newest(store) -> int:
    with store.engine.connect() as conn:
        return conn.scalar(select(func.max(schema.events.c.seq)))


@pytest.fixture(autouse=True)
def _cursor_at_the_stores_last_number(store):
    """The shared PostgreSQL store's events are deleted between tests (tests/conftest.py), never its numbers:
    its cursor starts each test where a store that deletes nothing would have it, past every number taken."""
    if store.engine.dialect.name == "postgresql":
        last = "SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence('baton_events', 'seq')), 0)"
        with store.engine.begin() as conn:
            seq = conn.scalar(text(last))
            c = schema.projection_cursors.c
            conn.execute(schema.projection_cursors.update().where(c.name == PAGES).values(seq=seq, gaps=[]))


def test_an_append_leaves_the_projection_to_the_catch_up_which_applies_it_once(store):
    before = _cursor(store)
    events = _run("r1")
    store.append(events)
    assert _rows(store)["baton_run_summary"] == [], "the append wrote the event alone"
    assert _cursor(store) == before
    assert store.catch_up() == len(events)
    assert _cursor(store) == (_newest(store), [])
    assert store.catch_up() == 0, "current: nothing applied again"
    ((state, tasks),) = [(r[3], r[7]) for r in _rows(store)["baton_run_summary"]]
    assert (state, tasks) == ("success", 3)
    assert _rows(store) == _rebuilt(store)


def test_a_catch_up_applies_at_most_its_limit_and_the_next_one_the_rest(store):
    events = _run("r1", steps=10)  # 32 events
    store.append(events)
    assert store.catch_up(limit=20) == 20
    assert _cursor(store)[0] == _newest(store) - 12
    assert store.catch_up(limit=20) == 12
    assert _rows(store) == _rebuilt(store)


def test_a_catch_up_rolled_back_loses_nothing(store):
    store.append(_run("r1"))
    (projection,) = store.caught_up
    before, cursor = _rows(store), _cursor(store)

    def crash() -> None:
        with store.engine.begin() as conn:
            assert catchup.catch_up(conn, projection) == 11
            raise RuntimeError("crash after the apply, before the commit")

    with pytest.raises(RuntimeError, match="crash after the apply"):
        crash()
    assert (_rows(store), _cursor(store)) == (before, cursor), "neither its rows nor its cursor moved"
    assert store.catch_up() == 11
    assert _rows(store) == _rebuilt(store)


KILLED = """
import os, signal, sys
from baton.events import catchup
from baton.events.event import Event
from baton.events.store import EventStore, engine_for
store = EventStore(engine_for(sys.argv[1]))
common = {"run_id": "killed", "workflow": "lead_scoring"}
store.append([Event(type="run.started", **common), Event(type="run.succeeded", **common)])
(projection,) = store.caught_up
with store.engine.begin() as conn:
    catchup.catch_up(conn, projection)
    print("applied", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_process_killed_in_its_catch_up_loses_nothing(store):
    """A process appends, then is killed (SIGKILL) in its catch-up's transaction, before its commit."""
    url = store.engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "PYTHONPATH": f"{INCLUDE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-c", KILLED, url], env=env, capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout) == (-signal.SIGKILL, "applied\n"), done.stderr[-2000:]
    assert _rows(store)["baton_run_summary"] == [], "the killed catch-up committed nothing"
    assert store.catch_up() == 2
    (run,) = _rows(store)["baton_run_summary"]
    assert run[:4] == ("killed", "lead_scoring", None, "success")
    assert _rows(store) == _rebuilt(store)


def test_concurrent_catch_ups_beside_appenders_apply_each_event_once(store):
    """Four threads append 24 runs while four catch up (each its own connection, small batches): every
    count, every try and every call is there once, as a rebuild from the events alone gives them."""
    appended = threading.Event()
    applied: list[int] = []

    def append(i: int) -> None:
        for k in range(6):
            store.append(_run(f"r{i}_{k}", steps=2 + k % 3, agent=f"agent{k % 3}"))

    def catch_up() -> None:
        while True:
            finished = appended.is_set()
            n = store.catch_up(limit=7)
            applied.append(n)
            if finished and n == 0:
                return

    def appenders() -> None:
        run_threads([lambda i=i: append(i) for i in range(4)])
        appended.set()

    run_threads([appenders, *[catch_up] * 4], timeout=300)
    with store.engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(schema.events))
    assert sum(applied) == stored == 24 * 2 + 4 * 2 * 3 * (2 + 3 + 4)
    caught = _rows(store)
    assert len(caught["baton_run_summary"]) == 24 and len(caught["baton_agent_calls"]) == 4 * 2 * (2 + 3 + 4)
    assert caught == _rebuilt(store)


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_an_event_committed_after_a_later_one_is_applied_when_it_commits(store, monkeypatch):
    """PostgreSQL numbers an event before its transaction commits: 10 may commit after 11. The catch-up that
    saw 11 keeps 10 as a gap and applies it once it commits; a number an idempotent append took and never
    stored settles once no transaction of that time runs."""
    slow, fast = _run("slow", steps=1), _run("fast", steps=1)
    with store.engine.connect() as held, held.begin():
        store.append_in(held, slow)  # numbered first, not committed
        store.append(fast)
        assert store.catch_up() == len(fast)
        seq, gaps = _cursor(store)
        assert seq == _newest(store) and len(gaps) == len(slow)
        assert store.catch_up() == 0, "its transaction runs: the gap stays open"
        assert len(_cursor(store)[1]) == len(slow)
    assert store.catch_up() == len(slow), "committed: applied"
    assert _cursor(store)[1] == []
    assert _rows(store) == _rebuilt(store)

    store.append(fast)  # stored already: each takes a number it never uses
    store.append(_run("after", steps=1))
    assert store.catch_up() == 5
    assert len(_cursor(store)[1]) == len(fast)
    monkeypatch.setattr(catchup, "SETTLE_S", 0.0)
    # Settled once every transaction running on the server when they were seen has ended: the suite's other
    # processes share the server, and one of theirs may still run (the CI run at c0380dc caught one).
    deadline = time.monotonic() + 60
    while _cursor(store)[1] and time.monotonic() < deadline:
        assert store.catch_up() == 0
        time.sleep(0.1)
    assert _cursor(store)[1] == [], f"no transaction that could store them runs: settled; {_oldest(store)}"


def _oldest(store) -> str:
    """The server's oldest transaction still running: what holds a gap back."""
    with store.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT pid, datname, state, now() - xact_start, left(query, 200) FROM pg_stat_activity "
                "WHERE (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL) AND pid <> pg_backend_pid() "
                "ORDER BY xact_start LIMIT 1"
            )
        ).first()
    return f"oldest transaction: {tuple(row) if row else None}"


def test_a_row_no_projection_can_read_is_passed_over(store):
    """A row written by hand with a type Baton does not know or a payload that is no JSON object (on SQLite no
    JSON at all) is left out of the projection (the replay reports it), and the catch-up goes on past it."""
    first = _run("r1", steps=1)
    store.append(first)
    odd = [("made.up", "{}"), ("step.started", "[1, 2]"), ("step.failed", json.dumps("x" * 100_000))]
    if store.engine.dialect.name == "sqlite":  # PostgreSQL refuses it
        odd.append(("step.succeeded", "{not json"))
    payload = "CAST(:payload AS jsonb)" if store.engine.dialect.name == "postgresql" else ":payload"
    with store.engine.begin() as conn:
        for kind, text_ in odd:
            conn.execute(
                text(
                    "INSERT INTO baton_events (run_id, workflow, map_index, try_number, type, payload, ts, "
                    f"idempotency_key) VALUES ('r1', 'w', -1, 1, :kind, {payload}, :ts, :key)"
                ),
                {"kind": kind, "payload": text_, "ts": NOW, "key": f"hand|{kind}"},
            )
    last = _run("r2", steps=1)
    store.append(last)
    assert store.catch_up() == len(first) + len(odd) + len(last)
    assert [r[0] for r in _rows(store)["baton_run_summary"]] == ["r1", "r2"]


def test_a_rebuild_sets_the_cursor_and_later_events_are_caught_up(store):
    store.append(_run("r1"))
    store.catch_up()
    expected = _rows(store)
    with store.engine.begin() as conn:
        for table in summaries.TABLES:
            conn.execute(table.delete())
    assert rebuild(store) == 1
    assert _rows(store) == expected and _cursor(store) == (_newest(store), [])
    assert store.catch_up() == 0, "the rebuild folded them: not applied twice"
    store.append(_run("r2"))
    assert store.catch_up() == 11
    assert _rows(store) == _rebuilt(store)


def test_every_page_reads_an_event_appended_just_before_it(store):
    """runs.page, analytics.report and agents.board read the projection, gantt.chart the events: each shows
    an event appended just before it, no catch-up run by the test."""
    store.append(_run("r1", agent="scorer"))
    assert [r["state"] for r in runs.page(store)["runs"]] == ["success"]
    common = {"run_id": "r2", "workflow": "lead_scoring", "ts": datetime.now(UTC)}
    store.append([Event(type="run.started", **common)])
    assert [(r["run_id"], r["state"]) for r in runs.page(store)["runs"]] == [
        ("r2", "running"),
        ("r1", "success"),
    ]
    assert analytics.report(store, 1)["runs"] == 2
    assert gantt.chart(store, "r2")["run_id"] == "r2"
    chosen = {"agent": "newcomer", "candidates": ["newcomer"], "reason": "named"}
    step = {**common, "step": "s0", "try_number": 1, "agent": "newcomer"}
    store.append([Event(type="agent.selected", payload=chosen, **step)])
    assert "newcomer" in [a["agent"] for a in agents.board(store)["agents"]]
    store.append([Event(type="step.succeeded", payload={"duration_s": 2.0}, **step)])
    (newcomer,) = [a for a in agents.board(store)["agents"] if a["agent"] == "newcomer"]
    assert newcomer["calls_1h"] == 1
    assert analytics.report(store, 1)["runs"] == 2
