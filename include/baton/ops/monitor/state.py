"""The monitor's state in Baton's store (``baton_monitor_state``): small JSON documents by name, such as the
signals' cursor, the incident book, the watched schedules, and what a runbook action must give back at
resolution (a pause, a cap). Read with a lock for a write transaction, so two ticks, or a tick and a
person's acknowledgement, never overwrite each other."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from baton.events import schema


def load_state(conn: Connection, name: str, lock: bool = False) -> Any:
    """The monitor's state ``name`` (None when never saved); with ``lock``, held for ``conn``'s write
    transaction (SQLite's ``BEGIN IMMEDIATE`` holds the database already). On PostgreSQL a transaction
    advisory lock on the name, not only ``FOR UPDATE``: a state never saved has no row to lock, and two
    first writers (two first folds, two ticks starting the same watch) would each go on."""
    m = schema.monitor_state.c
    query = select(m.value).where(m.name == name)
    if lock and conn.dialect.name == "postgresql":
        key = int.from_bytes(
            hashlib.sha256(f"baton_monitor_state|{name}".encode()).digest()[:8], "big", signed=True
        )
        conn.execute(select(func.pg_advisory_xact_lock(key)))
        query = query.with_for_update()
    return conn.scalar(query)


def save_state(conn: Connection, name: str, value: Any, now: datetime) -> None:
    """Save the monitor's state ``name`` (inserted, or replacing what was saved), in ``conn``'s transaction."""
    insert = schema.insert_for(conn.dialect.name)(schema.monitor_state).values(
        name=name, value=value, updated_at=now
    )
    conn.execute(
        insert.on_conflict_do_update(index_elements=["name"], set_={"value": value, "updated_at": now})
    )
