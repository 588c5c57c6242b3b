"""A learned routing policy over simulated agents: it converges on the best, and leaves it when it degrades."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest

from baton.errors import OptimizeError
from baton.optimize.policy import RoutingPolicy
from baton.optimize.reward import Outcome

SUCCESS = {"steady": 0.92, "middling": 0.75, "poor": 0.5}  # the same latency and cost: success decides
DEGRADE_AT, CALLS = 300, 450


def _route(seed: int) -> list[str]:
    """450 routed steps over three simulated agents; the best one's success falls to 0.3 at step 300."""
    rng = np.random.default_rng(seed)
    policy = RoutingPolicy("balanced")
    chosen = []
    for step in range(CALLS):
        agent = policy.choose(list(SUCCESS), rng).arm
        success = SUCCESS[agent] if not (agent == "steady" and step >= DEGRADE_AT) else 0.3
        outcome = Outcome(bool(rng.random() < success), latency_s=float(rng.lognormal(1, 0.2)), cost=0.01)
        policy.observe(agent, outcome, at=1_700_000_000.0 + step)
        chosen.append(agent)
    return chosen


@pytest.mark.parametrize("seed", range(5))
def test_a_routed_step_converges_on_the_best_agent_and_leaves_it_when_it_degrades(seed):
    chosen = np.array(_route(seed))
    assert np.mean(chosen[200:DEGRADE_AT] == "steady") >= 0.8  # converged: 80 % or more of the calls
    moved = next(
        step - DEGRADE_AT
        for step in range(DEGRADE_AT, CALLS - 20)
        if np.mean(chosen[step : step + 20] == "steady") < 0.25
    )
    assert moved <= 60  # within tens of calls: from then on under a quarter of the traffic
    assert np.mean(chosen[-100:] == "middling") >= 0.75  # and the next best has it


def test_the_stored_state_updated_per_outcome_is_the_policy_built_in_one_pass():
    rng = np.random.default_rng(9)
    outcomes = [
        (
            str(rng.choice(list(SUCCESS))),
            Outcome(
                bool(rng.random() < 0.8), latency_s=float(rng.uniform(1, 9)), cost=float(rng.uniform(0, 0.1))
            ),
            1_700_000_000.0 + i,
        )
        for i in range(200)
    ]
    one_pass = RoutingPolicy("fast")
    stored = json.dumps(RoutingPolicy("fast").to_json())
    for agent, outcome, at in outcomes:
        one_pass.observe(agent, outcome, at)
        projection = RoutingPolicy.from_json(stored)  # what the lead's projection does per event
        projection.observe(agent, outcome, at)
        stored = json.dumps(projection.to_json(), allow_nan=False)
    assert json.loads(stored) == one_pass.to_json()
    assert RoutingPolicy.from_json(stored).choose(list(SUCCESS), 3) == one_pass.choose(list(SUCCESS), 3)


def test_the_choice_says_what_it_weighed():
    policy = RoutingPolicy("cheap")
    policy.observe("a", Outcome(True, latency_s=2.0, cost=0.02))
    policy.observe("b", Outcome(True, latency_s=4.0, cost=0.04))
    decision = policy.choose(["a", "b"], 1)
    explanation = json.loads(json.dumps(decision.explanation, allow_nan=False))
    assert explanation["prefer"] == "cheap"
    assert explanation["references"] == {"latency_s": 3.0, "cost": 0.03}
    assert explanation["reason"].startswith(
        f"prefer cheap (learned): drew {explanation['arms'][decision.arm]['draw']:.3f}"
    )
    assert set(explanation["arms"]) == {"a", "b"}


def test_observe_returns_the_reward_and_its_parts():
    policy = RoutingPolicy("balanced")
    first = policy.observe("a", Outcome(True, latency_s=2.0, cost=0.0))
    assert first["speed"] == 0.5 and first["cheapness"] == 1.0  # its own reference; free against free
    assert policy.observe("a", Outcome(False, latency_s=2.0))["reward"] == 0.0


def test_a_malformed_policy_state_names_the_field():
    state = RoutingPolicy("balanced").to_json()
    state["prefer"] = "speedy"
    with pytest.raises(OptimizeError) as caught:
        RoutingPolicy.from_json(json.dumps(state))
    assert str(caught.value) == (
        "policy.prefer: unknown preference 'speedy' (fix: use one of balanced, cheap, fast, reliable)"
    )
    state = RoutingPolicy("balanced").to_json()
    state["bandit"]["arms"] = {
        "a": {
            "n": 1,
            "hits": 1,
            "total": 2,
            "squares": 0,
            "last_at": None,
            "age": 0,
            "recent": [],
            "changed": None,
        }
    }
    with pytest.raises(OptimizeError) as caught:
        RoutingPolicy.from_json(state)
    assert str(caught.value) == (
        "policy.bandit.arms.a: rewards are in [0, 1], so squares <= total <= hits <= n, but n is 1, hits 1, "
        "total 2 and squares 0 (fix: rebuild the state from the outcomes in the event store)"
    )


def test_an_outcome_it_cannot_take_changes_nothing():
    policy = RoutingPolicy("balanced")
    for i in range(1000):
        policy.observe(f"agent_{i}", Outcome(True, latency_s=1.0, cost=0.01))
    before = json.dumps(policy.to_json())
    with pytest.raises(OptimizeError) as caught:
        policy.observe("agent_1000", Outcome(True, latency_s=1.0, cost=0.01))
    assert str(caught.value) == (
        "observe: arm: a policy learns over at most 1000 agents, and 'agent_1000' would be one more "
        "(fix: route among fewer agents, by capability)"
    )
    with pytest.raises(
        OptimizeError, match=r"^observe: arm: an agent's name must be a text of 1 to 200 characters"
    ):
        policy.observe("", Outcome(True))
    with pytest.raises(OptimizeError) as caught:
        policy.observe("agent_1", Outcome(True), at=datetime(2026, 1, 1))
    assert str(caught.value) == (
        "observe: at: a datetime without a time zone, datetime.datetime(2026, 1, 1, 0, 0) "
        "(fix: pass an aware UTC datetime)"
    )
    assert json.dumps(policy.to_json()) == before
