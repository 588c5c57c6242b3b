"""Load and health in Baton's store, shared by every run and worker: each agent call holds one of its
agent's ``max_concurrency`` slots (a row per slot: two callers cannot take one), and each agent's circuit
breaker (failures in a row, open until when). The group commit that batches a fan-out's writes is
:mod:`baton.coordination.commits`'s."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache

from sqlalchemy import Connection, bindparam, delete, select, text, update
from sqlalchemy.exc import IntegrityError

from baton.coordination.commits import GroupCommit
from baton.coordination.waiters import AHEAD, START_BY, Place, Waiting, waited
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


# The lowest free slot number below the agent's max_concurrency (``size``), unless the slots held (not
# expired) and those the callers ahead of this one wait for (baton.coordination.waiters) reach its limit:
# ``size``, or the cap in baton_agent_health when lower.
_FREE = (
    """
WITH RECURSIVE numbers(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM numbers WHERE n + 1 < :size),
live AS (SELECT slot FROM baton_agent_slots WHERE agent = :agent AND expires_at > :now),
"""
    + AHEAD
    + """
{insert}SELECT {columns} FROM numbers
WHERE n NOT IN (SELECT slot FROM live)
  AND (SELECT count(*) FROM live) + (SELECT k FROM ahead) < COALESCE(
      (SELECT CASE WHEN concurrency_cap < :size THEN concurrency_cap END
       FROM baton_agent_health WHERE agent = :agent),
      :size)
ORDER BY n LIMIT 1
"""
)
_TIMES = (
    bindparam("now", type_=schema.UTCDateTime()),
    bindparam("expires", type_=schema.UTCDateTime()),
    START_BY,
)
# ... taken: a number an expired slot holds (its holder killed) is taken over; a number another caller took
# meanwhile is live, so the statement takes nothing. The slot number it took, or no row.
_TAKE = text(
    _FREE.format(
        insert="INSERT INTO baton_agent_slots (agent, slot, holder, acquired_at, expires_at)\n",
        columns=":agent, n, :holder, :now, :expires",
    )
    + """ON CONFLICT (agent, slot) DO UPDATE
  SET holder = excluded.holder, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
  WHERE baton_agent_slots.expires_at <= :now
RETURNING slot
"""
).bindparams(*_TIMES)
_S = schema.agent_slots.c
_RELEASE = delete(schema.agent_slots).where(  # the slot, and the agent's expired ones (killed holders')
    _S.agent == bindparam("agent"),
    ((_S.slot == bindparam("slot")) & (_S.holder == bindparam("holder")))
    | (_S.expires_at <= bindparam("now")),
)
# A slot this process did not take (another instance's): by its number alone, as before holders were checked.
_RELEASE_ANY = delete(schema.agent_slots).where(
    _S.agent == bindparam("agent"), (_S.slot == bindparam("slot")) | (_S.expires_at <= bindparam("now"))
)
_LOAD = select(_S.agent, _S.expires_at).where(_S.agent.in_(bindparam("agents", expanding=True)))
_ANY_FREE = text(_FREE.format(insert="", columns="n")).bindparams(_TIMES[0], START_BY)


class SlotTaken(IntegrityError):
    """The free slot number a caller read was taken by another one before its row went in (PostgreSQL:
    two transactions at once): it asks again."""

    def __init__(self, agent: str):
        super().__init__(f"a slot of agent '{agent}'", None, Exception("taken by another caller meanwhile"))


@cache
def _host() -> str:
    return socket.gethostname()


class Slots:
    """The running agent calls, one row per taken slot; ``place``: where the calls of this task stand among
    the callers waiting for a slot (None: as a caller that must start now)."""

    def __init__(self, store: EventStore, place: Place | None = None):
        self.store = store
        self.waiting = Waiting(place)
        # (agent, slot) -> the holder this instance took it as: a release frees the slot only while it still
        # holds it (its lease expired and another caller took the number over: that caller's row stays)
        self._holders: dict[tuple[str, int], str] = {}

    def load(self, agents: Iterable[str], conn: Connection | None = None) -> dict[str, int]:
        """Slots held now (not expired) per agent; in ``conn``'s transaction when given (so that the
        slots it took a moment ago count)."""
        names = list(agents)
        if conn is not None:
            rows = conn.execute(_LOAD, {"agents": names}).all()
        else:
            with self.store.engine.connect() as own:
                rows = own.execute(_LOAD, {"agents": names}).all()
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
        """``acquire`` inside the caller's transaction: one statement (``_TAKE``) takes the lowest free slot
        number while fewer are held, with those the callers ahead of this one wait for, than the agent's limit
        now (its ``max_concurrency``, or the cap an incident's runbook set), then ``events`` are appended;
        None, and no event, when there is none to take (a caller waiting since ``since`` is then a waiter:
        :mod:`baton.coordination.waiters`). Two callers that read the same free number race for one row: the
        loser's statement waits for the winner's transaction (PostgreSQL), then takes nothing; it raises
        :class:`SlotTaken` (an IntegrityError: the caller asks again) when a slot is still free (SQLite's
        single writer: no race)."""
        now = _now()
        params = {
            "agent": agent.name,
            "size": agent.max_concurrency,
            "holder": f"{holder} pid {os.getpid()}@{_host()}"[:250],
            "now": now,
            "expires": now + ttl,
            **self.waiting.params(conn, now),
        }
        slot = conn.execute(_TAKE, params).scalar()
        if slot is None:
            if conn.dialect.name == "postgresql" and conn.execute(_ANY_FREE, params).first() is not None:
                raise SlotTaken(agent.name)
            self.waiting.wait_in(conn, agent.name, since, params)
            return None
        self.waiting.served_in(conn, since)
        placed = (
            params["start_by"] if self.waiting.place is not None else None
        )  # a place-less caller's is now
        self.store.append_in(conn, waited(events, since, placed))
        self._holders[(agent.name, slot)] = params["holder"]
        return slot

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
        """``release`` in the caller's transaction; the agent's expired slots (killed holders') go with it. A
        slot whose lease ran out and that another caller took over is left to that caller."""
        holder = self._holders.pop((agent, slot), None)
        params = {"agent": agent, "slot": slot, "now": _now(), "holder": holder}
        conn.execute(_RELEASE if holder is not None else _RELEASE_ANY, params)
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
