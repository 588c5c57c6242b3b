"""Load and health in Baton's store, shared by every run and worker: each agent call holds one of its
agent's ``max_concurrency`` slots (a row per slot: two callers cannot take one), each agent's circuit
breaker (failures in a row, open until when), and the group commit that batches a fan-out's writes."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from baton.errors import AgentError
from baton.events import schema
from baton.events.event import Event
from baton.events.store import EventStore
from baton.spec.roster import Agent

HALF_OPEN = 1000  # failures in a row of a half-open circuit: CircuitBreaker's highest threshold, so that the
# next failure opens it whatever the agent's own (the row cannot hold the agent's threshold: runbooks
# half-open circuits by name)
TRIAL_CLAIMED = HALF_OPEN + 1  # ... and a call has claimed its trial (routing prefers it no more)


def _now() -> datetime:
    return datetime.now(UTC)


def _waited(events: Sequence[Event], since: float | None) -> Sequence[Event]:
    """``events`` with the seconds waited since ``since`` (``time.monotonic()``) in their
    ``agent.selected`` (``queue_wait_s``); unchanged when ``since`` is None."""
    if since is None:
        return events
    wait = round(max(0.0, time.monotonic() - since), 3)
    return [
        replace(e, payload={**e.payload, "queue_wait_s": wait}) if e.type == "agent.selected" else e
        for e in events
    ]


class Slots:
    """The running agent calls, one row per taken slot."""

    def __init__(self, store: EventStore):
        self.store = store

    def load(self, agents: Iterable[str], conn: Connection | None = None) -> dict[str, int]:
        """Slots held now (not expired) per agent; in ``conn``'s transaction when given (so that the
        slots it took a moment ago count)."""
        names = list(agents)
        s = schema.agent_slots.c
        query = select(s.agent, s.expires_at).where(s.agent.in_(names))
        if conn is not None:
            rows = conn.execute(query).all()
        else:
            with self.store.engine.connect() as own:
                rows = own.execute(query).all()
        now = _now()
        counts = dict.fromkeys(names, 0)
        for agent, expires in rows:
            if expires > now:
                counts[agent] += 1
        return counts

    def limits(self, agents: Iterable[Agent], conn: Connection | None = None) -> dict[str, int]:
        """Each agent's slots now: its ``max_concurrency``, or fewer while an incident's runbook caps it
        (read in ``conn``'s transaction when given, as :meth:`load`)."""
        agents = list(agents)
        h = schema.agent_health.c
        query = select(h.agent, h.concurrency_cap).where(
            h.agent.in_([a.name for a in agents]), h.concurrency_cap.is_not(None)
        )
        if conn is not None:
            caps = dict(conn.execute(query).all())
        else:
            with self.store.engine.connect() as own:
                caps = dict(own.execute(query).all())
        return {a.name: min(a.max_concurrency, caps.get(a.name) or a.max_concurrency) for a in agents}

    def acquire(
        self,
        agent: Agent,
        holder: str,
        ttl: timedelta,
        events: Sequence[Event] = (),
        since: float | None = None,
    ) -> int | None:
        """Take a free slot of ``agent`` and store ``events`` in the same transaction; the slot number,
        or None when all ``max_concurrency`` slots are taken (then no event is stored).

        :param since: when the caller began waiting for a slot (``time.monotonic()``): the wait is
            stored in the ``agent.selected`` event among ``events`` (``queue_wait_s``, the monitor's
            ``queue_wait``)."""
        for _ in range(agent.max_concurrency + 1):
            try:
                with self.store.engine.begin() as conn:
                    return self.acquire_in(conn, agent, holder, ttl, events, since)
            except IntegrityError:
                continue  # another caller took that slot between our read and our insert: read again
        return None

    def acquire_in(
        self,
        conn: Connection,
        agent: Agent,
        holder: str,
        ttl: timedelta,
        events: Sequence[Event] = (),
        since: float | None = None,
    ) -> int | None:
        """``acquire`` inside the caller's transaction (raises IntegrityError when it lost a race)."""
        s = schema.agent_slots.c
        now = _now()
        conn.execute(delete(schema.agent_slots).where(s.agent == agent.name, s.expires_at <= now))
        taken = set(conn.scalars(select(s.slot).where(s.agent == agent.name)))
        # a lowered cap leaves the slots above it to drain: a new call only while fewer are held than it
        if len(taken) >= self.limits([agent], conn)[agent.name]:
            return None
        free = next(n for n in range(agent.max_concurrency) if n not in taken)
        conn.execute(
            schema.agent_slots.insert().values(
                agent=agent.name,
                slot=free,
                holder=f"{holder} pid {os.getpid()}@{socket.gethostname()}"[:250],
                acquired_at=now,
                expires_at=now + ttl,
            )
        )
        self.store.append_in(conn, _waited(events, since))
        return free

    def take(self, agent: Agent, holder: str, ttl: timedelta, events: Sequence[Event] = ()) -> int:
        """``acquire``, waiting while every slot is taken (the step's execution_timeout bounds the wait)."""
        delay, since = 0.02, time.monotonic()
        while (slot := self.acquire(agent, holder, ttl, events, since)) is None:
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        return slot

    async def atake(
        self, agent: Agent, holder: str, ttl: timedelta, events: Sequence[Event], writes: GroupCommit
    ) -> int:
        """Take one of ``agent``'s slots from a coroutine, in ``writes``' next transaction; the wait for
        a free slot does not block the loop."""
        delay, since = 0.01, time.monotonic()
        while (
            slot := await writes.run(lambda conn: self.acquire_in(conn, agent, holder, ttl, events, since))
        ) is None:
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)
        return slot

    def release(self, agent: str, slot: int, events: Sequence[Event] = ()) -> None:
        """Free the slot, storing ``events`` (the call's outcome) in the same transaction."""
        with self.store.engine.begin() as conn:
            self.release_in(conn, agent, slot, events)

    def release_in(self, conn: Connection, agent: str, slot: int, events: Sequence[Event] = ()) -> None:
        s = schema.agent_slots.c
        conn.execute(delete(schema.agent_slots).where(s.agent == agent, s.slot == slot))
        self.store.append_in(conn, events)


