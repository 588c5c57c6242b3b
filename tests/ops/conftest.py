"""The monitor's tests share one fixture: a store (SQLite, then PostgreSQL) with no monitor state left."""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from baton.events import schema


@pytest.fixture
def clean(store):
    """The store, its events, signal buckets, monitor state and agent health emptied (a PostgreSQL store
    is shared by the tests of a worker)."""
    with store.engine.begin() as conn:
        for table in (schema.events, schema.signal_buckets, schema.monitor_state, schema.agent_health):
            conn.execute(delete(table))
    return store
