"""Rewards: one number in [0, 1] per agent call, weighted by prefer, on a robust scale."""

from __future__ import annotations

import json
import math

import pytest

from baton.coordination.routing import WEIGHTS as ROUTING_WEIGHTS
from baton.errors import OptimizeError
from baton.optimize.reward import WEIGHTS, Outcome, Scale, relative, reward, weights


def test_the_weights_are_the_routers_without_free_capacity_rescaled():
    assert set(WEIGHTS) == set(ROUTING_WEIGHTS)
    for prefer, (rel, _free, speed, cost) in ROUTING_WEIGHTS.items():
        total = rel + speed + cost
        assert WEIGHTS[prefer] == pytest.approx((rel / total, speed / total, cost / total))
        assert sum(WEIGHTS[prefer]) == pytest.approx(1.0)


def test_a_delivered_call_earns_its_weighted_parts():
    outcome = Outcome(success=True, valid=True, latency_s=2.0, cost=0.01)
    earned = reward(outcome, "balanced", latency_ref=2.0, cost_ref=0.03)
    quality, speed, cheap = WEIGHTS["balanced"]
    assert earned == {
        "reward": pytest.approx(quality * 1 + speed * 0.5 + cheap * 0.75),
        "quality": 1.0,
        "speed": 0.5,  # as fast as the reference
        "cheapness": 0.75,  # a third of the reference's cost: 0.03 / (0.03 + 0.01)
    }


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome(success=False, latency_s=0.1, cost=0.0),  # failed fast and free: still bought nothing
        Outcome(success=True, valid=False, latency_s=0.1, cost=0.0),  # answered, but not to the schema
    ],
)
def test_a_call_that_did_not_deliver_earns_nothing(outcome):
    assert reward(outcome, "cheap", 1.0, 1.0) == {
        "reward": 0.0,
        "quality": 0.0,
        "speed": 0.0,
        "cheapness": 0.0,
    }


def test_human_feedback_scales_the_quality_part():
    liked = reward(Outcome(True, latency_s=1, cost=1, feedback=1.0), "reliable", 1, 1)["reward"]
    lukewarm = reward(Outcome(True, latency_s=1, cost=1, feedback=0.4), "reliable", 1, 1)["reward"]
    unrated = reward(Outcome(True, latency_s=1, cost=1), "reliable", 1, 1)["reward"]
    assert liked == unrated
    assert liked - lukewarm == pytest.approx(WEIGHTS["reliable"][0] * 0.6)


def test_prefer_decides_which_agent_earns_most():
    """Three profiles, the same references: each preference puts a different agent first."""
    profiles = {
        "steady": (0.95, 6.0, 0.02),  # success rate, latency, cost
        "sprinter": (0.85, 1.0, 0.02),
        "bargain": (0.85, 6.0, 0.001),
    }

    def expected(prefer: str, success: float, latency: float, cost: float) -> float:
        return success * reward(Outcome(True, latency_s=latency, cost=cost), prefer, 6.0, 0.02)["reward"]

    best = {
        prefer: max(profiles, key=lambda name: expected(prefer, *profiles[name]))
        for prefer in ("reliable", "fast", "cheap")
    }
    assert best == {"reliable": "steady", "fast": "sprinter", "cheap": "bargain"}


def test_relative_is_half_at_the_reference_and_one_at_zero():
    assert relative(3.0, 3.0) == 0.5
    assert relative(0.0, 3.0) == 1.0
    assert relative(6.0, 3.0) == pytest.approx(1 / 3)
    assert relative(5.0, None) == 0.5  # no reference yet
    assert relative(0.0, 0.0) == 1.0  # free skills against free skills
    assert relative(0.5, 0.0) == 0.0


def test_the_scale_is_the_median_of_each_agents_median():
    scale = Scale(window=5)
    for _ in range(100):  # one agent gets almost all the traffic ...
        scale.observe("busy", Outcome(True, latency_s=1.0, cost=0.01))
    for latency in (4.0, 4.0, 400.0):  # ... one stuck call among another's
        scale.observe("slow", Outcome(True, latency_s=latency, cost=0.05))
    scale.observe("mid", Outcome(True, latency_s=3.0, cost=0.02))
    scale.observe("mid", Outcome(False, latency_s=999.0, cost=9.0))  # a failure says nothing of either
    assert scale.references() == (3.0, 0.02)
    assert scale.references(["busy", "slow"]) == pytest.approx((2.5, 0.03))
    assert scale.references(["unknown"]) == (None, None)
    assert list(scale.latency["busy"]) == [1.0] * 5  # only the last `window` calls


