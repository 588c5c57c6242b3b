"""The database session every sensor query runs in: read-only, each statement bounded by the sensor's
``statement_timeout``, and cancellable from another thread (the triggerer's event loop, when it drops
the trigger while a query runs).

- PostgreSQL: ``SET TRANSACTION READ ONLY`` and ``SET LOCAL statement_timeout`` open the transaction
  (neither outlives it); a cancel is psycopg's ``cancel_safe()``.
- SQLite: ``PRAGMA query_only = ON`` and a progress handler that interrupts a statement past its
  deadline, on a connection of its own (no pool: nothing carries over); a cancel is
  ``Connection.interrupt()``.

A query stopped by its timeout, or refused because it writes, raises :class:`SensorQueryError` with
a message that says which and how to fix it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from functools import cache
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from baton.errors import SensorQueryError
from baton.events.engine import engine_for

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
CANCELLED = "the query was cancelled: the triggerer dropped the sensor's trigger"
_SQLITE_READONLY = 8  # SQLITE_READONLY, the primary result code of a write under query_only
_PG_READONLY = "25006"  # read_only_sql_transaction
_PG_CANCELED = "57014"  # query_canceled: the statement timeout, or a cancel request
_PROGRESS_STEPS = 10_000  # SQLite VM instructions between two looks at the clock (well under 1 ms)


def timeout_of(spec: dict[str, Any]) -> float:
    """The sensor's ``statement_timeout`` in seconds (a spec compiled before it existed: the default)."""
    return float(spec.get("statement_timeout") or DEFAULT_TIMEOUT)


class QueryHandle:
    """The connection of one look while it is open, so that another thread can cancel its query.

    The lock makes a cancel and the end of the look exclusive: a cancel never reaches a connection
    that went back to the pool and runs someone else's query."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._raw: Any = None
        self._dialect = ""
        self.cancelled = False
        self.deadline = float("inf")  # SQLite: when the running statement is interrupted
        self.timed_out = False

    def attach(self, raw: Any, dialect: str) -> None:
        with self._lock:
            if self.cancelled:
                raise SensorQueryError(CANCELLED)
            self._raw, self._dialect = raw, dialect

    def detach(self) -> None:
        with self._lock:
            self._raw = None

    def cancel(self) -> None:
        """Stop the running query on the database (PostgreSQL's cancel request waits up to 5 s for the
        server; run it off the event loop)."""
        with self._lock:
            self.cancelled = True
            if self._raw is None:
                return
            try:
                if self._dialect == "sqlite":
                    self._raw.interrupt()
                else:
                    self._raw.cancel_safe(timeout=5.0)
            except Exception as error:  # the statement timeout still ends it
                log.warning("Could not cancel a sensor's query on the database: %s", error)

    def cancel_in_background(self) -> threading.Thread:
        """:meth:`cancel` in a thread of its own: callable from the event loop, which it never blocks."""
        thread = threading.Thread(target=self.cancel, name="baton-sensor-cancel", daemon=True)
        thread.start()
        return thread

    def _progress(self) -> int:
        """SQLite's progress handler: non-zero interrupts the statement."""
        if self.cancelled:
            return 1
        if time.monotonic() >= self.deadline:
            self.timed_out = True
            return 1
        return 0


@contextlib.contextmanager
def read_only(url: str, timeout: float, kind: str, handle: QueryHandle | None = None) -> Iterator[Connection]:
    """A connection to the business database at ``url`` that cannot write and whose every statement
    stops after ``timeout`` seconds; ``kind`` (new_rows, ...) names the sensor's key in the fixes."""
    handle = handle or QueryHandle()
    engine = _engine(url)
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            raw.execute("PRAGMA query_only = ON")
            conn.info["baton_sensor"] = (handle, timeout)
            raw.set_progress_handler(handle._progress, _PROGRESS_STEPS)
        else:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, round(timeout * 1000))}")
        handle.attach(raw, engine.dialect.name)
        try:
            yield conn
        except DBAPIError as error:
            if (explained := _explained(error, handle, timeout, kind)) is None:
                raise
            raise explained from None
        finally:
            handle.detach()
            if handle.cancelled:
                conn.invalidate()  # a cancel request may still be in flight: never reuse this session


def _explained(error: DBAPIError, handle: QueryHandle, timeout: float, kind: str) -> Exception | None:
    """The error a user can act on, for a statement the session stopped (None: another failure)."""
    orig = error.orig
    code = getattr(orig, "sqlstate", None)
    if handle.cancelled:
        return SensorQueryError(CANCELLED)
    if handle.timed_out or (code == _PG_CANCELED and "statement timeout" in str(orig)):
        return SensorQueryError(
            f"the query ran longer than its statement_timeout of {timeout:g} s and the database stopped it "
            f"(fix: raise trigger.sensor.{kind}.statement_timeout (at most 10m), or make the query cheaper)"
        )
    if code == _PG_READONLY or (getattr(orig, "sqlite_errorcode", 0) & 0xFF) == _SQLITE_READONLY:
        return SensorQueryError(
            f"the query tried to write ({str(orig).strip().splitlines()[0]}), and a sensor's session is "
            "read-only (fix: make the query a SELECT that only reads; the workflow's steps change data)"
        )
    return None


@cache
def _engine(url: str) -> Engine:
    """PostgreSQL: Baton's pooled engine for the URL. SQLite: an engine of the sensors' own, without
    the store's ``BEGIN IMMEDIATE`` (a write lock, refused under query_only) and without a pool."""
    if not url.startswith("sqlite"):
        return engine_for(url)
    engine = create_engine(url, poolclass=NullPool)

    @event.listens_for(engine, "before_cursor_execute")
    def _arm(conn, _cursor, _statement, _params, _context, _executemany):
        if (armed := conn.info.get("baton_sensor")) is not None:
            handle, timeout = armed
            handle.deadline = time.monotonic() + timeout  # each statement has the whole timeout

    return engine
