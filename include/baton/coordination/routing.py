"""Routing: which roster agent does a step, by capability, current load and track record.

Load is Baton's own slot accounting in the store (``baton_agent_slots``): an agent call holds one of
the agent's ``max_concurrency`` slots while it runs, whichever run, task or process makes it, so
a routed step sees the load that every other Baton task puts on each agent right now. (An Airflow
pool is fixed when the DAG is parsed, so it cannot follow a choice made at run time; steps that
name their agent still queue in its pool as well.) The circuit breaker's state is in the store too
(``baton_agent_health``), shared by every run and every worker.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.exc import IntegrityError

from baton.errors import AgentError
from baton.events import schema
from baton.events.store import Event, EventStore
from baton.spec.roster import Agent

WEIGHTS = {  # reliability, free capacity, speed, cheapness
    "balanced": (0.35, 0.35, 0.15, 0.15),
    "reliable": (0.60, 0.25, 0.10, 0.05),
    "fast": (0.20, 0.30, 0.45, 0.05),
    "cheap": (0.20, 0.25, 0.05, 0.50),
}


class NoCandidate(AgentError):
    """Every agent that could do the step is left out (failed it already, or its breaker is open)."""

    def __init__(self, message: str, excluded: dict[str, str]):
        super().__init__(message)
        self.excluded = excluded


@dataclass(frozen=True)
class Choice:
    """The router's answer: the agent, the ranking it came first in, and why."""

    agent: Agent
    ranked: list[str]
    scores: dict[str, float]
    excluded: dict[str, str]
    reason: str

    def payload(self, subtask: str = "") -> dict[str, Any]:
        return {
            "agent": self.agent.name,
            "candidates": self.ranked,
            "scores": self.scores,
            "excluded": self.excluded,
            "reason": self.reason,
            "subtask": subtask,
        }


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back; the store writes UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Slots:
    """The running agent calls, one row per taken slot."""

    def __init__(self, store: EventStore):
        self.store = store

    def load(self, agents: Iterable[str]) -> dict[str, int]:
        """Slots held now (not expired) per agent."""
        names = list(agents)
        s = schema.agent_slots.c
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(s.agent, s.expires_at).where(s.agent.in_(names))).all()
        now = _now()
        counts = dict.fromkeys(names, 0)
        for agent, expires in rows:
            if _aware(expires) > now:
                counts[agent] += 1
        return counts

    def acquire(self, agent: Agent, holder: str, ttl: timedelta, events: Sequence[Event] = ()) -> int | None:
        """Take a free slot of ``agent`` and store ``events`` in the same transaction; the slot number,
        or None when all ``max_concurrency`` slots are taken (then no event is stored)."""
        for _ in range(agent.max_concurrency + 1):
            try:
                with self.store.engine.begin() as conn:
                    return self.acquire_in(conn, agent, holder, ttl, events)
            except IntegrityError:
                continue  # another caller took that slot between our read and our insert: read again
        return None

    def acquire_in(
        self, conn: Connection, agent: Agent, holder: str, ttl: timedelta, events: Sequence[Event] = ()
    ) -> int | None:
        """``acquire`` inside the caller's transaction (raises IntegrityError when it lost a race)."""
        s = schema.agent_slots.c
        now = _now()
        conn.execute(delete(schema.agent_slots).where(s.agent == agent.name, s.expires_at <= now))
        taken = set(conn.scalars(select(s.slot).where(s.agent == agent.name)))
        free = next((n for n in range(agent.max_concurrency) if n not in taken), None)
        if free is None:
            return None
        conn.execute(
            schema.agent_slots.insert().values(
                agent=agent.name,
                slot=free,
                holder=f"{holder} pid {os.getpid()}@{socket.gethostname()}"[:250],
                acquired_at=now,
                expires_at=now + ttl,
            )
        )
        self.store.append_in(conn, events)
        return free

    def take(self, agent: Agent, holder: str, ttl: timedelta, events: Sequence[Event] = ()) -> int:
        """``acquire``, waiting while every slot is taken (the step's execution_timeout bounds the wait)."""
        delay = 0.02
        while (slot := self.acquire(agent, holder, ttl, events)) is None:
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        return slot

    async def atake(
        self, agent: Agent, holder: str, ttl: timedelta, events: Sequence[Event], writes: GroupCommit
    ) -> int:
        """Take one of ``agent``'s slots from a coroutine, in ``writes``' next transaction; the wait for
        a free slot does not block the loop."""
        delay = 0.01
        while (
            slot := await writes.run(lambda conn: self.acquire_in(conn, agent, holder, ttl, events))
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

    def open_until(self, agents: Iterable[str]) -> dict[str, datetime]:
        """The agents whose breaker is open now, and until when."""
        h = schema.agent_health.c
        now = _now()
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(h.agent, h.opened_until).where(h.agent.in_(list(agents)), h.opened_until.is_not(None))
            ).all()
        return {agent: _aware(until) for agent, until in rows if _aware(until) > now}

    def failing(self, agents: Iterable[str]) -> set[str]:
        """The agents whose last call failed (whose breaker a success would reset)."""
        h = schema.agent_health.c
        with self.store.engine.connect() as conn:
            return set(
                conn.scalars(select(h.agent).where(h.agent.in_(list(agents)), h.consecutive_failures > 0))
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
            row = conn.execute(select(h.opened_until).where(failing)).first()
        if row is None:
            return False
        with self.store.engine.begin() as conn:
            conn.execute(
                update(schema.agent_health)
                .where(h.agent == agent)
                .values(consecutive_failures=0, opened_until=None, updated_at=_now())
            )
        return row.opened_until is not None


@dataclass
class Router:
    """Ranks the roster's agents for a requirement and takes a slot of the winner."""

    store: EventStore
    agents: list[Agent]
    _stats: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def slots(self) -> Slots:
        return Slots(self.store)

    @property
    def breakers(self) -> Breakers:
        return Breakers(self.store)

    def stats(self) -> dict[str, Any]:
        """Track records from the event store, read once per router (they change slowly)."""
        if self._stats is None:
            from baton.events.projections import agent_stats

            self._stats = {s.agent: s for s in agent_stats(self.store, [a.name for a in self.agents])}
        return self._stats

    def capable(self, capabilities: Iterable[str]) -> list[Agent]:
        wanted = set(capabilities)
        return [a for a in self.agents if wanted <= set(a.capabilities)]

    def rank(
        self, capabilities: Iterable[str], prefer: str = "balanced", exclude: dict[str, str] | None = None
    ) -> Choice:
        """The best agent for ``capabilities`` now.

        :param exclude: agent -> why it may not do this (e.g. it failed this step in an earlier try).
        :raises NoCandidate: no agent has the capabilities, or every one that has is excluded.
        """
        wanted = sorted(set(capabilities))
        capable = self.capable(wanted)
        if not capable:
            known = sorted({c for a in self.agents for c in a.capabilities})
            raise NoCandidate(
                f"no agent has all of the capabilities {wanted} (the roster's: {', '.join(known)}); "
                "add them to an agent in dags/agents.yaml",
                {},
            )
        excluded = {name: why for name, why in (exclude or {}).items() if name in {a.name for a in capable}}
        for name, until in self.breakers.open_until(a.name for a in capable).items():
            excluded.setdefault(name, f"circuit breaker open until {until.isoformat(timespec='seconds')}")
        candidates = [a for a in capable if a.name not in excluded]
        if not candidates:
            raise NoCandidate(
                f"every agent with {wanted} is left out: "
                + "; ".join(f"{name}: {why}" for name, why in sorted(excluded.items())),
                excluded,
            )
        load = self.slots.load(a.name for a in candidates)
        scores, why = self._score(candidates, load, prefer)
        ranked = sorted(
            candidates, key=lambda a: (load[a.name] >= a.max_concurrency, -scores[a.name], a.name)
        )
        best = ranked[0]
        return Choice(
            agent=best,
            ranked=[a.name for a in ranked],
            scores=scores,
            excluded=excluded,
            reason=f"prefer {prefer}: {why[best.name]}"
            + (
                " (every candidate is busy: it waits for a slot)"
                if load[best.name] >= best.max_concurrency
                else ""
            ),
        )

    def _score(
        self, candidates: list[Agent], load: dict[str, int], prefer: str
    ) -> tuple[dict[str, float], dict[str, str]]:
        stats = self.stats()
        latencies = {a.name: getattr(stats.get(a.name), "p50_latency_s", None) for a in candidates}
        costs = {
            a.name: (s.cost / s.steps if (s := stats.get(a.name)) and s.steps else None) for a in candidates
        }
        fastest = min((v for v in latencies.values() if v), default=None)
        cheapest = min((v for v in costs.values() if v), default=None)
        w_rel, w_free, w_speed, w_cost = WEIGHTS[prefer]
        scores, why = {}, {}
        for agent in candidates:
            s = stats.get(agent.name)
            reliability = ((s.succeeded if s else 0) + 1) / ((s.steps if s else 0) + 2)  # Laplace
            free = max(0.0, 1 - load[agent.name] / agent.max_concurrency)
            latency = latencies[agent.name]
            speed = fastest / latency if latency and fastest else 0.5
            cost = costs[agent.name]
            cheap = cheapest / cost if cost and cheapest else 1.0
            scores[agent.name] = round(
                w_rel * reliability + w_free * free + w_speed * speed + w_cost * cheap, 4
            )
            why[agent.name] = (
                f"success {reliability:.2f} over {s.steps if s else 0} step(s), "
                f"load {load[agent.name]}/{agent.max_concurrency}, "
                f"p50 {f'{latency:.2f}s' if latency else 'n/a'}, "
                f"cost/step {f'{cost:.6f}' if cost else 'n/a'}"
            )
        return scores, why


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
        outcomes: list[Any] = []
        with self.store.engine.begin() as conn:
            for write in writes:
                try:
                    with conn.begin_nested():
                        outcomes.append(write(conn))
                except IntegrityError:
                    outcomes.append(None)  # lost a race for a slot: the caller asks again
                except Exception as error:
                    outcomes.append(error)
        return outcomes
