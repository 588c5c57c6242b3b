"""The group commit that batches a fan-out's store writes: many coroutines' writes in one transaction.

A fan-out of 16 calls at once makes 32 slot writes per round; one transaction each, on SQLite, serialises
them on the calls' critical path. A group transaction runs its writes one after the other with no
savepoint and their events in one INSERT at its end (``EventLog.deferred``); when one of them fails (or
that INSERT), the transaction is rolled back and the group goes again as it used to, a savepoint per write
and its events with it, so that the failing one fails alone (a savepoint is two statements more per write,
and a write seldom fails).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from baton.events.store import EventStore

DEADLOCK_RETRIES = 5


class _WriteFailed(Exception):
    """A write of a group transaction without savepoints failed: the group goes again with them."""


class GroupCommit:
    """Store writes of many coroutines, committed together: while one transaction runs (in a
    thread), the writes asked for meanwhile queue up and go in the next one. A write that fails (a
    slot taken by another process) fails alone; the others commit."""

    def __init__(self, store: EventStore):
        self.store = store
        self.pending: list[tuple[Any, asyncio.Future]] = []
        self.flushing: asyncio.Task | None = None

    async def run(self, write: Any) -> Any:
        """Run ``write(conn)`` in the next group transaction; its result (or its exception). An
        IntegrityError it raises (a race for a unique row lost) comes back as None."""
        future = asyncio.get_running_loop().create_future()
        self.pending.append((write, future))
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.ensure_future(self._flush())
        return await future

    async def _flush(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            try:
                outcomes = await asyncio.to_thread(self._commit, [write for write, _ in batch])
            except Exception as error:  # the transaction itself failed: every write in it did
                outcomes = [error] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _commit(self, writes: list[Any]) -> list[Any]:
        """The group transaction; one PostgreSQL chose to break a deadlock with (two runs' fan-outs taking
        the same agent's slots in other orders) goes again whole: none of its writes was applied."""
        for attempt in range(1, DEADLOCK_RETRIES + 1):
            try:
                try:
                    return self._commit_once(writes, savepoints=False)
                except _WriteFailed:
                    return self._commit_once(writes, savepoints=True)
            except DBAPIError as error:
                if not _deadlock(error) or attempt == DEADLOCK_RETRIES:
                    raise
                time.sleep(random.uniform(0.01, 0.05) * attempt)
        raise AssertionError("unreachable")

    def _commit_once(self, writes: list[Any], savepoints: bool) -> list[Any]:
        with self.store.engine.begin() as conn:
            if savepoints:
                return [_in_savepoint(conn, write) for write in writes]
            try:
                with self.store.deferred(conn):
                    return [write(conn) for write in writes]
            except Exception as error:
                if _deadlock(error):
                    raise  # the whole transaction goes again
                raise _WriteFailed from error


def _in_savepoint(conn: Connection, write: Any) -> Any:
    """``write(conn)`` (its events appended as it asks) in a savepoint: its outcome, None for a lost race,
    or its exception."""
    try:
        with conn.begin_nested():
            return write(conn)
    except Exception as error:
        if _deadlock(error):
            raise  # the whole transaction goes again
        return None if isinstance(error, IntegrityError) else error


def _deadlock(error: BaseException) -> bool:
    """A PostgreSQL deadlock or serialization failure: retrying the transaction is the remedy."""
    return getattr(getattr(error, "orig", None), "sqlstate", None) in ("40P01", "40001")
