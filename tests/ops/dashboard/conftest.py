"""The dashboard's tests: the store (SQLite, then PostgreSQL) with the dashboard's tables emptied too (a
PostgreSQL store is shared by the tests of a worker, and tests/conftest.py's ``store`` empties the tables
it knew of)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete

from baton.events import summaries, summary_writes
from baton.plugin import dashboard_api
from baton.plugin.api import app


@pytest.fixture
def store(store):
    with store.engine.begin() as conn:
        for table in summaries.TABLES:
            conn.execute(delete(table))
    summary_writes.forget_seen()
    return store


@pytest.fixture
def reads(store):
    """A client whose requests read ``store``, as a user who may read DAG runs (the check overridden)."""
    app.dependency_overrides[dashboard_api.event_store] = lambda: store
    app.dependency_overrides[dashboard_api.READ_RUNS] = lambda: None
    try:
        yield TestClient(app)
    finally:
        app.dependency_overrides.pop(dashboard_api.event_store, None)
        app.dependency_overrides.pop(dashboard_api.READ_RUNS, None)
