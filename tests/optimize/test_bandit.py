"""Thompson sampling with change detection: forgetting, determinism, the explanation, and its state as a
projection."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest

from baton.errors import OptimizeError
from baton.optimize.bandit import Bandit, Prior

FIX = "(fix: rebuild the state from the outcomes in the event store)"
REWARD_FIX = "(fix: pass what reward.reward() gave the outcome, a number in [0, 1])"
AGENT_FIX = "(fix: pass the agent's name as the roster spells it)"


def _stream(
    seed: int, count: int = 300, arms: int = 4, timed: bool = True
) -> list[tuple[str, float, float | None]]:
    """Outcomes as the event store would give them: some arms busier, timestamps mostly rising with
    late arrivals (a call that finished after a later one)."""
    rng = np.random.default_rng(seed)
    names = [f"agent_{i}" for i in range(arms)]
    rows = []
    for i in range(count):
        arm = names[min(int(rng.exponential(1.2)), arms - 1)]
        at = 1_700_000_000 + 60.0 * i - (rng.uniform(0, 600) if rng.random() < 0.2 else 0)
        rows.append((arm, float(rng.beta(2, 3)), at if timed else None))
    return rows


def _arms(bandit: Bandit) -> dict[str, tuple[float, float, float, float | None]]:
    return {name: (a.n, a.total, a.squares, a.last_at) for name, a in bandit.arms.items()}


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"half_life_calls": 7, "recheck_calls": 50, "half_life_seconds": 3600},
        {"half_life_calls": None, "recheck_calls": None, "false_alarm": None},
        {"false_alarm": 0.2},
    ],
)
def test_updating_one_outcome_at_a_time_equals_the_state_built_from_all(params):
    rows = _stream(seed=3)
    incremental = Bandit(**params)
    for arm, reward, at in rows:
        incremental.update(arm, reward, at)
    batch = Bandit.from_outcomes(rows, **params)
    assert (
        (incremental.calls, incremental.clock) == (batch.calls, batch.clock) == (300, max(r[2] for r in rows))
    )
    assert set(incremental.arms) == set(batch.arms)
    assert batch.to_json() == incremental.to_json()  # from_outcomes replays update: the very same state
    if params.get("false_alarm", 0.01) is None and params.get("recheck_calls", 1000) is None:
        counts = {name: sum(1 for r in rows if r[0] == name) for name in batch.arms}
        assert {name: a.n for name, a in batch.arms.items()} == pytest.approx(counts)  # nothing forgotten


def test_a_late_outcome_counts_as_old_as_it_is():
    bandit = Bandit(half_life_calls=None, recheck_calls=None, half_life_seconds=100)
    bandit.update("a", 1.0, at=1000.0)
    bandit.update("b", 1.0, at=1100.0)  # a ages by one half-life
    bandit.update("a", 0.0, at=1000.0)  # finished before b's: already one half-life old
    assert (bandit.arms["a"].n, bandit.arms["a"].total, bandit.arms["b"].n) == (1.0, 0.5, 1.0)
    assert bandit.clock == 1100.0 and bandit.arms["a"].last_at == 1000.0


def test_outcomes_thousands_of_half_lives_apart_forget_the_older_instead_of_failing():
    """0.5 ** (a day / a minute) is 0.0 in a float: its log (an arm's age) raised 'math domain error'."""
    bandit = Bandit(half_life_seconds=60)
    bandit.update("a", 1.0, at=0.0)
    bandit.update("b", 0.5, at=86_400.0)  # a day later: a's call is 1,440 half-lives old
    assert bandit.arms["a"].n == pytest.approx(0.0, abs=1e-250) and bandit.arms["b"].n == 1.0
    bandit.update("a", 0.0, at=0.0)  # a late outcome, as old: weighs nothing
    assert bandit.arms["a"].n == pytest.approx(0.0, abs=1e-250) and bandit.arms["a"].last_at == 0.0
    bandit.update("a", 0.25, at=1e12)  # the latest time an outcome may have
    assert bandit.arms["a"].n == pytest.approx(1.0) and bandit.arms["b"].n == pytest.approx(0.0, abs=1e-250)
    restored = Bandit.from_json(json.dumps(bandit.to_json(), allow_nan=False))
    assert restored.to_json() == bandit.to_json()
    assert restored.choose(["a", "b"], 3).arm in {"a", "b"}


@pytest.mark.parametrize("before", [0, 1, 2])
def test_a_change_that_keeps_calls_older_than_a_float_can_weigh_counts_them_as_nothing(before):
    """Calls at time 0, then failures a million half-lives apart: the change test cuts the delivering calls
    and keeps the failures from time 0, whose weight exp(-age) is 0.0 in a float (its log is not taken)."""
    bandit = Bandit(half_life_seconds=1, recheck_calls=None)
    for _ in range(20):
        bandit.update("a", 0.8, at=0.0)
    for _ in range(before):
        bandit.update("a", 0.0, at=0.0)
    for k in range(1, 60):
        bandit.update("a", 0.0, at=1e6 * k)
    arm = bandit.arms["a"]
    assert arm.changed is not None and arm.hits == 0.0 and arm.n == pytest.approx(1.0)
    assert math.isfinite(arm.aged) and arm.half_lives() == pytest.approx(0.0, abs=1e-290)


def test_the_state_round_trips_through_json_and_goes_on_the_same():
    rows = _stream(seed=5)
    whole = Bandit(half_life_seconds=86_400)
    half = Bandit(half_life_seconds=86_400)
    for arm, reward, at in rows[:150]:
        whole.update(arm, reward, at)
        half.update(arm, reward, at)
    text = json.dumps(half.to_json(), allow_nan=False)
    restored = Bandit.from_json(text)
    assert restored.to_json() == half.to_json()
    for arm, reward, at in rows[150:]:
        whole.update(arm, reward, at)
        restored.update(arm, reward, at)
    assert restored.to_json() == whole.to_json()  # exactly: JSON keeps every bit of a float
    available = ["agent_0", "agent_1", "agent_2", "agent_3"]
    assert restored.choose(available, 11) == whole.choose(available, 11)


def test_the_same_seed_gives_the_same_choice_whatever_order_the_arms_come_in():
    bandit = Bandit.from_outcomes(_stream(seed=8))
    first = bandit.choose(["agent_0", "agent_1", "agent_2"], np.random.default_rng(42))
    again = bandit.choose(["agent_2", "agent_0", "agent_1", "agent_0"], np.random.default_rng(42))
    assert first == again
    bandit.temperature = 1.0  # plain draws: here agent_2 leads by 4 of its tempered spreads at the default
    draws = {bandit.choose(["agent_0", "agent_1", "agent_2"], seed).arm for seed in range(200)}
    assert len(draws) > 1  # it does explore


def test_only_an_available_arm_is_ever_chosen():
    bandit = Bandit()
    for _ in range(100):
        bandit.update("best", 0.95)
        bandit.update("fine", 0.6)
    rng = np.random.default_rng(1)
    chosen = {bandit.choose(["fine", "new"], rng).arm for _ in range(300)}
    assert chosen == {"fine", "new"}  # the best is busy (its breaker open, no slot): never picked


def test_a_new_arm_starts_from_the_prior_and_gets_tried():
    bandit = Bandit()
    rng = np.random.default_rng(2)
    for _ in range(300):
        arm = bandit.choose(["a", "b"], rng).arm
        bandit.update(arm, 0.7 if arm == "a" else 0.4)
    picks = [bandit.choose(["a", "b", "newcomer"], rng).arm for _ in range(30)]
    # tried early, with no outcome yet: believed to be the step's average agent (every call delivered so
    # far, earning 0.70 on average), with a wide spread, so it draws above "a" about half the time
    assert 10 <= picks.count("newcomer") <= 20
    newcomer = bandit.posterior("newcomer")
    assert newcomer["alpha"] + newcomer["beta"] == pytest.approx(10.0)  # the pooled prior, worth 10 calls
    assert newcomer["value"] == pytest.approx(0.6974, abs=1e-4) and newcomer["n_eff"] == 0.0
    assert (newcomer["scale"], newcomer["df"]) == (pytest.approx(0.2236, abs=1e-4), 4.0)


def test_an_arm_that_degrades_is_judged_on_its_recent_calls():
    bandit = Bandit(half_life_calls=30, recheck_calls=None)
    for _ in range(500):
        bandit.update("a", 0.9)
        bandit.update("b", 0.6)
    assert bandit.posterior("a")["n_eff"] == pytest.approx(1 / (1 - 0.5 ** (1 / 30)), rel=1e-3)  # ~43.8
    bad_calls = 0
    while bandit.posterior("a")["mean"] >= bandit.posterior("b")["mean"]:
        bandit.update("a", 0.1)
        bad_calls += 1
    assert bad_calls == 21  # 0.9 -> 0.1: its mean falls under b's after 21 bad calls of its own
    assert bandit.posterior("b")["n_eff"] == pytest.approx(43.8, abs=0.1)  # the other one kept what it knew


def test_the_explanation_holds_each_arms_posterior_and_draw():
    bandit = Bandit()
    for reward in (0.8, 0.9, 0.7):
        bandit.update("a", reward)
    decision = bandit.choose(["a", "b"], 7)
    explanation = json.loads(json.dumps(decision.explanation, allow_nan=False))
    assert set(explanation) == {
        "policy",
        "chosen",
        "reason",
        "arms",
        "half_life_calls",
        "recheck_calls",
        "half_life_seconds",
        "prior",
        "temperature",
        "false_alarm",
    }
    assert explanation["policy"] == "discounted-thompson" and explanation["chosen"] == decision.arm
    assert explanation["false_alarm"] == 0.01
    assert explanation["temperature"] == 0.3
    assert explanation["prior"] == {"mean": 0.5, "strength": 1.0, "shape": 2.0, "rate": 0.1}
    assert set(explanation["arms"]["a"]) == {
        "mean",
        "delivers",
        "value",
        "scale",
        "n_eff",
        "spread",
        "draw",
        "changed_calls_ago",
        "change_test",
    }
    assert explanation["arms"]["a"]["changed_calls_ago"] is None
    assert explanation["arms"]["a"]["change_test"] is None
    assert explanation["arms"]["b"]["n_eff"] == 0.0
    chosen = explanation["arms"][decision.arm]
    assert chosen["draw"] == max(arm["draw"] for arm in explanation["arms"].values())
    assert explanation["reason"] == (
        f"drew {chosen['draw']:.3f}, the highest of 2 available "
        f"(posterior mean {chosen['mean']:.3f} over {chosen['n_eff']:.1f} effective call(s))"
    )


def _half_lives(steps_ago: np.ndarray, half_life: float) -> float:
    """The mean age, in half-lives, of calls made ``steps_ago``, each weighted by its discount since."""
    weights = 0.5 ** (steps_ago / half_life)
    return float((weights * steps_ago).sum() / weights.sum() / half_life)


def test_an_arms_draws_widen_as_its_evidence_ages_up_to_its_whole_spread():
    bandit = Bandit(recheck_calls=100)
    for _ in range(50):
        bandit.update("a", 0.8)
    for _ in range(100):
        bandit.update("b", 0.7)  # a's 50 calls are now 100 to 149 calls of the step old, b's 0 to 99
    expected_a = _half_lives(np.arange(100, 150, dtype=float), 100)
    expected_b = _half_lives(np.arange(0, 100, dtype=float), 100)
    assert bandit.arms["a"].half_lives() == pytest.approx(expected_a, rel=1e-9)  # ~1.24
    assert bandit.arms["b"].half_lives() == pytest.approx(expected_b, rel=1e-9)  # ~0.41
    spread = bandit.temperatures(["a", "b", "newcomer"])
    assert spread.tolist() == pytest.approx(
        [0.3 * np.sqrt(1 + expected_a), 0.3 * np.sqrt(1 + expected_b), 0.3], rel=1e-9
    )
    decision = bandit.choose(["a", "b"], 5)
    assert decision.explanation["arms"]["a"]["spread"] == round(0.3 * np.sqrt(1 + expected_a), 4)
    for _ in range(2000):  # 20 half-lives more: a's draws take its whole spread, no more
        bandit.update("b", 0.7)
    assert bandit.temperatures(["a"]).tolist() == [1.0]
    assert Bandit.from_json(json.dumps(bandit.to_json())).temperatures(["a", "b"]).tolist() == (
        bandit.temperatures(["a", "b"]).tolist()
    )
    still = Bandit(recheck_calls=None)  # nothing forgets, nothing ages
    for arm in ["a"] * 50 + ["b"] * 500:
        still.update(arm, 0.5)
    assert still.temperatures(["a", "b"]).tolist() == [0.3, 0.3]


def test_an_agent_judged_on_old_unlucky_calls_is_tried_again_as_they_age():
    """b delivered 4 of its first 10 calls, then could not be called for 1,000 (its breaker open, no slot) while
    a delivered 75 %; b now delivers 95 %. Its draws widen as those 10 calls age, so it is tried sooner: over
    10 seeds it gets more of the next 500 calls, and in the worst seed still 208 of them. At the draws' 0.3 of
    the spread for every arm (no widening), two seeds gave it 4 and 44. (No change detection: it is not what
    is tested, and it makes each call dearer.)"""
    calls = {}
    for widen in (True, False):
        calls[widen] = []
        for seed in range(10):
            rng, world = np.random.default_rng(seed), np.random.default_rng(seed + 100)
            bandit = Bandit(false_alarm=None)
            if not widen:
                bandit.temperatures = lambda names: np.full(len(names), 0.3)
            for delivered in [1, 0, 1, 0, 0, 1, 0, 1, 0, 0]:
                bandit.update("b", 0.8 * delivered)
            for _ in range(1000):
                bandit.update("a", 0.8 * (world.random() < 0.75))
            to_b = 0
            for _ in range(500):
                arm = bandit.choose(["a", "b"], rng).arm
                to_b += arm == "b"
                bandit.update(arm, 0.8 * (world.random() < (0.75 if arm == "a" else 0.95)))
            calls[widen].append(to_b)
    assert np.mean(calls[True]) > np.mean(calls[False]) + 50, calls  # 381.7 against 276.4
    assert min(calls[True]) > 150 and sorted(calls[False])[:2] == [4, 44], calls


def test_a_stored_state_from_before_the_evidences_age_gets_it_from_its_recent_calls():
    bandit = Bandit()
    for i in range(300):
        bandit.update("a" if i % 3 else "b", 0.5)
    state = bandit.to_json()
    for arm in state["arms"].values():
        del arm["aged"]
    restored = Bandit.from_json(json.dumps(state))
    for name in ("a", "b"):  # every call is still in recent (under 1,000 and no change): the same age
        assert restored.arms[name].aged == pytest.approx(bandit.arms[name].aged, rel=1e-9)
    state["arms"]["a"]["recent"][0][1] = 1e12  # born after now: counted as new, not an overflow
    assert Bandit.from_json(json.dumps(state)).arms["a"].aged >= 0


@pytest.mark.parametrize(
    ("aged", "message"),
    [
        (-1, "bandit.arms.a.aged: must be a finite number [0, 1e+15], got -1"),
        (1e16, "bandit.arms.a.aged: must be a finite number [0, 1e+15], got 1e+16"),
        ("old", "bandit.arms.a.aged: must be a finite number [0, 1e+15], got 'old'"),
        (True, "bandit.arms.a.aged: must be a finite number [0, 1e+15], got True"),
    ],
)
def test_a_stored_evidence_age_out_of_range_is_refused(aged, message):
    with pytest.raises(OptimizeError) as caught:
        Bandit.from_json(_state(arms__a__aged=aged))
    assert str(caught.value).startswith(message), str(caught.value)


def test_timestamps_may_be_aware_datetimes():
    bandit = Bandit(half_life_seconds=60)
    bandit.update("a", 1.0, datetime(2026, 1, 1, tzinfo=UTC))
    bandit.update("a", 1.0, datetime(2026, 1, 1, 0, 1, tzinfo=UTC))
    # a minute (one half-life) later: aged by time and by one call of the step
    assert bandit.arms["a"].n == pytest.approx(0.5 * 0.5 ** (1 / 1000) + 1, rel=1e-12)
    with pytest.raises(OptimizeError) as caught:
        bandit.update("a", 1.0, datetime(2026, 1, 1))
    assert str(caught.value) == (
        "bandit.update: at: a datetime without a time zone, datetime.datetime(2026, 1, 1, 0, 0) "
        "(fix: pass an aware UTC datetime)"
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda b: b.update("a", 1.5),
            f"bandit.update: reward: must be a finite number [0, 1], got 1.5 {REWARD_FIX}",
        ),
        (
            lambda b: b.update("a", float("nan")),
            f"bandit.update: reward: must be a finite number [0, 1], got nan {REWARD_FIX}",
        ),
        (
            lambda b: b.update("", 0.5),
            f"bandit.update: arm: an agent's name must be a text of 1 to 200 characters, got '' {AGENT_FIX}",
        ),
        (
            lambda b: b.choose([]),
            "bandit.choose: no agent is available (fix: the caller leaves out agents that are busy, over budget or "
            "whose breaker is open, and reports that none is left)",
        ),
        (
            lambda b: b.choose("agent_a"),
            "bandit.choose: available must be a list of agent names, got str (fix: pass the names of the agents "
            "that may be called now)",
        ),
        (
            lambda b: b.choose([f"a{i}" for i in range(1001)]),
            "bandit.choose: 1,001 agents, over the limit of 1000 (fix: route among fewer agents, by capability)",
        ),
        (
            lambda b: b.choose(["x" * 201]),
            f"bandit.choose: available: an agent's name must be a text of 1 to 200 characters, got "
            f"'{'x' * 56}... {AGENT_FIX}",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_field(call, message):
    with pytest.raises(OptimizeError) as caught:
        call(Bandit())
    assert str(caught.value) == message


def test_bad_settings_are_refused_with_the_default_to_keep():
    with pytest.raises(OptimizeError) as caught:
        Bandit(half_life_calls=0)
    assert str(caught.value) == (
        "bandit.half_life_calls: must be a number > 0 (or none: never), got 0 "
        "(fix: leave it out: a detected change forgets)"
    )
    with pytest.raises(OptimizeError) as caught:
        Bandit(prior=Prior(rate=0))
    assert str(caught.value) == "prior.rate: must be > 0, got 0 (fix: keep the default, 0.1)"
    with pytest.raises(OptimizeError) as caught:
        Bandit.from_json(_state(prior__mean=2))
    assert (
        str(caught.value)
        == "bandit.prior.mean: must be a finite number [0, 1], got 2 (fix: keep the default, 0.5)"
    )
    with pytest.raises(OptimizeError) as caught:
        Bandit.from_json(_state(prior__shape=0))
    assert str(caught.value) == "bandit.prior.shape: must be > 0, got 0 (fix: keep the default, 2.0)"
    with pytest.raises(OptimizeError) as caught:
        Bandit(half_life_seconds=60).update("a", 0.5)
    assert str(caught.value) == (
        "bandit.update: at: an outcome needs its time when half_life_seconds is set (fix: pass the outcome's timestamp)"
    )


def test_an_arm_over_the_limit_is_refused():
    bandit = Bandit.from_outcomes([(f"a{i}", 0.5, None) for i in range(1000)])
    with pytest.raises(OptimizeError) as caught:
        bandit.update("one_more", 0.5)
    assert str(caught.value) == (
        "bandit.update: arm: a policy learns over at most 1000 agents, and 'one_more' would be one more "
        "(fix: route among fewer agents, by capability)"
    )


_DROPPED = "must be true (the last change was found by the drop test, so changed is set) or false"


def _state(**changes) -> str:
    state = Bandit.from_outcomes([("a", 0.5, 10.0), ("b", 0.25, 20.0)]).to_json()
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = state
        for key in parents:
            node = node[key]
        if value is ...:
            del node[leaf]
        else:
            node[leaf] = value
    return json.dumps(state)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ("not json", "bandit: not valid JSON: Expecting value: line 1 column 1 (char 0)"),
        ("[1, 2]", "bandit: must be a JSON object, got list"),
        ('{"a": Infinity}', "bandit: not valid JSON: Infinity is not a number JSON allows"),
        ("[" * 100_000, "bandit: nested too deeply to be a state"),
        (" " * 10_000_001, "bandit: 10,000,001 bytes, over the limit of 10,000,000"),
        (
            _state(version=1),
            "bandit: a 'discounted-thompson' state of version 1, not 'discounted-thompson' version 2",
        ),
        (_state(calls=...), "bandit: missing field(s) calls"),
        (
            _state(extra=1),
            "bandit: unknown field(s) extra (expected arms, calls, clock, false_alarm, half_life_calls, "
            "half_life_seconds, policy, prior, recheck_calls, temperature, version)",
        ),
        (_state(calls=-1), "bandit.calls: must be a whole number [0, 9.22337e+18], got -1"),
        (_state(arms__a__n=-0.5), "bandit.arms.a.n: must be a finite number >= 0, got -0.5"),
        (
            _state(arms__a__total=5),
            "bandit.arms.a: rewards are in [0, 1], so squares <= total <= hits <= n, but n is "
            "0.999307, hits 0.999307, total 5 and squares 0.249827",
        ),
        (_state(arms__a__squares="x"), "bandit.arms.a.squares: must be a finite number >= 0, got 'x'"),
        (
            _state(arms__a__why=1),
            "bandit.arms.a: unknown field(s) why (expected age, aged, changed, dropped, hits, last_at, n, recent, "
            "squares, total)",
        ),
        (_state(arms__a__recent=[[0.5]]), "bandit.arms.a.recent[0]: must be a [reward, born] pair"),
        (
            _state(arms__a__recent=[[0.5, 0.0]] * 1001),
            "bandit.arms.a.recent: must be a list of at most 1000 calls",
        ),
        (_state(arms__a__recent="0.5"), "bandit.arms.a.recent: must be a list of at most 1000 calls"),
        (
            _state(arms__a__recent=[[2, 0]]),
            "bandit.arms.a.recent[0][0]: must be a finite number [0, 1], got 2",
        ),
        (_state(arms__a__changed=5), "bandit.arms.a.changed: must be a whole number [0, 2], got 5"),
        (_state(arms__a__dropped="yes"), f"bandit.arms.a.dropped: {_DROPPED}, got 'yes'"),
        (_state(arms__a__dropped=1), f"bandit.arms.a.dropped: {_DROPPED}, got 1"),
        (_state(arms__a__dropped=None), f"bandit.arms.a.dropped: {_DROPPED}, got None"),
        (_state(arms__a__dropped=[True]), f"bandit.arms.a.dropped: {_DROPPED}, got [True]"),
        (_state(arms__a__dropped=True), f"bandit.arms.a.dropped: {_DROPPED}, got True"),  # changed is null
        (  # a mapping: JSON text with NaN is refused before the field is read
            json.loads(_state(arms__a__changed=1, arms__a__dropped=float("nan"))),
            f"bandit.arms.a.dropped: {_DROPPED}, got nan",
        ),
        (
            _state(arms__a__changed=1, arms__a__dropped=1e308),
            f"bandit.arms.a.dropped: {_DROPPED}, got 1e+308",
        ),
        (_state(arms__a__changed=1, arms__a__dropped=-1), f"bandit.arms.a.dropped: {_DROPPED}, got -1"),
        (_state(false_alarm=0.9), "bandit.false_alarm: must be a finite number [1e-09, 0.5], got 0.9"),
        (_state(arms=[]), "bandit.arms: must be an object of at most 1000 agents"),
        (_state(temperature=0), "bandit.temperature: must be a finite number [0.05, 1], got 0"),
        (_state(temperature="hot"), "bandit.temperature: must be a finite number [0.05, 1], got 'hot'"),
    ],
)
def test_a_malformed_state_is_refused_naming_the_field(state, message):
    with pytest.raises(OptimizeError) as caught:
        Bandit.from_json(state)
    assert str(caught.value) == f"{message} {FIX}"


