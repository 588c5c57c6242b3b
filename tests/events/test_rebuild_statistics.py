"""The pages' projection rebuilt after a bulk load (a COPY, a restore) on PostgreSQL, where the planner has no
statistics of the events yet: the rebuild gives it them first (``baton.events.summaries.rebuild_in``), and the
reads of the ended runs' events go by their run whatever the statistics say (``summary_writes._of_runs``).
Without either, each batch read every event of a type in the store through the (agent, type) index, and the
rebuild grew with the square of the store."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from baton.events import summary_writes
from baton.events.migrations import upgrade
from baton.events.projections import rebuild
from baton.events.store import EventStore, engine_for
from tests.conftest import pg_database
from tests.events.test_catchup import _run

ESTIMATE = "SELECT reltuples FROM pg_class WHERE oid = 'baton_events'::regclass"


@pytest.fixture
def fresh():
    """A new store on PostgreSQL whose events only a command can analyze (autovacuum off)."""
    with pg_database("baton_rebuild_stats") as url:
        engine = engine_for(url)
        try:
            upgrade(engine)
            with engine.begin() as conn:
                conn.execute(text("ALTER TABLE baton_events SET (autovacuum_enabled = false)"))
            yield EventStore(engine)
        finally:
            engine.dispose()


def test_a_rebuild_after_a_bulk_load_gives_the_planner_the_events_statistics(fresh):
    fresh.append(_run("r1") + _run("r2"))
    with fresh.engine.connect() as conn:
        assert conn.scalar(text(ESTIMATE)) <= 0, "none or empty: the table was filled since"
    assert rebuild(fresh) == 2
    with fresh.engine.connect() as conn:
        assert conn.scalar(text(ESTIMATE)) == 22, "the rebuild analyzed the 22 events"


def test_the_ended_runs_events_are_read_by_their_run_not_by_their_type(fresh):
    """Before: 200 runs without statistics were enough for the planner to take the (agent, type) index."""
    for first in range(0, 200, 50):
        fresh.append([event for i in range(first, first + 50) for event in _run(f"r{i}")])
    ids = [f"r{i}" for i in range(10, 30)]
    with fresh.engine.connect() as conn:
        for query in (summary_writes._agents_and_outputs(), summary_writes._closing("postgresql")[0]):
            sql = query.params(ids=ids).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}".replace("%", "%%")))
            assert "ix_baton_events_agent_type" not in plan, plan
            assert "of_runs" in plan, plan  # the runs' events read once, by the run alone