def test_the_scale_keeps_at_most_1000_agents():
    scale = Scale()
    for i in range(1000):
        scale.observe(f"a{i}", Outcome(True))
    with pytest.raises(OptimizeError) as caught:
        scale.observe("one_more", Outcome(True))
    assert str(caught.value) == (
        "scale: at most 1000 agents, and 'one_more' would be one more (fix: route among fewer agents, by capability)"
    )


def test_the_scale_round_trips_through_json():
    scale = Scale(window=3)
    for i in range(5):
        scale.observe("a", Outcome(True, latency_s=0.1 * i, cost=1 / 3))
    again = Scale.from_json(json.dumps(scale.to_json()))
    assert again.to_json() == scale.to_json() and again.references() == scale.references()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"success": True, "latency_s": -1.0},
            "outcome.latency_s: must be a finite number of seconds >= 0, got -1.0 "
            "(fix: record the call's measured seconds; 0 when it has none)",
        ),
        (
            {"success": True, "cost": math.nan},
            "outcome.cost: must be a finite number of cost >= 0, got nan "
            "(fix: record the call's measured cost; 0 when it has none)",
        ),
        (
            {"success": True, "latency_s": "3s"},
            "outcome.latency_s: must be a finite number of seconds >= 0, got '3s'",
        ),
        (
            {"success": True, "feedback": 5},
            "outcome.feedback: must be a number in [0, 1] or none, got 5 "
            "(fix: map the person's verdict to 0 (bad) .. 1 (good), or leave it out)",
        ),
        ({"success": "yes"}, "outcome.success: must be true or false, got 'yes' (fix: pass a bool)"),
        ({"success": True, "valid": 1}, "outcome.valid: must be true or false, got 1 (fix: pass a bool)"),
    ],
)
def test_an_outcome_out_of_range_is_refused_naming_the_field(fields, message):
    with pytest.raises(OptimizeError) as caught:
        Outcome(**fields)
    assert str(caught.value).startswith(message)


def test_an_unknown_preference_names_the_known_ones():
    with pytest.raises(OptimizeError) as caught:
        weights("speedy")
    assert (
        str(caught.value)
        == "prefer: unknown preference 'speedy' (fix: use one of balanced, cheap, fast, reliable)"
    )


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (
            "{",
            "scale: not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        ('{"window": NaN}', "scale: not valid JSON: NaN is not a number JSON allows"),
        ("[" * 100_000 + "]" * 100_000, "scale: nested too deeply to be a state"),
        (
            '{"window": 5, "latency_s": {}, "cost": {}, "x": 1}',
            "scale: unknown field(s) x (expected cost, latency_s, window)",
        ),
        (
            '{"window": 0, "latency_s": {}, "cost": {}}',
            "scale.window: must be a whole number [1, 10000], got 0",
        ),
        (
            '{"window": 2, "latency_s": {"a": [1, 2, 3]}, "cost": {"a": [1, 2, 3]}}',
            "scale.latency_s.a: must be a list of at most 2 numbers",
        ),
        (
            '{"window": 2, "latency_s": {"a": [-1]}, "cost": {"a": [1]}}',
            "scale.latency_s.a[0]: must be a finite number >= 0, got -1",
        ),
        (
            '{"window": 2, "latency_s": {"a": [1]}, "cost": {}}',
            "scale: latency_s and cost must hold the same agents with as many values each",
        ),
        (
            '{"window": 2, "latency_s": {"": [1]}, "cost": {"": [1]}}',
            "scale.latency_s: an agent's name must be a text of 1 to 200 characters, got ''",
        ),
    ],
)
def test_a_malformed_scale_state_is_refused_naming_the_field(state, message):
    with pytest.raises(OptimizeError) as caught:
        Scale.from_json(state)
    assert str(caught.value) == f"{message} (fix: rebuild the state from the outcomes in the event store)"
