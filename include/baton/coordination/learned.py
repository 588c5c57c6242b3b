"""Learned routing (``route: {learn: ...}``): which capable agent a step's next call goes to, learned from
how the step's past calls went.

Every try of the step that an agent finished is an outcome (``baton.optimize.reward.Outcome``): whether
it answered, whether its answer was valid (the output schema, the step's ``require``), its latency and
cost (its model calls'; a skill's step duration), and a person's verdict on it where there is one (a
review's approve / edit / reject, or a score given through ``baton feedback`` or the API). They are read
from the event store (the step's latest ``learn.history`` tries, in the order they were stored) and
learned by a :class:`~baton.optimize.policy.RoutingPolicy` (Thompson sampling with change detection) built afresh at
each choice: the policy is a projection of the events, the same in every worker and process, with no
state of its own to keep in step with them.

The policy chooses among the candidates that may be called now (capable, breaker closed, not failed in an
earlier try of this step, a free slot, budget left): load slots, circuit breakers and budgets hold as they
do for the ranking. A refusal by a budget and a step no agent could take are not the agent's outcomes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from baton.events.store import EventStore
from baton.optimize.bandit import Bandit
from baton.optimize.policy import RoutingPolicy
from baton.optimize.reward import Outcome

# What a try's events say about the agent's call.
TYPES = ("step.succeeded", "step.failed", "model.called", "feedback.recorded")
NOT_THE_AGENTS = {"BudgetExceeded", "NoCandidate", "PersonDecided"}  # failures no agent made
INVALID = {"OutputInvalid", "RequirementFailed"}  # it answered, but the answer was not usable
EVENTS_PER_TRY = 6  # a try's step event, a few model calls, a verdict: the read's bound is history x this


@dataclass
class _Try:
    agent: str | None = None
    success: bool | None = None  # None: no step event yet (running), or a failure that was not the agent's
    valid: bool = True
    latency_s: float = 0.0
    duration_s: float = 0.0
    cost: float = 0.0
    seq: int = 0


def step_outcomes(
    store: EventStore, workflow: str, step: str, history: int, conn: Connection | None = None
) -> list[tuple[str, Any]]:
    """The step's finished tries, oldest first, as (agent, Outcome): its latest ``history`` of them."""
    rows = store.step_history(workflow, step, TYPES, history * EVENTS_PER_TRY, conn)
    tries: dict[tuple[str, int], _Try] = {}
    verdicts: dict[str, float] = {}  # run -> the latest verdict on the step's output
    for seq, run_id, try_number, kind, agent, payload in rows:
        if kind == "feedback.recorded":
            verdicts[run_id] = float(payload.get("score", 0.0))
            continue
        one = tries.setdefault((run_id, try_number), _Try())
        one.seq = max(one.seq, seq)
        _fold(one, kind, agent, payload)
    finished = sorted(
        ((key, t) for key, t in tries.items() if t.agent and t.success is not None), key=lambda kt: kt[1].seq
    )[-history:]
    delivered = {key[0]: key for key, t in finished if t.success and t.valid}  # the run's answer, per run
    return [
        (
            t.agent,
            Outcome(
                success=t.success,
                valid=t.valid,
                latency_s=t.latency_s or t.duration_s,
                cost=t.cost,
                feedback=verdicts.get(key[0]) if delivered.get(key[0]) == key else None,
            ),
        )
        for key, t in finished
    ]


def _fold(one: _Try, kind: str, agent: str | None, payload: dict[str, Any]) -> None:
    """What one event of a try adds to it."""
    one.agent = agent or one.agent  # a reviewed try's step event, after the person, may not name it
    if kind == "model.called":
        one.latency_s += max(0.0, float(payload.get("latency_s") or 0.0))
        one.cost += max(0.0, float(payload.get("cost") or 0.0))
        return
    if kind == "step.succeeded":
        one.success, one.duration_s = True, max(0.0, float(payload.get("duration_s") or 0.0))
    elif payload.get("error_class") in NOT_THE_AGENTS:
        one.success = None
    elif payload.get("error_class") in INVALID:
        one.success, one.valid = True, False
    else:
        one.success = False


def policy_for(store: EventStore, workflow: str, step: str, prefer: str, learn: Any, conn=None) -> Any:
    """The step's routing policy, learned from its outcomes (``learn``: the route's ``Learn`` options)."""
    policy = RoutingPolicy(
        prefer, Bandit(half_life_calls=learn.half_life_calls, recheck_calls=learn.recheck_calls)
    )
    for agent, outcome in step_outcomes(store, workflow, step, learn.history, conn):
        policy.observe(agent, outcome)
    return policy


def available(candidates: Iterable[Any], load: dict[str, int], spent: set[str]) -> list[str]:
    """The candidates a call may go to now: a free slot, budget left."""
    return [a.name for a in candidates if load[a.name] < a.max_concurrency and a.name not in spent]
