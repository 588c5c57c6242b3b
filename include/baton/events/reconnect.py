"""A store write that meets a lost database (PostgreSQL restarting for a minor upgrade, a failover, a cut
network) is tried again, with bounded backoff, until the database answers or ``WAIT_S`` has passed; then the
error is raised as it was, and the task's own retries take over.

Only work that is safe to run twice is retried here: an append (idempotent by its key: an append whose
COMMIT reached the server but whose answer was lost stores nothing the second time) and a catch-up (one
transaction that moves its cursor with its rows). Anything else lost with its connection (a reservation,
a slot) is held under a lease that expires, so a write lost mid-way is taken over, not leaked.

A lost connection is told apart from a refused statement by what the driver says: SQLAlchemy marked the
connection invalidated, or PostgreSQL's SQLSTATE is a connection exception (class 08) or a shutdown
(57P01 admin, 57P02 crash, 57P03 not yet accepting connections), or the driver could not connect at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a write waits for the database to come back (a fast restart takes seconds; a failover ~30 s).
WAIT_S = 60.0
FIRST_DELAY_S = 0.2
MAX_DELAY_S = 5.0
_SHUTDOWN = ("57P01", "57P02", "57P03")


def lost(error: BaseException) -> bool:
    """Whether ``error`` says the connection to the database was lost or could not be made."""
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    state = getattr(error.orig, "sqlstate", None) or ""
    if state.startswith("08") or state in _SHUTDOWN:
        return True
    # psycopg's failure to connect (refused, reset) carries no SQLSTATE; a refused statement always has one
    return (
        type(error.orig).__name__ == "OperationalError"
        and not state
        and "sqlite" not in type(error.orig).__module__
    )


def retrying(work: Callable[[], T], what: str, wait_s: float | None = None) -> T:
    """``work()``, run again after each lost connection (``lost``) until it succeeds or ``wait_s`` (default
    ``WAIT_S``) has passed since the first loss; each wait logged with what was lost and the next try."""
    deadline, delay = None, FIRST_DELAY_S
    while True:
        try:
            return work()
        except DBAPIError as error:
            if not lost(error):
                raise
            now = time.monotonic()
            deadline = deadline if deadline is not None else now + (WAIT_S if wait_s is None else wait_s)
            if now >= deadline:
                log.error("%s: the store's database is still unreachable; giving up: %s", what, _short(error))
                raise
            log.warning(
                "%s: the store's database connection was lost (%s); trying again in %.1f s",
                what,
                _short(error),
                delay,
            )
            time.sleep(min(delay, max(deadline - now, 0.0)))
            delay = min(delay * 2, MAX_DELAY_S)


def _short(error: DBAPIError) -> str:
    """The driver's first line: never the statement or its parameters (they may hold a payload)."""
    return str(error.orig).strip().splitlines()[0][:200] if error.orig is not None else type(error).__name__
