"""Baton's event store, opened: the append-only log (``baton.events.log``) on the Airflow connection
``baton_store``, with Baton's projections (``baton.events.projections.PROJECTIONS``) handed to it.

SQLite (a file in the Airflow home) by default, PostgreSQL in production. An event carries an
idempotency key; appending it twice (a retry after a crash, the listener and the operator both)
stores it once. The projections are caught up from the log by their readers (``EventLog.catch_up``).
"""

from __future__ import annotations

from sqlalchemy import Engine

from baton.events.engine import STORE_CONN_ID, connection_url, engine_for, store_url, url_of
from baton.events.log import EventLog
from baton.events.projections import PROJECTIONS

# the engine's names were defined here before events/engine.py: their old home still answers for them
__all__ = ["STORE_CONN_ID", "EventStore", "connection_url", "engine_for", "store_url", "url_of"]


class EventStore(EventLog):
    """The event log with Baton's projections, caught up from it by their readers."""

    def __init__(self, engine: Engine):
        super().__init__(engine, PROJECTIONS)

    @classmethod
    def from_airflow(cls, conn_id: str = STORE_CONN_ID) -> EventStore:
        return cls(engine_for(store_url(conn_id)))