def test_a_state_written_before_the_drop_test_reads_as_no_drop():
    state = json.loads(_state(arms__a__changed=1))
    for arm in state["arms"].values():
        del arm["dropped"]
    bandit = Bandit.from_json(json.dumps(state))
    assert [arm.dropped for arm in bandit.arms.values()] == [False, False]
    assert bandit.arms["a"].changed == 1
    restored = json.loads(_state(arms__a__changed=1, arms__a__dropped=True))
    assert Bandit.from_json(restored).arms["a"].dropped is True
    assert Bandit.from_json(restored).to_json() == restored


def test_a_state_written_before_change_detection_is_refused_with_the_fix():
    state = json.loads(_state())
    state["version"] = 1
    del state["false_alarm"]
    for arm in state["arms"].values():
        for key in ("hits", "age", "recent", "changed"):
            del arm[key]
    with pytest.raises(OptimizeError) as caught:
        Bandit.from_json(json.dumps(state))
    assert str(caught.value) == (
        f"bandit: a 'discounted-thompson' state of version 1, not 'discounted-thompson' version 2 {FIX}"
    )


def test_the_temperature_tempers_the_draws():
    rows = [("a", 0.7, None)] * 5 + [("a", 0.0, None)]
    spread = {}
    for temperature in (0.35, 0.7):
        bandit = Bandit.from_outcomes(rows, temperature=temperature)
        draws = [bandit.choose(["a"], seed).explanation["arms"]["a"]["draw"] for seed in range(400)]
        spread[temperature] = float(np.std(draws))
    assert spread[0.35] / spread[0.7] == pytest.approx(0.5, abs=0.08)  # half as far from the mean