class Breakers:
    """Each agent's circuit breaker: failures in a row, and until when it is open."""

    def __init__(self, store: EventStore):
        self.store = store

    def open_until(self, agents: Iterable[str], conn: Connection | None = None) -> dict[str, datetime]:
        """The agents whose breaker is open now, and until when (read in ``conn``'s transaction when given:
        on SQLite every connection's transaction takes the write lock, so a second one would wait for it)."""
        h = schema.agent_health.c
        now = _now()
        query = select(h.agent, h.opened_until).where(h.agent.in_(list(agents)), h.opened_until.is_not(None))
        if conn is not None:
            rows = conn.execute(query).all()
        else:
            with self.store.engine.connect() as own:
                rows = own.execute(query).all()
        return {agent: until for agent, until in rows if until > now}

    def failing(self, agents: Iterable[str]) -> set[str]:
        """The agents whose last call failed (whose breaker a success would reset)."""
        h = schema.agent_health.c
        with self.store.engine.connect() as conn:
            return set(
                conn.scalars(select(h.agent).where(h.agent.in_(list(agents)), h.consecutive_failures > 0))
            )

    def awaiting_trial(self, agents: Iterable[str], conn: Connection) -> set[str]:
        """The agents whose half-open circuit waits for its trial call (none claimed it yet)."""
        h = schema.agent_health.c
        query = select(h.agent).where(
            h.agent.in_(list(agents)), h.consecutive_failures == HALF_OPEN, h.opened_until.is_(None)
        )
        return set(conn.scalars(query))

    def claim_trial(self, agent: str, conn: Connection) -> bool:
        """Make this call the trial of ``agent``'s half-open circuit, in ``conn``'s transaction; False
        when another call claimed it first (this one is then an ordinary call)."""
        h = schema.agent_health.c
        claimed = conn.execute(
            update(schema.agent_health)
            .where(h.agent == agent, h.consecutive_failures == HALF_OPEN, h.opened_until.is_(None))
            .values(consecutive_failures=TRIAL_CLAIMED)
        )
        return claimed.rowcount == 1

    def unclaim_trial(self, agent: str, conn: Connection) -> None:
        """Give the trial back (the claiming call found no free slot)."""
        h = schema.agent_health.c
        conn.execute(
            update(schema.agent_health)
            .where(h.agent == agent, h.consecutive_failures == TRIAL_CLAIMED)
            .values(consecutive_failures=HALF_OPEN)
        )

    def failure(self, agent: Agent, error: str) -> tuple[int, datetime | None]:
        """Count a failure; (failures in a row, the time the breaker now stays open until, if it opened)."""
        h = schema.agent_health.c
        for _ in range(5):
            now = _now()
            try:
                with self.store.engine.begin() as conn:
                    query = select(h.consecutive_failures, h.opened_until).where(h.agent == agent.name)
                    if conn.dialect.name == "postgresql":
                        query = query.with_for_update()
                    row = conn.execute(query).first()
                    failures = (row.consecutive_failures if row else 0) + 1
                    if row is not None and row.consecutive_failures >= HALF_OPEN:  # a trial failed
                        failures = agent.circuit_breaker.failures
                    opens = failures >= agent.circuit_breaker.failures
                    until = now + agent.circuit_breaker.cooldown if opens else None
                    values = {
                        "consecutive_failures": failures,
                        "opened_until": until if opens else (row.opened_until if row else None),
                        "last_error": error[:1000],
                        "updated_at": now,
                    }
                    if row is None:
                        conn.execute(schema.agent_health.insert().values(agent=agent.name, **values))
                    else:
                        conn.execute(
                            update(schema.agent_health).where(h.agent == agent.name).values(**values)
                        )
                return failures, until
            except IntegrityError:
                continue  # another process inserted the first failure meanwhile
        raise AgentError(f"could not record a failure of agent '{agent.name}' in the store")

    def success(self, agent: str) -> bool:
        """Reset the agent's failures (nothing is written when there are none); whether its breaker
        had been opened."""
        h = schema.agent_health.c
        failing = (h.agent == agent) & ((h.consecutive_failures > 0) | h.opened_until.is_not(None))
        with self.store.engine.connect() as conn:
            row = conn.execute(select(h.opened_until, h.consecutive_failures).where(failing)).first()
        if row is None:
            return False
        with self.store.engine.begin() as conn:
            conn.execute(
                update(schema.agent_health)
                .where(h.agent == agent)
                .values(consecutive_failures=0, opened_until=None, updated_at=_now())
            )
        return row.opened_until is not None or row.consecutive_failures >= HALF_OPEN


