"""Learned routing (route.learn) over simulated agents, on SQLite and PostgreSQL: the router learns from the
step's outcomes as the operator stores them, converges on the best agent, moves off it when it degrades,
and still respects load slots, circuit breakers and budgets."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest

from baton.coordination.learned import step_outcomes
from baton.coordination.routing import Breakers, Router, Slots
from baton.events.event import Event
from baton.spec.learning import Learn
from baton.spec.roster import Agent

TTL = timedelta(minutes=5)
WORKFLOW, STEP = "learning", "answer"


def _agent(name: str, slots: int = 4) -> Agent:
    return Agent(name=name, capabilities=["answering"], max_concurrency=slots)


AGENTS = [_agent("ace"), _agent("bolt"), _agent("crate")]


class World:
    """Three simulated agents: each call succeeds with the agent's probability (drawn from a seed), takes
    a second and costs a cent; what happens is stored as the operator stores it."""

    def __init__(self, store, success: dict[str, float], seed: int = 3):
        self.store, self.success, self.rng, self.calls = store, dict(success), np.random.default_rng(seed), 0

    def call(self, agent: str) -> bool:
        self.calls += 1
        ok = bool(self.rng.random() < self.success[agent])
        common = {"run_id": f"run-{self.calls}", "workflow": WORKFLOW, "step": STEP, "try_number": 1}
        model = Event(
            type="model.called",
            agent=agent,
            **common,
            payload={"model": "sim", "cost": 0.01, "latency_s": 1.0, "prompt_sha256": "x", "prompt_chars": 1},
        )
        done = Event(
            type="step.succeeded" if ok else "step.failed",
            agent=agent,
            payload={"duration_s": 1.2} if ok else {"error_class": "AgentError", "error": "no answer"},
            **common,
        )
        self.store.append([model, done])
        return ok


def _router(store, seed: int, learn: Learn | None = None, prefer: str = "balanced") -> Router:
    return Router.learning(
        store, AGENTS, WORKFLOW, STEP, prefer, learn or Learn(), rng=np.random.default_rng(seed)
    )


def _route(world: World, calls: int, seed: int) -> list[str]:
    chosen = []
    for i in range(calls):
        choice = _router(world.store, seed + i).rank(["answering"])
        chosen.append(choice.agent.name)
        world.call(choice.agent.name)
    return chosen


def test_a_learned_route_converges_on_the_best_agent_and_moves_off_it_when_it_degrades(store):
    world = World(store, {"ace": 0.95, "bolt": 0.70, "crate": 0.45})
    first = _route(world, 150, seed=100)
    assert set(first[:15]) == {"ace", "bolt", "crate"}  # every agent is tried early
    assert first[-50:].count("ace") >= 42, first[-50:]  # converged: at least 84 % of the last 50 on the best
    world.success["ace"] = 0.15  # the best degrades
    after = _route(world, 80, seed=1000)
    moved = next(i for i in range(len(after) - 20) if after[i : i + 20].count("ace") < 5)
    assert moved <= 40, (moved, after)  # within tens of calls it gets under a quarter of the calls
    assert after[-30:].count("bolt") >= 20, after[-30:]  # bolt is now the best


def test_the_choice_says_what_it_learned_in_agent_selected(store):
    world = World(store, {"ace": 1.0, "bolt": 0.0, "crate": 0.5})
    _route(world, 12, seed=5)
    choice = _router(store, 9).rank(["answering"])
    learned = choice.payload()["learned"]
    assert learned["policy"] == "discounted-thompson" and learned["prefer"] == "balanced"
    assert set(learned["arms"]) == {"ace", "bolt", "crate"}
    assert learned["arms"]["ace"]["mean"] > learned["arms"]["bolt"]["mean"]
    assert choice.reason.startswith("prefer balanced (learned): drew ")
    assert choice.scores == {name: arm["mean"] for name, arm in learned["arms"].items()}
    Event(type="agent.selected", run_id="r", workflow=WORKFLOW, payload=choice.payload())  # a valid payload


def test_breakers_slots_and_failed_tries_leave_an_agent_out_of_the_learned_choice(store):
    world = World(store, {"ace": 1.0, "bolt": 0.6, "crate": 0.6})
    _route(world, 40, seed=7)
    assert _router(store, 1).rank(["answering"]).agent.name == "ace"
    for _ in range(4):
        Slots(store).acquire(AGENTS[0], "a long call", TTL)  # ace's four slots are taken
    full = _router(store, 1).rank(["answering"])
    assert full.agent.name != "ace" and full.ranked[-1] == "ace"  # the busy best comes last
    breakers = Breakers(store)
    while "bolt" not in breakers.open_until(["bolt"]):  # failures in a row, as its calls would report them
        breakers.failure(AGENTS[1], "AgentError: no answer")
    only = _router(store, 2).rank(["answering"])
    assert only.agent.name == "crate" and "circuit breaker open" in only.excluded["bolt"]
    tried = _router(store, 3).rank(["answering"], exclude={"crate": "failed this step in try 1"})
    assert tried.agent.name == "ace" and "every candidate is busy" in tried.reason  # waits for a slot


def test_a_budget_refusal_is_not_the_agents_outcome_and_an_invalid_answer_earns_nothing(store):
    common = {"workflow": WORKFLOW, "step": STEP, "try_number": 1}
    store.append(
        [
            Event(
                type="step.failed",
                run_id="r1",
                agent="ace",
                payload={"error_class": "BudgetExceeded"},
                **common,
            ),
            Event(
                type="step.failed",
                run_id="r2",
                agent="bolt",
                payload={"error_class": "OutputInvalid"},
                **common,
            ),
            Event(type="step.succeeded", run_id="r3", agent="crate", payload={"duration_s": 2.0}, **common),
            Event(type="step.started", run_id="r4", agent="ace", payload={}, **common),  # still running
        ]
    )
    outcomes = step_outcomes(store, WORKFLOW, STEP, history=10)
    assert [(agent, o.success, o.valid, o.latency_s) for agent, o in outcomes] == [
        ("bolt", True, False, 0.0),
        ("crate", True, True, 2.0),
    ]


def test_a_persons_verdict_is_learned_with_the_try_that_gave_the_output(store):
    common = {"workflow": WORKFLOW, "step": STEP}
    store.append(
        [
            Event(
                type="step.failed",
                run_id="r1",
                agent="ace",
                try_number=1,
                payload={"error_class": "AgentError"},
                **common,
            ),
            Event(
                type="step.succeeded",
                run_id="r1",
                agent="bolt",
                try_number=2,
                payload={"duration_s": 1.0},
                **common,
            ),
            Event(
                type="feedback.recorded",
                run_id="r1",
                payload={"score": 0.0, "verdict": "reject", "source": "review"},
                **common,
            ),
        ]
    )
    outcomes = step_outcomes(store, WORKFLOW, STEP, history=10)
    assert [(a, o.success, o.feedback) for a, o in outcomes] == [("ace", False, None), ("bolt", True, 0.0)]


def test_the_history_bounds_what_is_read(store):
    world = World(store, {"ace": 1.0, "bolt": 1.0, "crate": 1.0})
    for name in ["ace"] * 30 + ["bolt"] * 10:
        world.call(name)
    outcomes = step_outcomes(store, WORKFLOW, STEP, history=10)
    assert [agent for agent, _ in outcomes] == ["bolt"] * 10


@pytest.mark.parametrize(
    ("learn", "message"),
    [
        ("yes", "learn is true, false or a mapping (half_life_calls, recheck_calls, history), not 'yes'"),
        (1, "learn is true, false or a mapping (half_life_calls, recheck_calls, history), not '1'"),
        ({"half_life_calls": 0}, "learn.half_life_calls: Input should be greater than or equal to 1"),
        ({"half_life_calls": 2.5}, "learn.half_life_calls: Input should be a valid integer"),
        ({"half_life_calls": "NaN"}, "learn.half_life_calls: Input should be a valid integer"),
        ({"history": 10**12}, "learn.history: Input should be less than or equal to 10000"),
        ({"forget": 3}, "learn.forget: unknown key 'forget'"),
    ],
)
def test_a_bad_learn_option_is_refused_naming_it(learn, message, tmp_path):
    from baton.errors import TemplateError
    from baton.spec.loading import load_workflow

    head = "workflow: learning\nversion: 1\ndescription: t\nowner: tests\nsteps:\n  - id: answer\n"
    shown = json.dumps(learn)  # YAML reads JSON
    path = tmp_path / "learning.yaml"
    path.write_text(
        head + f"    instruction: Answer.\n    route: {{capabilities: [answering], learn: {shown}}}\n"
    )
    with pytest.raises(TemplateError) as refused:
        load_workflow(path, None)
    assert message in str(refused.value)


def test_learn_on_a_for_each_step_is_refused_with_where_its_items_go(tmp_path):
    from baton.errors import TemplateError
    from baton.spec.loading import load_workflow

    path = tmp_path / "learning.yaml"
    path.write_text(
        "workflow: learning\nversion: 1\ndescription: t\nowner: tests\nsteps:\n"
        "  - id: plan\n    skill: echo\n"
        "  - id: answer\n    for_each: plan.items\n    instruction: Answer {{ item }}.\n"
        "    route: {capabilities: [answering], learn: true}\n"
    )
    with pytest.raises(TemplateError) as refused:
        load_workflow(path, None)
    assert (
        "steps[1].route.learn: learned routing chooses the agent of a step's call; a for_each step's items are "
        "spread over the capable agents by load (fix: remove learn here, or learn on a step without for_each)"
    ) in str(refused.value)


def test_a_persons_rejections_lower_what_routing_expects_of_the_agent(store):
    """ace and bolt deliver every time; a reviewer rejects ace's outputs (as the review handler's verdict
    records a Reject on the Required Actions page): routing's posterior of ace falls below bolt's, and bolt gets
    the step."""
    from baton.coordination.approval import Review
    from baton.coordination.learned import policy_for
    from baton.coordination.questions import Answer

    world = World(store, {"ace": 1.0, "bolt": 1.0, "crate": 1.0})
    for i in range(20):
        name = "ace" if i % 2 == 0 else "bolt"
        world.call(name)
        if name == "ace":
            answer = Answer("review", ["Reject"], {}, "Rita Reviewer", False, {"draft": {"a": 1}})
            store.append([Event(type="feedback.recorded", run_id=f"run-{world.calls}", workflow=WORKFLOW,
                                step=STEP, payload=Review().verdict(answer))])  # fmt: skip
    arms = {
        name: policy_for(store, WORKFLOW, STEP, "balanced", Learn()).bandit.posterior(name)
        for name in ("ace", "bolt")
    }
    assert arms["ace"]["mean"] < arms["bolt"]["mean"] - 0.3, arms
    chosen = [
        _router(store, seed).rank(["answering"], exclude={"crate": "left out here"}).agent.name
        for seed in range(20)
    ]
    assert chosen.count("bolt") >= 18, chosen
