"""The business databases Baton reads or writes for a workflow (the sensors' tables, a ledger): an
Airflow connection of type sqlite or postgres, resolved to a SQLAlchemy URL and an engine."""

from __future__ import annotations

from sqlalchemy import Engine

from baton.errors import ConnectionNotDefined
from baton.events.engine import connection_url, engine_for


def database_url(conn_id: str, what: str) -> str:
    """The SQLAlchemy URL of the database of connection ``conn_id`` (``what``: "the business database").
    One that is not defined raises :class:`baton.errors.ConnectionNotDefined`, which says how to define it,
    the same wherever it is needed (a sensor, a skill, the demo's script)."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return connection_url(conn_id)
    except AirflowNotFoundException:
        raise ConnectionNotDefined(conn_id, what) from None


def database(conn_id: str, what: str) -> Engine:
    """One engine per database and process, for :func:`database_url`."""
    return engine_for(database_url(conn_id, what))
