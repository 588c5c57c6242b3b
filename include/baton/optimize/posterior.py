"""An arm's belief: whether its next call delivers (a Beta posterior) and what a delivered call earns (a
Normal-Gamma posterior), from the discounted sums its calls add (see ``bandit``, whose Thompson sampling
draws from them).

A reward is 0 exactly when the call did not deliver (``reward``), so it is modelled as ``delivers x
value``: the chance of delivering, over all the arm's calls (those that earned more than 0 are its
*hits*), times the mean reward of the calls that delivered. The chance is a 0/1 outcome, which a Beta
posterior models exactly, and what the spread of rewards mostly is; the value of a delivered call spreads
little (``0.77 +- 0.05``), so its Normal-Gamma posterior narrows fast.

Priors, shared by the step's agents (empirical Bayes): an arm with no call is believed to deliver as often
as the step's calls so far do (worth ``POOLED`` calls) and, when it delivers, to earn what the step's
delivered calls earn (worth ``Prior.strength`` calls). An untried agent is thus the step's average agent
with a wide spread: it draws above the best often enough to be tried within its first few choices, while
one whose first calls failed is not written off, neither by a fixed pessimistic prior nor by its own first
few calls.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from baton.errors import OptimizeError
from baton.optimize import _state
from baton.optimize.change import MAX_RECENT

TINY = 1e-12  # an effective count under this is no evidence at all
# a new arm's chance of delivering is the step's so far, worth this many calls: the agents that can do one
# step deliver at similar rates, so an arm judged on a few unlucky calls stays near the step's average and
# is tried again (at 2, bench/routing.py needed draws tempered only to 0.7 to avoid writing off such arms)
POOLED = 10.0


@dataclass(frozen=True)
class Prior:
    """What a delivered call of an arm is believed to earn before any: a Normal-Gamma prior worth
    ``strength`` calls, with a variance of about ``rate / (shape - 1)``, whose mean is what the step's
    delivered calls earned, ``mean`` counting as one of them (so ``mean`` alone before any)."""

    mean: float = 0.5
    strength: float = 1.0
    shape: float = 2.0
    rate: float = 0.1

    def __post_init__(self) -> None:
        self.check(asdict(self), "prior")

    @staticmethod
    def check(values: Mapping[str, Any], where: str) -> dict[str, float]:
        """``values`` as a prior's fields, or OptimizeError naming the one that is out of range."""
        fix = "(fix: keep the default, {})"
        checked = {"mean": _state.number(values["mean"], f"{where}.mean", 0.0, 1.0, fix=fix.format(0.5))}
        for name in ("strength", "shape", "rate"):
            checked[name] = _state.number(
                values[name], f"{where}.{name}", 0.0, 1e6, fix=fix.format(_DEFAULT[name])
            )
            if checked[name] == 0:
                raise OptimizeError(
                    f"{where}.{name}: must be > 0, got 0 (fix: keep the default, {_DEFAULT[name]})"
                )
        return checked


_DEFAULT = {"strength": 1.0, "shape": 2.0, "rate": 0.1}


@dataclass
class Arm:
    """An arm's discounted sums: effective calls, those that delivered (``hits``), total reward, total
    squared reward, and ``aged``, each call's weight times how much it has been discounted since it was made
    (in nats: ``aged / n`` is how old the evidence is, see ``half_lives``); its last outcome's time; ``age``,
    how much its sums have been discounted (the sum of the log factors), and ``recent``, its calls since its
    last change as ``[reward, born]`` (the weight of one is ``exp(born - age)``), which the change detector
    reads; ``changed``, the step's call at which a change was last detected, and ``dropped``, whether the
    drop test found it (see ``change``)."""

    n: float = 0.0
    hits: float = 0.0
    total: float = 0.0
    squares: float = 0.0
    last_at: float | None = None
    age: float = 0.0
    recent: list[list[float]] = field(default_factory=list)
    changed: int | None = None
    dropped: bool = False
    aged: float = 0.0

    def scale(self, factor: float) -> None:
        self.aged = factor * (self.aged - self.n * math.log(factor))  # each call is older by -log(factor)
        self.n *= factor
        self.hits *= factor
        self.total *= factor
        self.squares *= factor
        self.age -= math.log(factor)

    def add(self, reward: float, weight: float) -> None:
        if weight > 0.0:  # a late outcome (weight < 1) is as old as its discount; one that underflowed adds 0
            self.aged -= weight * math.log(weight)
        self.n += weight
        if reward > 0:
            self.hits += weight
            self.total += weight * reward
            self.squares += weight * reward * reward

    def keep(self, start: int, changed: int, dropped: bool) -> None:
        """Forget the calls before ``recent[start]`` (a change detected at the step's call ``changed``, by
        the drop test or not): the sums are its later calls'."""
        self.recent, self.changed, self.dropped = self.recent[start:], changed, dropped
        self.n = self.hits = self.total = self.squares = self.aged = 0.0
        for reward, born in self.recent:
            self.add(reward, math.exp(born - self.age))

    def half_lives(self) -> float:
        """How old the arm's evidence is: the mean, over its calls by weight, of the half-lives they have been
        discounted by since they were made (0 when nothing discounts, or before any call)."""
        return self.aged / self.n / math.log(2) if self.n > TINY else 0.0

    def delivers(self, a: float, b: float) -> tuple[float, float]:
        """The Beta posterior (alpha, beta) of the chance a call delivers, from a Beta(a, b) prior."""
        return a + self.hits, b + max(0.0, self.n - self.hits)

    def posterior(self, prior: Prior) -> tuple[float, float, float]:
        """(mean, scale, degrees of freedom) of the Student t over the mean reward of a delivered call."""
        kappa = prior.strength + self.hits
        mean = (prior.strength * prior.mean + self.total) / kappa
        shape = prior.shape + self.hits / 2
        rate = prior.rate
        if self.hits > TINY:
            average = self.total / self.hits
            spread = max(0.0, self.squares - self.total * average)
            rate += 0.5 * spread + prior.strength * self.hits * (average - prior.mean) ** 2 / (2 * kappa)
        return mean, math.sqrt(rate / (shape * kappa)), 2 * shape


