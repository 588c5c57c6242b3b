"""A stored event's row: the SELECT of its columns and the ``Event`` it holds (or the ``CorruptEvent`` a replay
reports). One reading for the log's reads and the projection's catch-up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Select, Text, cast, select
from sqlalchemy.exc import DBAPIError

from baton.events import schema
from baton.events.decode import loads
from baton.events.event import CorruptEvent, Event
from baton.events.types import EVENT_TYPES


def select_events() -> Any:
    """SELECT of the columns ``from_row`` reads, in its order."""
    e = schema.events.c
    return select(
        e.seq,
        e.run_id,
        e.workflow,
        e.template_version,
        e.step,
        e.map_index,
        e.try_number,
        e.agent,
        e.type,
        cast(e.payload, Text),
        e.ts,
        e.idempotency_key,
    )


CHUNK = 5000  # rows a read holds at once: a long run's events never sit in memory together
CHUNKED_LIBPQ = 170000  # libpq 17: a result sent in chunks of rows (psycopg's stream(size=...))


def rows_of(conn: Connection, query: Select) -> Iterator[Any]:
    """The rows of ``query`` in its order, ``CHUNK`` at a time.

    On PostgreSQL through psycopg (libpq 17 or later) one query streams them: the server sends the rows as it
    produces them while this process reads the ones it has, so the server's work and the reader's overlap.
    A replay of 100,000 events took 0.80 s instead of 1.47-1.80 through SQLAlchemy's server-side cursor
    (20 FETCHes, each waiting for the server, the server waiting between them), on an idle machine. psycopg
    cancels the query and drains it when the reader stops early. Elsewhere (SQLite, another driver),
    SQLAlchemy's ``yield_per`` partitions."""
    dialect = conn.dialect
    if dialect.driver == "psycopg" and dialect.loaded_dbapi.pq.version() >= CHUNKED_LIBPQ:
        compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        statement, params = str(compiled), compiled.params
        with (
            conn.connection.dbapi_connection.cursor() as cursor,
            as_sqlalchemy_raises(conn, statement, params),
        ):
            yield from cursor.stream(statement, params, size=CHUNK)
        return
    for rows in conn.execution_options(yield_per=CHUNK).execute(query).partitions():
        yield from rows


@contextmanager
def as_sqlalchemy_raises(conn: Connection, statement: str, params: Any) -> Iterator[None]:
    """A query sent by the driver's own cursor fails as SQLAlchemy's execute fails: its driver's error raised
    as SQLAlchemy's (``OperationalError``, ``ProgrammingError``, ... through ``DBAPIError.instance``), and a
    connection the error says is lost invalidated, so that the pool drops it."""
    dialect = conn.dialect
    try:
        yield
    except dialect.loaded_dbapi.Error as error:
        lost = dialect.is_disconnect(error, conn.connection.dbapi_connection, None)
        if lost:
            conn.invalidate()
        raise DBAPIError.instance(
            statement, params, error, dialect.loaded_dbapi.Error, dialect=dialect, connection_invalidated=lost
        ) from error


def from_row(row: Any, validate: bool = True) -> Event | CorruptEvent:
    """The event of a row of ``select_events``; a ``CorruptEvent`` for an unknown type, a payload that is not
    JSON or (``validate``) does not fit its type's model. Without ``validate`` (the catch-up: a projection reads
    what it knows of a payload) a payload need only be a JSON object."""
    seq, run_id, workflow, version, step, map_index, try_number, agent, kind, payload, ts, key = row
    try:
        data = loads(payload)
        model = EVENT_TYPES.get(kind)
        if model is None:
            return CorruptEvent(seq, kind, "unknown event type")
        if validate:
            # model_validate's own work, without its Python wrapper (a replay validates 100,000)
            model.__pydantic_validator__.validate_python(data)
        elif not isinstance(data, dict):
            return CorruptEvent(seq, kind, "payload is not a JSON object")
    except RecursionError:
        return CorruptEvent(seq, kind, "payload is nested too deeply")
    except ValueError as error:  # json.JSONDecodeError and pydantic.ValidationError are ValueErrors
        problem = (
            f"payload does not fit: {error.errors()[0]['loc']}: {error.errors()[0]['msg']}"
            if isinstance(error, ValidationError)
            else f"payload is not JSON: {error}"
        )
        return CorruptEvent(seq, kind, problem)
    return Event.stored(
        kind, run_id, workflow, data, step, map_index, try_number, agent, version, ts, seq, key
    )
