"""Routing: which roster agent does a step, by capability, current load and track record.

Load is Baton's own slot accounting in the store (``baton_agent_slots``): an agent call holds one of
the agent's ``max_concurrency`` slots while it runs, whichever run, task or process makes it, so
a routed step sees the load that every other Baton task puts on each agent right now. (An Airflow
pool is fixed when the DAG is parsed, so it cannot follow a choice made at run time; steps that
name their agent still queue in its pool as well.) The circuit breaker's state is in the store too
(``baton_agent_health``), shared by every run and every worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, select

from baton.budgets.ledger import share_left
from baton.coordination.commits import GroupCommit
from baton.coordination.learned import available, policy_for
from baton.coordination.load import HALF_OPEN, Breakers, Slots
from baton.coordination.waiters import Place
from baton.errors import AgentError
from baton.events import schema
from baton.events.event import Event
from baton.events.projections import agent_stats
from baton.events.store import EventStore
from baton.spec.roster import Agent

__all__ = [
    "WEIGHTS",
    "Breakers",
    "Choice",
    "GroupCommit",
    "NoCandidate",
    "Router",
    "Slots",
    "score_candidates",
]

WEIGHTS = {  # reliability, free capacity, speed, cheapness
    "balanced": (0.35, 0.35, 0.15, 0.15),
    "reliable": (0.60, 0.25, 0.10, 0.05),
    "fast": (0.20, 0.30, 0.45, 0.05),
    "cheap": (0.20, 0.25, 0.05, 0.50),
}


HEADROOM = 0.2  # an agent whose own budget has less than this share left scores less, down to 0 when spent


class NoCandidate(AgentError):
    """Every agent that could do the step is left out (failed it already, or its breaker is open)."""

    def __init__(self, message: str, excluded: dict[str, str]):
        super().__init__(message)
        self.excluded = excluded


_H = schema.agent_health.c
_HEALTH = select(_H.agent, _H.consecutive_failures, _H.opened_until, _H.concurrency_cap).where(
    _H.agent.in_(bindparam("agents", expanding=True))
)


@dataclass(frozen=True)
class Health:
    """The agents' rows of ``baton_agent_health`` read once (a routed choice's transaction): what
    :class:`Breakers` and :meth:`Slots.limits` would each read, from one statement."""

    rows: dict[str, tuple[int, datetime | None, int | None]]  # agent -> failures in a row, open until, cap
    now: datetime

    @classmethod
    def read(cls, conn: Connection, agents: Sequence[str]) -> Health:
        found = conn.execute(_HEALTH, {"agents": list(agents)}).all()
        return cls(
            {agent: (failures, until, cap) for agent, failures, until, cap in found}, datetime.now(UTC)
        )

    def open_until(self, agents: Iterable[str]) -> dict[str, datetime]:
        """As :meth:`Breakers.open_until`."""
        return {
            a: row[1]
            for a in agents
            if (row := self.rows.get(a)) and row[1] is not None and row[1] > self.now
        }

    def limits(self, agents: Iterable[Agent]) -> dict[str, int]:
        """As :meth:`Slots.limits`."""
        return {
            a.name: min(a.max_concurrency, (self.rows.get(a.name) or (0, None, None))[2] or a.max_concurrency)
            for a in agents
        }

    def awaiting_trial(self, agents: Iterable[str]) -> set[str]:
        """As :meth:`Breakers.awaiting_trial`."""
        return {a for a in agents if (row := self.rows.get(a)) and row[0] == HALF_OPEN and row[1] is None}


@dataclass(frozen=True)
class Choice:
    """The router's answer: the agent, the ranking it came first in, and why."""

    agent: Agent
    ranked: list[str]
    scores: dict[str, float]
    excluded: dict[str, str]
    reason: str
    learned: dict[str, Any] | None = None  # a learned route's posterior of each candidate and its draw

    def payload(self, subtask: str = "") -> dict[str, Any]:
        return {
            "agent": self.agent.name,
            "candidates": self.ranked,
            "scores": self.scores,
            "excluded": self.excluded,
            "reason": self.reason,
            "subtask": subtask,
            **({"learned": self.learned} if self.learned is not None else {}),
        }


