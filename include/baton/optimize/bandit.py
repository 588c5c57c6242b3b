"""Discounted Thompson sampling over the agents that may do a step now.

Each agent (an *arm*) has a posterior over its mean reward (rewards in [0, 1], see ``reward``): a
Normal-Gamma posterior over the mean and the spread of its rewards, whose marginal for the mean is a
Student t. It is computed from three discounted sums per arm, ``n`` (the effective number of calls),
``total`` (of rewards) and ``squares`` (of squared rewards), so the state is small, exact to store as
JSON, and updated in O(arms) per outcome. ``choose`` draws one value from each available arm's
posterior and takes the highest (Thompson sampling): an arm is chosen as often as it is probably the
best, so exploration fades where the evidence is clear and goes on where it is not.

Forgetting, so that the policy follows agents that change:

- ``half_life_calls`` (default 30): an outcome counts half once its agent has had 30 calls since. An
  agent that degrades is judged on its recent calls and loses its traffic within tens of them, while
  the others keep what is known of them: a *global* discount (every outcome ages every arm) would wipe
  out what is known of the agents that are rarely called and force them to be tried again and again.
- ``recheck_calls`` (default 1000): every outcome also ages every arm a little (half after 1,000 calls of
  the step), so what is known of an agent nobody calls fades slowly and it is tried again: an agent that
  recovered gets its traffic back.
- ``half_life_seconds`` (optional): outcomes also age with time (by their timestamps), for steps that
  run rarely.

Why a Normal-Gamma posterior and not a Beta one: a Beta posterior over fractional rewards treats each
call as a coin flip, whose variance, m(1 - m), is several times the real spread of rewards such as
"0 when it fails, 0.77 +- 0.05 when it delivers"; the Normal-Gamma posterior learns each arm's spread and
stops exploring sooner once the arms are told apart.

A new arm has only the prior (mean 0.5, a wide spread): it draws high often enough to be tried within
its first few choices, so no agent starves. The caller passes only the agents that may be called now
(capable, breaker closed, a free slot, within budget): the policy never picks another.

Determinism: ``choose`` takes a seeded ``numpy.random.Generator`` (or a seed) and draws for the arms in
name order, so the same state and the same seed give the same choice whatever order the caller lists
the arms in. The state is a projection of the outcomes in the order they were stored: ``update`` one at
a time and ``from_outcomes`` all at once (a closed form) give the same state, and ``to_json`` /
``from_json`` round-trip it exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from baton.errors import OptimizeError
from baton.optimize import _state
from baton.optimize.posterior import TINY, Arm, Prior

VERSION = 1
POLICY = "discounted-thompson"
# Draws from the posteriors scaled to 0.7 of their spread (tempered Thompson sampling, which Chapelle and Li
# found worth it in practice): with the forgetting above an arm's posterior never narrows past ~44
# effective calls, and plain draws kept sending a fifth of the calls to arms a few points worse.
# bench/routing.py, 10 seeds: regret vs round-robin 22 % at 1.0, 18 % at 0.7; the median calls to move off
# the degraded agent 8 and 18, its share of its incident's calls 8 % and 7 %. Under 0.5 changes are missed.
TEMPERATURE = 0.7
REWARD_FIX = "(fix: pass what reward.reward() gave the outcome, a number in [0, 1])"


@dataclass(frozen=True)
class Decision:
    """The chosen arm and why: a JSON-ready explanation for the ``agent.selected`` event."""

    arm: str
    explanation: dict[str, Any] = field(default_factory=dict)


def _seconds(at: float | datetime | None, where: str) -> float | None:
    if at is None:
        return None
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise OptimizeError(
                f"{where}: a datetime without a time zone, {at!r} (fix: pass an aware UTC datetime)"
            )
        return at.timestamp()
    return _state.number(
        at, where, -1e12, 1e12, fix="(fix: pass seconds since the epoch, or an aware datetime)"
    )


def _half_life(value: Any, where: str, fix: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1e12:
        raise OptimizeError(f"{where}: must be a number > 0 (or none: never), got {value!r} (fix: {fix})")
    return float(value)


class Bandit:
    """Discounted Thompson sampling; see the module's docstring.

    :param half_life_calls: an outcome counts half after this many later calls of its own agent.
    :param recheck_calls: ... and half after this many later calls of the step to any agent.
    :param half_life_seconds: ... and half after this many seconds (None: time does not matter).
    :param temperature: the posteriors' spread is scaled by this when drawing (1: plain Thompson
        sampling; under 1 explores less, see ``TEMPERATURE``).
    """

    def __init__(
        self,
        half_life_calls: float | None = 30,
        recheck_calls: float | None = 1000,
        half_life_seconds: float | None = None,
        prior: Prior | None = None,
        temperature: float = TEMPERATURE,
    ):
        self.half_life_calls = _half_life(half_life_calls, "bandit.half_life_calls", "keep the default, 30")
        self.recheck_calls = _half_life(recheck_calls, "bandit.recheck_calls", "keep the default, 1000")
        self.half_life_seconds = _half_life(
            half_life_seconds, "bandit.half_life_seconds", "use e.g. 604800 for a week, or leave it out"
        )
        self.prior = prior or Prior()
        self.temperature = _state.number(
            temperature, "bandit.temperature", 0.05, 1.0, fix=f"(fix: keep the default, {TEMPERATURE})"
        )
        if self.temperature < 0.05:
            raise OptimizeError(
                f"bandit.temperature: must be at least 0.05 (fix: keep the default, {TEMPERATURE})"
            )
        self.arms: dict[str, Arm] = {}
        self.calls = 0
        self.clock: float | None = None

    # --- learning -------------------------------------------------------------------------------

    @property
    def own_factor(self) -> float:
        return 1.0 if self.half_life_calls is None else 0.5 ** (1 / self.half_life_calls)

    @property
    def all_factor(self) -> float:
        return 1.0 if self.recheck_calls is None else 0.5 ** (1 / self.recheck_calls)

    def check(self, arm: str, at: float | datetime | None, where: str = "bandit.update") -> float | None:
        """Whether an outcome of ``arm`` at ``at`` can be learned, changing nothing: the time in seconds,
        or OptimizeError naming what is wrong."""
        _state.name(arm, f"{where}: arm", fix=_state.AGENT_FIX)
        if arm not in self.arms and len(self.arms) >= _state.MAX_ARMS:
            raise OptimizeError(
                f"{where}: arm: a policy learns over at most {_state.MAX_ARMS} agents, and {arm[:40]!r} would be "
                f"one more (fix: route among fewer agents, by capability)"
            )
        seconds = _seconds(at, f"{where}: at")
        if self.half_life_seconds is not None and seconds is None:
            raise OptimizeError(
                f"{where}: at: an outcome needs its time when half_life_seconds is set "
                "(fix: pass the outcome's timestamp)"
            )
        return seconds

    def update(self, arm: str, reward: float, at: float | datetime | None = None) -> None:
        """Learn that ``arm`` earned ``reward`` (in [0, 1]) at ``at`` (seconds since the epoch, or an
        aware datetime; required when ``half_life_seconds`` is set)."""
        reward = _state.number(reward, "bandit.update: reward", 0.0, 1.0, fix=REWARD_FIX)
        seconds = self.check(arm, at)
        stats = self.arms.setdefault(arm, Arm())
        weight = 1.0
        if seconds is not None:
            if self.clock is None or seconds > self.clock:
                if self.clock is not None and self.half_life_seconds is not None:
                    aged = 0.5 ** ((seconds - self.clock) / self.half_life_seconds)
                    for other in self.arms.values():
                        other.scale(aged)
                self.clock = seconds
            elif self.half_life_seconds is not None:  # an outcome that arrives late is as old as it is
                weight = 0.5 ** ((self.clock - seconds) / self.half_life_seconds)
            stats.last_at = seconds if stats.last_at is None else max(stats.last_at, seconds)
        if self.recheck_calls is not None:
            for other in self.arms.values():
                other.scale(self.all_factor)
        stats.scale(self.own_factor)
        stats.n += weight
        stats.total += weight * reward
        stats.squares += weight * reward * reward
        self.calls += 1

    @classmethod
    def from_outcomes(cls, outcomes: Iterable[tuple[str, float, float | None]], **params: Any) -> Bandit:
        """The state after ``outcomes`` (arm, reward, timestamp) in their order, computed at once: the
        weight of an outcome is 0.5 to the power of (its agent's later calls / half_life_calls + all later
        calls / recheck_calls + (the last time - its time) / half_life_seconds)."""
        bandit = cls(**params)
        rows = list(outcomes)
        if not rows:
            return bandit
        times: list[float | None] = []
        for i, (arm, reward, at) in enumerate(rows):
            seconds = bandit.check(arm, at, f"outcomes[{i}]")
            _state.number(reward, f"outcomes[{i}].reward", 0.0, 1.0, fix=REWARD_FIX)
            stats = bandit.arms.setdefault(arm, Arm())
            if seconds is not None:
                stats.last_at = seconds if stats.last_at is None else max(stats.last_at, seconds)
            times.append(seconds)
        names = [arm for arm, _, _ in rows]
        rewards = np.array([float(r) for _, r, _ in rows])
        count = len(rows)
        exponent = np.zeros(count)
        if bandit.recheck_calls is not None:
            exponent += (count - 1 - np.arange(count)) / bandit.recheck_calls
        if bandit.half_life_calls is not None:
            later: dict[str, int] = {}
            own = np.zeros(count)
            for i in range(count - 1, -1, -1):
                own[i] = later.get(names[i], 0)
                later[names[i]] = later.get(names[i], 0) + 1
            exponent += own / bandit.half_life_calls
        known = [t for t in times if t is not None]
        if bandit.half_life_seconds is not None:  # check() made sure every outcome has its time
            exponent += (max(known) - np.array(known)) / bandit.half_life_seconds
        weights = 0.5**exponent
        index = {name: i for i, name in enumerate(bandit.arms)}
        slots = np.array([index[name] for name in names])
        sums = [np.bincount(slots, values, minlength=len(index)) for values in (weights, weights * rewards)]
        squares = np.bincount(slots, weights * rewards * rewards, minlength=len(index))
        for name, i in index.items():
            arm = bandit.arms[name]
            arm.n, arm.total, arm.squares = float(sums[0][i]), float(sums[1][i]), float(squares[i])
        bandit.calls = count
        bandit.clock = max(known) if known else None
        return bandit

    # --- choosing -------------------------------------------------------------------------------

    def posterior(self, arm: str) -> dict[str, float]:
        """The arm's posterior over its mean reward: mean, scale and degrees of freedom of the Student t,
        and its effective number of calls."""
        stats = self.arms.get(arm, Arm())
        mean, scale, df = stats.posterior(self.prior)
        return {"mean": mean, "scale": scale, "df": df, "n_eff": stats.n}

    def choose(self, available: Sequence[str], rng: np.random.Generator | int | None = None) -> Decision:
        """Draw from each available arm's posterior and take the highest; the choice and its explanation.

        :param available: the agents that may be called now (the caller leaves out those that are not
            capable, whose breaker is open, that have no free slot or no budget left).
        :param rng: a numpy Generator or a seed (None: fresh entropy).
        """
        # long: a draw per available arm, and the explanation recorded with the choice
        if isinstance(available, str) or not isinstance(available, Sequence | set | frozenset):
            raise OptimizeError(
                f"bandit.choose: available must be a list of agent names, got {type(available).__name__} "
                "(fix: pass the names of the agents that may be called now)"
            )
        names = sorted({_state.name(a, "bandit.choose: available", fix=_state.AGENT_FIX) for a in available})
        if not names:
            raise OptimizeError(
                "bandit.choose: no agent is available (fix: the caller leaves out agents that are busy, "
                "over budget or whose breaker is open, and reports that none is left)"
            )
        if len(names) > _state.MAX_ARMS:
            raise OptimizeError(
                f"bandit.choose: {len(names):,} agents, over the limit of {_state.MAX_ARMS} "
                "(fix: route among fewer agents, by capability)"
            )
        generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        posteriors = [self.posterior(name) for name in names]
        draws = np.array([p["mean"] for p in posteriors]) + self.temperature * np.array(
            [p["scale"] for p in posteriors]
        ) * generator.standard_t(np.array([p["df"] for p in posteriors]))
        best = int(np.argmax(draws))
        arms = {
            name: {
                "mean": round(p["mean"], 4),
                "scale": round(p["scale"], 4),
                "df": round(p["df"], 2),
                "n_eff": round(p["n_eff"], 2),
                "draw": round(float(draw), 4),
            }
            for name, p, draw in zip(names, posteriors, draws, strict=True)
        }
        chosen = arms[names[best]]
        reason = (
            f"drew {chosen['draw']:.3f}, the highest of {len(names)} available "
            f"(posterior mean {chosen['mean']:.3f} over {chosen['n_eff']:.1f} effective call(s))"
        )
        return Decision(
            arm=names[best],
            explanation={
                "policy": POLICY,
                "chosen": names[best],
                "reason": reason,
                "arms": arms,
                **self.settings(),
            },
        )

    # --- storing --------------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        return {
            "half_life_calls": self.half_life_calls,
            "recheck_calls": self.recheck_calls,
            "half_life_seconds": self.half_life_seconds,
            "prior": asdict(self.prior),
            "temperature": self.temperature,
        }

    def to_json(self) -> dict[str, Any]:
        """The whole state as JSON-ready data (floats round-trip exactly through ``json``)."""
        return {
            "version": VERSION,
            "policy": POLICY,
            **self.settings(),
            "calls": self.calls,
            "clock": self.clock,
            "arms": {name: asdict(arm) for name, arm in self.arms.items()},
        }

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any], where: str = "bandit") -> Bandit:
        """The bandit ``to_json`` wrote; OptimizeError naming the field when ``data`` is not one."""
        keys = {"version", "policy", "half_life_calls", "recheck_calls", "half_life_seconds", "prior"}
        allowed = keys | {"calls", "clock", "arms"}
        # a state written before the temperature existed drew with the plain posteriors: 1
        data = _state.only(_state.parse(data, where), allowed | {"temperature"}, where, required=allowed)
        if data["version"] != VERSION or data["policy"] != POLICY:
            raise OptimizeError(
                f"{where}: a {data['policy']!r} state of version {data['version']!r}, not {POLICY!r} "
                f"version {VERSION} {_state.FIX}"
            )
        prior = _state.only(data["prior"], {"mean", "strength", "shape", "rate"}, f"{where}.prior")
        bandit = cls(
            half_life_calls=data["half_life_calls"],
            recheck_calls=data["recheck_calls"],
            half_life_seconds=data["half_life_seconds"],
            prior=Prior(**Prior.check(prior, f"{where}.prior")),
            temperature=_state.number(data.get("temperature", 1.0), f"{where}.temperature", 0.05, 1.0),
        )
        bandit.calls = int(_state.number(data["calls"], f"{where}.calls", 0, 2**63, whole=True))
        bandit.clock = _state.optional_number(data["clock"], f"{where}.clock", -1e12, 1e12)
        arms = data["arms"]
        if not isinstance(arms, Mapping) or len(arms) > _state.MAX_ARMS:
            raise OptimizeError(
                f"{where}.arms: must be an object of at most {_state.MAX_ARMS} agents {_state.FIX}"
            )
        for name, arm in arms.items():
            here = f"{where}.arms.{_state.name(name, f'{where}.arms')}"
            arm = _state.only(arm, {"n", "total", "squares", "last_at"}, here)
            n = _state.number(arm["n"], f"{here}.n")
            total = _state.number(arm["total"], f"{here}.total")
            squares = _state.number(arm["squares"], f"{here}.squares")
            if total > n * (1 + 1e-9) or squares > total * (1 + 1e-9) + TINY:
                raise OptimizeError(
                    f"{here}: rewards are in [0, 1], so squares <= total <= n, but n is {n:g}, total {total:g} "
                    f"and squares {squares:g} {_state.FIX}"
                )
            last_at = _state.optional_number(arm["last_at"], f"{here}.last_at", -1e12, 1e12)
            bandit.arms[name] = Arm(n=n, total=total, squares=squares, last_at=last_at)
        return bandit
