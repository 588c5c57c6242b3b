"""The dashboard's tests: the store (SQLite, then PostgreSQL) with the dashboard's tables emptied too (a
PostgreSQL store is shared by the tests of a worker, and tests/conftest.py's ``store`` empties the tables
it knew of)."""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from baton.events import summaries, summary_writes


@pytest.fixture
def store(store):
    with store.engine.begin() as conn:
        for table in summaries.TABLES:
            conn.execute(delete(table))
    summary_writes.forget_seen()
    return store