def score_candidates(
    candidates: Sequence[Agent],
    stats: Mapping[str, Any],
    load: Mapping[str, int],
    prefer: str,
    headroom: Mapping[str, tuple[str, float]] | None = None,
) -> tuple[dict[str, float], dict[str, str]]:
    """Today's fixed score of each candidate, and its explanation: reliability (Laplace-smoothed success
    rate), free slots, speed (the fastest p50 over this one's) and cheapness (the cheapest cost per step
    over this one's), weighted by ``WEIGHTS[prefer]``; then, for an agent with a budget of its own
    (``headroom``: agent -> (budget, share of it left)), scaled down as that budget runs out: untouched
    above ``HEADROOM`` left, to 0 when it is spent.

    Pure: ``stats`` maps an agent's name to its track record (anything with ``steps``, ``succeeded``,
    ``p50_latency_s`` and ``cost``, e.g. ``projections.AgentStats``); an agent without one scores as
    new. ``bench/routing.py`` runs it as the fixed-ranking baseline.
    """
    headroom = headroom or {}
    latencies = {a.name: getattr(stats.get(a.name), "p50_latency_s", None) for a in candidates}
    costs = {a.name: (s.cost / s.steps if (s := stats.get(a.name)) and s.steps else None) for a in candidates}
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
        score = w_rel * reliability + w_free * free + w_speed * speed + w_cost * cheap
        why[agent.name] = (
            f"success {reliability:.2f} over {s.steps if s else 0} step(s), "
            f"load {load[agent.name]}/{agent.max_concurrency}, "
            f"p50 {f'{latency:.2f}s' if latency else 'n/a'}, "
            f"cost/step {f'{cost:.6f}' if cost else 'n/a'}"
        )
        if agent.name in headroom:
            budget, left = headroom[agent.name]
            score *= min(1.0, left / HEADROOM)
            why[agent.name] += f", budget '{budget}' {left:.0%} left"
        scores[agent.name] = round(score, 4)
    return scores, why


