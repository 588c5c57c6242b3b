"""The store fixture: every events test runs on SQLite and on the PostgreSQL at 127.0.0.1:5432."""

from __future__ import annotations

import os
import secrets

import pytest
from sqlalchemy import create_engine, delete, text

from baton.events import schema
from baton.events.migrations import upgrade
from baton.events.store import EventStore

PG_SERVER = os.environ.get("BATON_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_url():
    """A throwaway PostgreSQL database for this test session, dropped at its end."""
    admin = create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    name = f"baton_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # say what is missing instead of skipping: these tests must run
        pytest.fail(f"PostgreSQL at {PG_SERVER} is needed (scripts/test.sh starts it): {error}")
    url = PG_SERVER.rsplit("/", 1)[0] + f"/{name}"
    engine = create_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> EventStore:
    """An empty, migrated store on each backend."""
    from baton.events.store import engine_for

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
        upgrade(engine_for(url))
        return EventStore(engine_for(url))
    url = request.getfixturevalue("pg_url")
    engine = engine_for(url)
    with engine.begin() as conn:
        for table in (schema.events, schema.workflow_executions, schema.blobs):
            conn.execute(delete(table))
    return EventStore(engine)