def pooled(arms: Iterable[Arm], prior: Prior) -> tuple[float, float, Prior]:
    """The step's shared priors: Beta(a, b) over a new arm's chance of delivering, and the prior of what
    a delivered call earns (see the module's docstring)."""
    calls = hits = total = 0.0
    for arm in arms:
        calls, hits, total = calls + arm.n, hits + arm.hits, total + arm.total
    rate = (hits + 1) / (calls + 2)
    value = min(1.0, (total + prior.mean) / (hits + 1))
    return POOLED * rate, POOLED * (1 - rate), replace(prior, mean=value)


def stored_arm(data: Any, here: str, calls: int) -> Arm:
    """One arm of a stored state (``bandit.to_json``), each field checked."""
    fields = {"n", "hits", "total", "squares", "last_at", "age", "recent", "changed"}
    # "dropped" is left out by a state from before the drop test, "aged" by one from before the evidence's age
    data = _state.only(data, fields | {"dropped", "aged"}, here, required=fields)
    dropped = data.get("dropped", False)
    if not isinstance(dropped, bool) or (dropped and data["changed"] is None):
        raise OptimizeError(
            f"{here}.dropped: must be true (the last change was found by the drop test, so changed is set) "
            f"or false, got {_state._shown(dropped)} {_state.FIX}"
        )
    n, hits, total, squares = (
        _state.number(data[key], f"{here}.{key}") for key in ("n", "hits", "total", "squares")
    )
    if (
        hits > n * (1 + 1e-9) + TINY
        or total > hits * (1 + 1e-9) + TINY
        or squares > total * (1 + 1e-9) + TINY
    ):
        raise OptimizeError(
            f"{here}: rewards are in [0, 1], so squares <= total <= hits <= n, but n is {n:g}, hits {hits:g}, "
            f"total {total:g} and squares {squares:g} {_state.FIX}"
        )
    recent = data["recent"]
    if not isinstance(recent, list) or len(recent) > MAX_RECENT:
        raise OptimizeError(f"{here}.recent: must be a list of at most {MAX_RECENT} calls {_state.FIX}")
    for i, pair in enumerate(recent):
        if not isinstance(pair, list) or len(pair) != 2:
            raise OptimizeError(f"{here}.recent[{i}]: must be a [reward, born] pair {_state.FIX}")
        _state.number(pair[0], f"{here}.recent[{i}][0]", 0.0, 1.0)
        _state.number(pair[1], f"{here}.recent[{i}][1]", -1e12, 1e12)
    changed = data["changed"]
    arm = Arm(
        n=n,
        hits=hits,
        total=total,
        squares=squares,
        last_at=_state.optional_number(data["last_at"], f"{here}.last_at", -1e12, 1e12),
        age=_state.number(data["age"], f"{here}.age", 0.0, 1e12),
        recent=[[float(r), float(b)] for r, b in recent],
        changed=None
        if changed is None
        else int(_state.number(changed, f"{here}.changed", 0, calls, whole=True)),
        dropped=dropped,
    )
    arm.aged = _aged(data, arm, here)
    return arm


def _aged(data: Mapping[str, Any], arm: Arm, here: str) -> float:
    """A stored arm's ``aged``: as stored, or, in a state from before it was kept, from its calls since its
    last change (a call is never born after now)."""
    if "aged" in data:
        return _state.number(data["aged"], f"{here}.aged", 0.0, 1e15)
    ages = [max(0.0, arm.age - born) for _, born in arm.recent]
    return sum(math.exp(-old) * old for old in ages)