def hold_open(store: EventStore, agent: str, until: datetime, reason: str) -> None:
    """Open an agent's circuit until ``until`` on purpose (an incident's runbook): routing leaves it out
    as it does after failures in a row; :func:`release` closes it (so does the agent's next success)."""
    h = schema.agent_health.c
    values = {"opened_until": until, "last_error": reason[:1000], "updated_at": _now()}
    with store.engine.begin() as conn:
        if conn.execute(update(schema.agent_health).where(h.agent == agent).values(**values)).rowcount == 0:
            conn.execute(schema.agent_health.insert().values(agent=agent, consecutive_failures=0, **values))


def cap(store: EventStore, agent: str, slots: int) -> int | None:
    """Hold ``agent`` to at most ``slots`` calls at once (an incident's runbook), whatever its
    ``max_concurrency``; the calls running above it finish, no new one starts until the load is under it.
    The cap it had before (None: none)."""
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
        raise ValueError(f"a concurrency cap is a number of slots >= 1, not {slots!r}")
    h = schema.agent_health.c
    with store.engine.begin() as conn:
        before = conn.execute(select(h.concurrency_cap).where(h.agent == agent)).first()
        values = {"concurrency_cap": slots, "updated_at": _now()}
        if before is None:
            conn.execute(schema.agent_health.insert().values(agent=agent, consecutive_failures=0, **values))
            return None
        conn.execute(update(schema.agent_health).where(h.agent == agent).values(**values))
        return before[0]


def uncap(store: EventStore, agent: str) -> int | None:
    """Give ``agent`` its ``max_concurrency`` back; the cap it had (None: none)."""
    h = schema.agent_health.c
    with store.engine.begin() as conn:
        before = conn.scalar(select(h.concurrency_cap).where(h.agent == agent))
        if before is not None:
            conn.execute(
                update(schema.agent_health)
                .where(h.agent == agent)
                .values(concurrency_cap=None, updated_at=_now())
            )
        return before


def release(store: EventStore, agent: str) -> bool:
    """Close an agent's circuit; whether it was open."""
    h = schema.agent_health.c
    with store.engine.begin() as conn:
        changed = conn.execute(
            update(schema.agent_health)
            .where(h.agent == agent, h.opened_until.is_not(None))
            .values(opened_until=None, consecutive_failures=0, updated_at=_now())
        )
    return changed.rowcount > 0


class GroupCommit:
    """Store writes of many coroutines, committed together: while one transaction runs (in a
    thread), the writes asked for meanwhile queue up and go in the next one. Each write runs in a
    savepoint, so one that fails (a slot taken by another process) fails alone.

    A fan-out of 16 calls at once makes 32 slot writes per round; one transaction each, on SQLite,
    serialises them on the calls' critical path.
    """

    def __init__(self, store: EventStore):
        self.store = store
        self.pending: list[tuple[Any, asyncio.Future]] = []
        self.flushing: asyncio.Task | None = None

    async def run(self, write: Any) -> Any:
        """Run ``write(conn)`` in the next group transaction; its result (or its exception)."""
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
                return self._commit_once(writes)
            except DBAPIError as error:
                if not _deadlock(error) or attempt == DEADLOCK_RETRIES:
                    raise
                time.sleep(random.uniform(0.01, 0.05) * attempt)
        raise AssertionError("unreachable")

    def _commit_once(self, writes: list[Any]) -> list[Any]:
        outcomes: list[Any] = []
        with self.store.engine.begin() as conn:
            for write in writes:
                try:
                    with conn.begin_nested():
                        outcomes.append(write(conn))
                except IntegrityError:
                    outcomes.append(None)  # lost a race for a slot: the caller asks again
                except Exception as error:
                    if _deadlock(error):
                        raise  # the whole transaction goes again
                    outcomes.append(error)
        return outcomes


DEADLOCK_RETRIES = 5


def _deadlock(error: BaseException) -> bool:
    """A PostgreSQL deadlock or serialization failure: retrying the transaction is the remedy."""
    return getattr(getattr(error, "orig", None), "sqlstate", None) in ("40P01", "40001")
