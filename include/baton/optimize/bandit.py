"""Thompson sampling with change detection over the agents that may do a step now.

Each agent (an *arm*) has a posterior over its mean reward (rewards in [0, 1], see ``reward``): the chance
that its call delivers (a Beta posterior) times the mean reward of a delivered call (a Normal-Gamma
posterior), see ``posterior``. Both come from discounted sums per arm (effective calls, those that
delivered, total and squared reward), so the state is small, exact to store as JSON, and updated in
O(arms) per outcome. ``choose`` draws one value from each available arm's posterior and takes the highest
(Thompson sampling): an arm is chosen as often as it is probably the best, so exploration fades where the
evidence is clear and goes on where it is not.

Following agents that change:

- **change detection** (``false_alarm``, default 0.01; see ``change``): after each call of an agent a
  Bernoulli GLR test asks whether its calls since its last change delivered at one rate or at two; when
  two, the agent's calls before the change are forgotten and it is judged on those after. So an agent's
  memory is long while it is stable (its posterior narrows and exploration stops) and short once it
  changed. A second, faster test (``change.drop_point``) watches an agent with a long history for a
  sustained drop in its delivery rate over its last 10 to 200 calls, so an agent that degrades loses its
  traffic within a dozen or so calls. A detected change, and which test found it, is said in the
  ``agent.selected`` explanation.
- ``recheck_calls`` (default 1000): every outcome also ages every arm a little (half after 1,000 calls of
  the step), so what is known of an agent nobody calls fades slowly and it is tried again: an agent that
  recovered, or improved while it was not called, gets its traffic back.
- **the evidence's age**: the draws are tempered (``TEMPERATURE``), and an arm's draw widens with how old
  its evidence is (the mean half-lives its calls have been discounted by since they were made, ``Arm.aged``):
  an agent that looked a little worse, or that a change left with a few unlucky calls, and that is then seldom
  called, is judged on old calls, and its draws widen until it is tried again (``temperatures``).
- ``half_life_calls`` (optional): an outcome also counts half once its agent has had this many calls
  since (forgetting at a fixed rate, the policy before change detection: it never let a posterior narrow
  past ~1.44 half-lives of calls, so it kept exploring in stable times).
- ``half_life_seconds`` (optional): outcomes also age with time (by their timestamps), for steps that
  run rarely.

A new arm has the step's shared prior (``posterior.pooled``): it draws high often enough to be tried
within its first few choices, so no agent starves. The caller passes only the agents that may be called
now (capable, breaker closed, a free slot, within budget): the policy never picks another.

Determinism: ``choose`` takes a seeded ``numpy.random.Generator`` (or a seed) and draws for the arms in
name order, so the same state and the same seed give the same choice whatever order the caller lists
the arms in. The state is a projection of the outcomes in the order they were stored: ``from_outcomes``
replays them through ``update`` (a detected change depends on the order, so there is no closed form),
and ``to_json`` / ``from_json`` round-trip it exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from baton.errors import OptimizeError
from baton.optimize import _state
from baton.optimize.change import FALSE_ALARM, MAX_RECENT, change_point, drop_point
from baton.optimize.posterior import Arm, Prior, pooled, stored_arm

VERSION = 2  # 1: one Normal-Gamma posterior over the reward, no change detection
POLICY = "discounted-thompson"
# Draws from the posteriors scaled to 0.3 of their spread (tempered Thompson sampling, which Chapelle and Li
# found worth it in practice), widened by the age of each arm's evidence: times sqrt(1 + its mean half-lives), at
# most the whole spread (see ``temperatures``); a new arm's delivery prior is worth posterior.POOLED = 10 calls.
# bench/routing.py on seeds 1000..1099, on which nothing was tuned: 12.3 % of round-robin's regret (0.5 and no
# widening: 13.7 %). What else was measured, and why it was not taken: docs/architecture.md, "Learned routing:
# what was measured".
TEMPERATURE = 0.3
REWARD_FIX = "(fix: pass what reward.reward() gave the outcome, a number in [0, 1])"
# the least a discount by time weighs: past ~1,000 half-lives the evidence is gone (0.5 ** 1074 is 0.0 in a float,
# whose log the arms' ages would take)
MIN_FACTOR = 1e-300


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
    """Thompson sampling with change detection; see the module's docstring.

    :param half_life_calls: an outcome counts half after this many later calls of its own agent (None:
        only a detected change forgets them).
    :param recheck_calls: ... and half after this many later calls of the step to any agent.
    :param half_life_seconds: ... and half after this many seconds (None: time does not matter).
    :param temperature: the posteriors' spread is scaled by this when drawing (1: plain Thompson
        sampling; under 1 explores less, see ``TEMPERATURE``).
    :param false_alarm: the change detector's chance of ever firing on an agent that does not change
        (None: no change detection).
    """

    def __init__(
        self,
        half_life_calls: float | None = None,
        recheck_calls: float | None = 1000,
        half_life_seconds: float | None = None,
        prior: Prior | None = None,
        temperature: float = TEMPERATURE,
        false_alarm: float | None = FALSE_ALARM,
    ):
        self.half_life_calls = _half_life(
            half_life_calls, "bandit.half_life_calls", "leave it out: a detected change forgets"
        )
        self.recheck_calls = _half_life(recheck_calls, "bandit.recheck_calls", "keep the default, 1000")
        self.half_life_seconds = _half_life(
            half_life_seconds, "bandit.half_life_seconds", "use e.g. 604800 for a week, or leave it out"
        )
        self.prior = prior or Prior()
        self.temperature = _state.number(
            temperature, "bandit.temperature", 0.05, 1.0, fix=f"(fix: keep the default, {TEMPERATURE})"
        )
        self.false_alarm = None
        if false_alarm is not None:
            self.false_alarm = _state.number(
                false_alarm, "bandit.false_alarm", 1e-9, 0.5, fix=f"(fix: keep the default, {FALSE_ALARM})"
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
                    aged = max(MIN_FACTOR, 0.5 ** ((seconds - self.clock) / self.half_life_seconds))
                    for other in self.arms.values():
                        other.scale(aged)
                self.clock = seconds
            elif self.half_life_seconds is not None:  # an outcome that arrives late is as old as it is
                weight = max(MIN_FACTOR, 0.5 ** ((self.clock - seconds) / self.half_life_seconds))
            stats.last_at = seconds if stats.last_at is None else max(stats.last_at, seconds)
        if self.recheck_calls is not None:
            for other in self.arms.values():
                other.scale(self.all_factor)
        if self.half_life_calls is not None:
            stats.scale(self.own_factor)
        stats.add(reward, weight)
        self.calls += 1
        if self.false_alarm is not None:
            stats.recent.append([reward, stats.age + math.log(weight)])
            del stats.recent[:-MAX_RECENT]
            delivered = [r > 0 for r, _ in stats.recent]
            start = change_point(delivered, self.false_alarm)
            if start:
                stats.keep(start, changed=self.calls, dropped=False)
                delivered = delivered[start:]  # the calls kept: the drop test reads the same
            start = drop_point(delivered)
            if start:
                stats.keep(start, changed=self.calls, dropped=True)

    @classmethod
    def from_outcomes(cls, outcomes: Iterable[tuple[str, float, float | None]], **params: Any) -> Bandit:
        """The state after ``outcomes`` (arm, reward, timestamp) in their order: each one ``update``d in
        turn (a detected change depends on what came before it, so there is no closed form)."""
        bandit = cls(**params)
        for i, row in enumerate(outcomes):
            if not isinstance(row, tuple | list) or len(row) != 3:
                raise OptimizeError(
                    f"outcomes[{i}]: must be (arm, reward, timestamp), got {_state._shown(row)} "
                    "(fix: pass one tuple per outcome)"
                )
            arm, reward, at = row
            _state.number(reward, f"outcomes[{i}].reward", 0.0, 1.0, fix=REWARD_FIX)
            bandit.check(arm, at, f"outcomes[{i}]")
            bandit.update(arm, reward, at)
        return bandit

    # --- choosing -------------------------------------------------------------------------------

    def posterior(self, arm: str) -> dict[str, float]:
        """The arm's posterior: its mean reward (the chance it delivers times the mean reward of a delivered
        call), the Beta over that chance, the Student t (mean, scale, degrees of freedom) over that value,
        and its effective number of calls."""
        return self._posterior(arm, pooled(self.arms.values(), self.prior))

    def _posterior(self, arm: str, shared: tuple[float, float, Prior]) -> dict[str, float]:
        """``posterior`` from the step's shared priors (``pooled``, the same for every arm of a choice)."""
        stats = self.arms.get(arm, Arm())
        a, b, prior = shared
        alpha, beta = stats.delivers(a, b)
        value, scale, df = stats.posterior(prior)
        delivers = alpha / (alpha + beta)
        return {
            "mean": delivers * value,
            "alpha": alpha,
            "beta": beta,
            "value": value,
            "scale": scale,
            "df": df,
            "n_eff": stats.n,
        }

    def choose(self, available: Sequence[str], rng: np.random.Generator | int | None = None) -> Decision:
        """Draw from each available arm's posterior and take the highest; the choice and its explanation.

        :param available: the agents that may be called now (the caller leaves out those that are not
            capable, whose breaker is open, that have no free slot or no budget left).
        :param rng: a numpy Generator or a seed (None: fresh entropy).
        """
        names = self._available(available)
        generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        shared = pooled(self.arms.values(), self.prior)  # once per choice, not once per arm
        posteriors = [self._posterior(name, shared) for name in names]
        alpha, beta = (np.array([p[key] for p in posteriors]) for key in ("alpha", "beta"))
        delivers = alpha / (alpha + beta)
        spread = self.temperatures(names)
        chance = np.clip(delivers + spread * (generator.beta(alpha, beta) - delivers), 0.0, 1.0)
        value = np.array([p["value"] for p in posteriors]) + spread * np.array(
            [p["scale"] for p in posteriors]
        ) * generator.standard_t(np.array([p["df"] for p in posteriors]))
        draws = chance * value
        best = int(np.argmax(draws))
        return Decision(arm=names[best], explanation=self._explain(names, posteriors, draws, spread, best))

    def temperatures(self, names: Sequence[str]) -> np.ndarray:
        """How much of each arm's posterior spread its draw takes: ``temperature`` times sqrt(1 + the mean
        half-lives its evidence has been discounted by since it was made), at most 1. An arm called all the
        time is judged on fresh calls; one seldom called (an agent that looked a little worse, or that a
        change left with a few unlucky calls) is judged on old ones, and what it does now may differ: its
        draws widen as its evidence ages, so it is tried again. Nothing widens when nothing forgets."""
        return np.array(
            [
                min(1.0, self.temperature * math.sqrt(1 + self.arms[n].half_lives()))
                if n in self.arms
                else self.temperature
                for n in names
            ]
        )

    def _available(self, available: Sequence[str]) -> list[str]:
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
        return names

    def _explain(
        self, names: list[str], posteriors: list[dict], draws: np.ndarray, spread: np.ndarray, best: int
    ) -> dict:
        """The ``agent.selected`` explanation: each candidate's posterior, the share of its spread its draw
        took, its draw, and the changes seen."""
        arms = {}
        for name, p, draw, tempered in zip(names, posteriors, draws, spread, strict=True):
            changed = self.arms[name].changed if name in self.arms else None
            arms[name] = {
                "mean": round(p["mean"], 4),
                "delivers": round(p["alpha"] / (p["alpha"] + p["beta"]), 4),
                "value": round(p["value"], 4),
                "scale": round(p["scale"], 4),
                "n_eff": round(p["n_eff"], 2),
                "spread": round(float(tempered), 4),
                "draw": round(float(draw), 4),
                "changed_calls_ago": None if changed is None else self.calls - changed,
                "change_test": None if changed is None else ("drop" if self.arms[name].dropped else "glr"),
            }
        chosen = arms[names[best]]
        reason = (
            f"drew {chosen['draw']:.3f}, the highest of {len(names)} available "
            f"(posterior mean {chosen['mean']:.3f} over {chosen['n_eff']:.1f} effective call(s))"
        )
        changes = [
            f"{name}'s calls {'dropped' if self.arms[name].dropped else 'changed'} "
            f"{arm['changed_calls_ago']} call(s) ago: it is judged on those since"
            for name, arm in arms.items()
            if arm["changed_calls_ago"] is not None
        ]
        if changes:
            reason += "; " + "; ".join(changes)
        return {"policy": POLICY, "chosen": names[best], "reason": reason, "arms": arms, **self.settings()}

    # --- storing --------------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        return {
            "half_life_calls": self.half_life_calls,
            "recheck_calls": self.recheck_calls,
            "half_life_seconds": self.half_life_seconds,
            "prior": asdict(self.prior),
            "temperature": self.temperature,
            "false_alarm": self.false_alarm,
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
        """The bandit ``to_json`` wrote; OptimizeError naming the field when ``data`` is not one (a state
        of version 1, before change detection, is refused: rebuild it from the events)."""
        data = _state.parse(data, where)
        if data.get("version") != VERSION or data.get("policy") != POLICY:
            raise OptimizeError(
                f"{where}: a {data.get('policy')!r} state of version {data.get('version')!r}, not {POLICY!r} "
                f"version {VERSION} {_state.FIX}"
            )
        keys = {"version", "policy", "half_life_calls", "recheck_calls", "half_life_seconds", "prior"}
        data = _state.only(data, keys | {"temperature", "false_alarm", "calls", "clock", "arms"}, where)
        prior = _state.only(data["prior"], {"mean", "strength", "shape", "rate"}, f"{where}.prior")
        bandit = cls(
            half_life_calls=data["half_life_calls"],
            recheck_calls=data["recheck_calls"],
            half_life_seconds=data["half_life_seconds"],
            prior=Prior(**Prior.check(prior, f"{where}.prior")),
            temperature=_state.number(data["temperature"], f"{where}.temperature", 0.05, 1.0),
            false_alarm=_state.optional_number(data["false_alarm"], f"{where}.false_alarm", 1e-9, 0.5),
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
            bandit.arms[name] = stored_arm(arm, here, bandit.calls)
        return bandit