@dataclass
class Router:
    """Ranks the roster's agents for a requirement and takes a slot of the winner."""

    store: EventStore
    agents: list[Agent]
    budgets: Sequence[Any] = ()  # the budgets of ``dags/budgets.yaml``: an agent's own ones weigh in
    # A learned route (``route.learn``): the step's policy, learned from its outcomes when a choice is
    # made (read in the choice's transaction), and the generator its draws come from.
    learner: Callable[[Connection | None], Any] | None = None
    rng: Any = None
    place: Place | None = None  # where the caller's task stands among those waiting for slots
    _stats: dict[str, Any] | None = field(default=None, repr=False)
    _slots: Slots | None = field(default=None, repr=False)

    @classmethod
    def learning(
        cls,
        store: EventStore,
        agents: list[Agent],
        workflow: str,
        step: str,
        prefer: str,
        learn: Any,
        budgets: Sequence[Any] = (),
        rng: Any = None,
        place: Place | None = None,
    ) -> Router:
        """A router whose choice for step ``step`` of ``workflow`` is learned (see ``learned``)."""

        def learner(conn: Connection | None) -> Any:
            return policy_for(store, workflow, step, prefer, learn, conn)

        return cls(store, agents, budgets, learner=learner, rng=rng, place=place)

    @property
    def slots(self) -> Slots:
        """The slots its choices take (one book: a caller's wait is known across its asks)."""
        if self._slots is None:
            self._slots = Slots(self.store, self.place)
        return self._slots

    @property
    def breakers(self) -> Breakers:
        return Breakers(self.store)

    def stats(self) -> dict[str, Any]:
        """Track records from the event store, read once per router (they change slowly)."""
        if self._stats is None:
            self._stats = {s.agent: s for s in agent_stats(self.store, [a.name for a in self.agents])}
        return self._stats

    def capable(self, capabilities: Iterable[str]) -> list[Agent]:
        wanted = set(capabilities)
        return [a for a in self.agents if wanted <= set(a.capabilities)]

    def rank(
        self,
        capabilities: Iterable[str],
        prefer: str = "balanced",
        exclude: dict[str, str] | None = None,
        conn: Connection | None = None,
        health: Health | None = None,
    ) -> Choice:
        """The best agent for ``capabilities`` now.

        :param exclude: agent -> why it may not do this (e.g. it failed this step in an earlier try).
        :param conn: read the load in this transaction (see :meth:`take_best`); ``health``: the agents'
            circuits and caps read already in it (else read here).
        :raises NoCandidate: no agent has the capabilities, or every one that has is excluded."""
        wanted = sorted(set(capabilities))
        if not (capable := self.capable(wanted)):
            known = sorted({c for a in self.agents for c in a.capabilities})
            raise NoCandidate(
                f"no agent has all of the capabilities {wanted} (the roster's: {', '.join(known)}); "
                "add them to an agent in dags/agents.yaml",
                {},
            )
        excluded = self._excluded(capable, exclude, conn, health)
        if not (candidates := [a for a in capable if a.name not in excluded]):
            raise NoCandidate(
                f"every agent with {wanted} is left out: "
                + "; ".join(f"{name}: {why}" for name, why in sorted(excluded.items())),
                excluded,
            )
        load = self.slots.load((a.name for a in candidates), conn)
        candidates = self._capped(candidates, conn, health)
        room = self._headroom(candidates, conn)
        scores, why = score_candidates(candidates, self.stats(), load, prefer, room)
        spent = {name for name, (_, left) in room.items() if left <= 0}
        ranked = sorted(
            candidates,
            key=lambda a: (load[a.name] >= a.max_concurrency, a.name in spent, -scores[a.name], a.name),
        )
        if self.learner is not None and (learned := self._learned(ranked, load, spent, excluded, conn)):
            return learned
        best = ranked[0]
        busy = " (every candidate is busy: it waits for a slot)" * (load[best.name] >= best.max_concurrency)
        return Choice(
            agent=best,
            ranked=[a.name for a in ranked],
            scores=scores,
            excluded=excluded,
            reason=f"prefer {prefer}: {why[best.name]}{busy}",
        )

    def _learned(
        self,
        ranked: list[Agent],
        load: Mapping[str, int],
        spent: set[str],
        excluded: dict[str, str],
        conn: Connection | None,
    ) -> Choice | None:
        """The learned policy's choice among the candidates that may be called now (a free slot, budget
        left), the others after them in the ranking's order; None when there is none (every candidate
        busy: the ranking's order then, waiting for a slot)."""
        names = available(ranked, dict(load), spent)
        if not names:
            return None
        decision = self.learner(conn).choose(names, self.rng)
        arms = decision.explanation["arms"]
        drawn = sorted(names, key=lambda name: (-arms[name]["draw"], name))
        by_name = {a.name: a for a in ranked}
        return Choice(
            agent=by_name[decision.arm],
            ranked=drawn + [a.name for a in ranked if a.name not in arms],
            scores={name: arm["mean"] for name, arm in arms.items()},
            excluded=excluded,
            reason=decision.explanation["reason"],
            learned=decision.explanation,
        )

    def _excluded(
        self,
        capable: list[Agent],
        exclude: dict[str, str] | None,
        conn: Connection | None,
        health: Health | None = None,
    ) -> dict:
        """The capable agents left out, and why: the caller's reasons, then the open circuits."""
        excluded = {name: why for name, why in (exclude or {}).items() if name in {a.name for a in capable}}
        names = [a.name for a in capable]
        found = health.open_until(names) if health else self.breakers.open_until(names, conn)
        for name, until in found.items():
            excluded.setdefault(name, f"circuit breaker open until {until.isoformat(timespec='seconds')}")
        return excluded

    def _capped(
        self, candidates: list[Agent], conn: Connection | None, health: Health | None = None
    ) -> list[Agent]:
        """The candidates with the slots they have now: an incident's runbook may hold one to fewer."""
        limits = health.limits(candidates) if health else self.slots.limits(candidates, conn)
        return [
            a
            if limits[a.name] == a.max_concurrency
            else a.model_copy(update={"max_concurrency": limits[a.name]})
            for a in candidates
        ]

    def take_best(
        self,
        conn: Connection,
        capabilities: Iterable[str],
        prefer: str,
        exclude: dict[str, str] | None,
        holder: str,
        ttl: timedelta,
        events: Callable[[Choice], Sequence[Event]],
        since: float | None = None,
    ) -> tuple[Choice, int] | None:
        """Choose and take a slot in one transaction (``conn``): rank with the load this transaction
        sees, so that the slots that choices made a moment ago took count (N simultaneous items spread
        by load from the first call), and take a slot of the best candidate that has one free, storing
        ``events(choice)`` with it. None when every candidate is full (the caller waits and asks again).
        ``since``: when the caller began waiting (see ``Slots.acquire``).
        """
        health = Health.read(conn, [a.name for a in self.agents])  # once: circuits, caps, trials
        choice = self.rank(capabilities, prefer, exclude, conn=conn, health=health)
        by_name = {a.name: a for a in self.agents}
        # A circuit an incident's runbook half-opened waits for a trial call: its agent comes first, once
        # (the claim), whatever its track record, or routing would never try it and the incident could
        # not tell a recovered agent from one still failing.
        waiting = health.awaiting_trial(choice.ranked)
        tries = [(n, True) for n in choice.ranked if n in waiting] + [(n, False) for n in choice.ranked]
        for name, as_trial in tries:
            if as_trial and not self.breakers.claim_trial(name, conn):
                continue  # another call claimed it: this agent keeps its place in the ranking
            pick = choice if name == choice.agent.name else replace(choice, agent=by_name[name])
            if as_trial:
                pick = replace(pick, reason=f"trial call of its half-open circuit; {pick.reason}")
            slot = self.slots.acquire_in(conn, pick.agent, holder, ttl, events(pick), since)
            if slot is not None:
                return pick, slot
            if as_trial:
                self.breakers.unclaim_trial(name, conn)  # full: the trial waits for the next call
        return None

    def _headroom(self, candidates: list[Agent], conn: Connection | None) -> dict[str, tuple[str, float]]:
        """Each candidate with a budget of its own (``scope: agent:<name>``): the tightest one's name and
        the share of it left in its current window. Budgets every candidate shares (global, the
        workflow's) do not tell them apart: cheapness already ranks by cost."""
        own = [b for b in self.budgets if b.scope.startswith("agent:")]
        if not own:
            return {}
        now, room = datetime.now(UTC), {}
        with nullcontext(conn) if conn is not None else self.store.engine.connect() as read:
            for agent in candidates:
                for budget in (b for b in own if b.scope == f"agent:{agent.name}" and b.per != "run"):
                    left = share_left(read, budget, budget.window("", now))
                    if agent.name not in room or left < room[agent.name][1]:
                        room[agent.name] = (budget.name, left)
        return room
