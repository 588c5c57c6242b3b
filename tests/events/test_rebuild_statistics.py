"""A rebuild of the pages' projection after a bulk load (a COPY, a restore) on PostgreSQL: the planner is
given the events' statistics first, without which it read each batch's ended runs through the (agent, type)
index, every event of a type for each batch (``baton.events.summaries.rebuild_in``)."""

from __future__ import annotations

from sqlalchemy import text

from baton.events.migrations import upgrade
from baton.events.projections import rebuild
from baton.events.store import EventStore, engine_for
from tests.conftest import pg_database
from tests.events.test_catchup import _run

ESTIMATE = "SELECT reltuples FROM pg_class WHERE oid = 'baton_events'::regclass"


def test_a_rebuild_after_a_bulk_load_gives_the_planner_the_events_statistics():
    with pg_database("baton_rebuild_stats") as url:
        engine = engine_for(url)
        try:
            upgrade(engine)
            with engine.begin() as conn:  # no autovacuum: only the rebuild can analyze the table here
                conn.execute(text("ALTER TABLE baton_events SET (autovacuum_enabled = false)"))
            store = EventStore(engine)
            store.append(_run("r1") + _run("r2"))
            with engine.connect() as conn:
                assert conn.scalar(text(ESTIMATE)) <= 0, "none or empty: the table was filled since"
            assert rebuild(store) == 2
            with engine.connect() as conn:
                assert conn.scalar(text(ESTIMATE)) == 22, "the rebuild analyzed the 22 events"
        finally:
            engine.dispose()
