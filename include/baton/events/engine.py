"""Where Baton's databases are and how they are opened: the store's URL (the Airflow connection
``baton_store``, else SQLite in the Airflow home), any sqlite or postgres connection's URL, and one engine
per URL and process. A leaf of the events package: the business hooks, the sensors' trigger and the store
open databases through it, and importing it loads neither the event catalogue nor the store."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL

from baton.events.decode import loads

STORE_CONN_ID = "baton_store"


def store_url(conn_id: str = STORE_CONN_ID) -> str:
    """The SQLAlchemy URL of the store: the Airflow connection, or SQLite in the Airflow home."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return connection_url(conn_id)
    except AirflowNotFoundException:
        home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
        return f"sqlite:///{home / 'baton_store.db'}"


def connection_url(conn_id: str) -> str:
    """The SQLAlchemy URL of an Airflow connection of type sqlite or postgres (raises
    ``AirflowNotFoundException`` when it is not defined)."""
    from airflow.sdk import BaseHook

    return url_of(BaseHook.get_connection(conn_id), conn_id)


def url_of(conn: Any, conn_id: str) -> str:
    """The SQLAlchemy URL of an ``airflow.sdk.Connection`` of type sqlite or postgres (else ValueError)."""
    if conn.conn_type == "sqlite":
        return f"sqlite:///{conn.schema or conn.host}"
    if conn.conn_type in ("postgres", "postgresql"):
        url = URL.create(
            "postgresql+psycopg", conn.login, conn.password or None, conn.host, conn.port, conn.schema
        )
        return url.render_as_string(False)
    raise ValueError(
        f"connection '{conn_id}' has type '{conn.conn_type}'; Baton reads sqlite or postgres connections"
    )


def _sqlite_setup(engine: Engine) -> None:
    """WAL, a busy timeout, and BEGIN IMMEDIATE: many task processes append to one file."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@cache
def engine_for(url: str) -> Engine:
    """One engine per URL and process; its JSON columns are read with ``decode.loads``."""
    if url.startswith("sqlite"):
        engine = create_engine(url, json_deserializer=loads)
        _sqlite_setup(engine)
        return engine
    return create_engine(url, json_deserializer=loads, pool_pre_ping=True, pool_size=2, max_overflow=4)
