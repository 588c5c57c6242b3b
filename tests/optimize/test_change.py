"""The change detector against simulation: rare false alarms on an agent that does not change, a change
found within tens of calls, and the bandit judging a changed agent on its calls since the change."""

from __future__ import annotations

import numpy as np
import pytest

from baton.optimize.bandit import Bandit
from baton.optimize.change import change_point, drop_point, threshold


def _first_alarm(rates: list[tuple[float, int]], seed: int, false_alarm: float = 0.01) -> int | None:
    """Calls delivered at each (rate, calls) in turn, tested after each one as the bandit does: the call
    (counted from 0) after which the test first fires, None when it never does."""
    rng = np.random.default_rng(seed)
    bits = np.concatenate([rng.random(calls) < rate for rate, calls in rates])
    for i in range(2, len(bits) + 1):
        if change_point(bits[:i], false_alarm):
            return i - 1
    return None


@pytest.mark.parametrize("rate", [0.6, 0.93])
def test_an_agent_that_does_not_change_rarely_raises_a_false_alarm(rate):
    alarms = [_first_alarm([(rate, 400)], seed) for seed in range(100)]
    assert sum(a is not None for a in alarms) <= 2  # at most 2 in 100 (declared: at most 1 in 100 ever)


def test_an_agent_that_degrades_is_found_out_within_tens_of_calls():
    # 300 calls delivering 93 % of the time, then 59 % (bench/routing.py's incident)
    delays = [_first_alarm([(0.93, 300), (0.59, 200)], seed) for seed in range(40)]
    delays = [d - 300 if d is not None else 10_000 for d in delays]
    assert sum(d < 0 for d in delays) <= 1  # a false alarm before the change: rare
    after = [d for d in delays if d >= 0]
    assert np.median(after) <= 40 and np.percentile(after, 90) <= 80, sorted(after)


def test_the_threshold_grows_with_the_calls_as_the_paper_states():
    assert threshold(100) == pytest.approx(np.log(3 * 100**1.5 / 0.01))
    assert change_point([1.0]) == 0 and change_point([]) == 0
    assert change_point([1] * 30 + [0] * 15) == 30  # the change is placed where it happened


def _steady(calls: int) -> tuple[Bandit, np.random.Generator]:
    """A bandit whose agent "steady" delivered 95 % of ``calls`` calls (beside "other", always 0.6)."""
    bandit = Bandit()
    rng = np.random.default_rng(4)
    for _ in range(calls):
        bandit.update("steady", 0.75 if rng.random() < 0.95 else 0.0)
        bandit.update("other", 0.6)
    return bandit, rng


def _calls_until_changed(bandit: Bandit, rng: np.random.Generator, rate: float) -> int:
    """Calls of "steady" delivering ``rate`` of the time until a test found the change."""
    calls = 0
    while bandit.arms["steady"].changed is None:
        bandit.update("steady", 0.75 if rng.random() < rate else 0.0)
        calls += 1
    return calls


def test_the_bandit_forgets_an_agents_calls_from_before_its_change_and_says_so():
    bandit, rng = _steady(200)
    assert bandit.posterior("steady")["n_eff"] > 150  # a long memory while it is stable
    calls = _calls_until_changed(bandit, rng, 0.3)
    assert calls <= 20, calls
    assert bandit.posterior("steady")["n_eff"] <= calls + 1  # judged on its calls since the change
    assert bandit.posterior("steady")["mean"] < bandit.posterior("other")["mean"]
    decision = bandit.choose(["steady", "other"], 1)
    assert decision.explanation["arms"]["steady"]["changed_calls_ago"] == 0
    assert (
        "steady's calls changed 0 call(s) ago: it is judged on those since" in decision.explanation["reason"]
    )


def _first_drop(rates: list[tuple[float, int]], seed: int) -> int | None:
    """As ``_first_alarm``, for the drop test."""
    rng = np.random.default_rng(seed)
    bits = np.concatenate([rng.random(calls) < rate for rate, calls in rates])
    for i in range(60, len(bits) + 1):
        if drop_point(bits[:i]):
            return i - 1
    return None


@pytest.mark.parametrize("rate", [0.55, 0.93])
def test_the_drop_test_rarely_fires_on_an_agent_that_does_not_change(rate):
    alarms = [_first_drop([(rate, 500)], seed) for seed in range(60)]
    assert sum(a is not None for a in alarms) <= 1  # measured: about 1 in 100 over 1,000 calls


def test_the_drop_test_finds_a_drop_faster_than_the_change_test():
    # bench/routing.py's incident: 300 calls delivering 93 % of the time, then 59 %
    drops = [_first_drop([(0.93, 300), (0.59, 200)], seed) for seed in range(40)]
    changes = [_first_alarm([(0.93, 300), (0.59, 200)], seed) for seed in range(40)]
    drops = [d - 300 if d is not None else 10_000 for d in drops]
    changes = [c - 300 if c is not None else 10_000 for c in changes]
    assert sum(d < 0 for d in drops) == 0
    assert np.median(drops) <= 25 and np.median(drops) < np.median(changes) - 5, (drops, changes)


def test_the_drop_test_needs_a_long_history_and_a_sustained_drop():
    assert drop_point([1] * 40 + [0] * 19) == 0  # under 50 older and 10 newer calls: too few to tell
    older = ([1] * 13 + [0]) * 10  # 140 calls delivering 93 % of the time
    assert drop_point(older + [0] * 5 + [1] * 5) == 0  # half of 10 calls failed: not yet
    assert drop_point(older + [0] * 6 + [1] * 4) == 139  # 6 of 10 (7 of 11): a drop, placed where it began
    assert drop_point([1] * 100 + [0] * 4) == 94  # after a flawless history a few failures are a drop
    assert drop_point([0] * 100 + [1] * 30) == 0  # a rise is the change test's business
    assert drop_point([]) == 0 and drop_point([1] * 59) == 0


def test_the_bandit_says_when_the_drop_test_found_a_change():
    bandit, rng = _steady(300)
    calls = _calls_until_changed(bandit, rng, 0.5)
    assert bandit.arms["steady"].dropped is True and calls <= 30, calls
    decision = bandit.choose(["steady", "other"], 1)
    assert decision.explanation["arms"]["steady"]["change_test"] == "drop"
    assert (
        "steady's calls dropped 0 call(s) ago: it is judged on those since" in decision.explanation["reason"]
    )
    assert Bandit.from_json(bandit.to_json()).to_json() == bandit.to_json()
