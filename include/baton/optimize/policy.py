"""A learned routing policy for one routed step: the step's ``prefer``, the scale its rewards are measured
on, and the bandit that learns from them, kept together as one JSON state.

The caller feeds it every outcome of the step's agent calls in the order the event store holds them
(``observe``) and asks it for an agent among those that may be called now (``choose``). Rebuilding it
from the events, or updating the stored state with each new one, gives the same policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from baton.optimize import _state
from baton.optimize.bandit import Bandit, Decision
from baton.optimize.reward import Outcome, Scale, reward, weights

VERSION = 1


class RoutingPolicy:
    """Learned routing for one step: ``prefer`` weighs the outcomes, ``Bandit`` learns from them."""

    def __init__(self, prefer: str = "balanced", bandit: Bandit | None = None, scale: Scale | None = None):
        weights(prefer, "policy.prefer")  # an unknown preference fails here, naming the known ones
        self.prefer = prefer
        self.bandit = bandit or Bandit()
        self.scale = scale or Scale()

    def observe(self, arm: str, outcome: Outcome, at: float | datetime | None = None) -> dict[str, float]:
        """Learn from one call of ``arm``; the reward it earned and its parts (see ``reward.reward``)."""
        self.bandit.check(arm, at, "observe")  # what the bandit would refuse fails before anything changes
        self.scale.observe(arm, outcome)
        latency_ref, cost_ref = self.scale.references()
        earned = reward(outcome, self.prefer, latency_ref, cost_ref)
        self.bandit.update(arm, earned["reward"], at)
        return earned

    def choose(self, available: Sequence[str], rng: np.random.Generator | int | None = None) -> Decision:
        """An agent among ``available`` and the explanation for ``agent.selected`` (the posterior of each
        candidate, its draw, the preference and the references its rewards were measured against)."""
        decision = self.bandit.choose(available, rng)
        latency_ref, cost_ref = self.scale.references()
        decision.explanation.update(
            prefer=self.prefer,
            references={"latency_s": latency_ref, "cost": cost_ref},
            reason=f"prefer {self.prefer} (learned): {decision.explanation['reason']}",
        )
        return decision

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "prefer": self.prefer,
            "bandit": self.bandit.to_json(),
            "scale": self.scale.to_json(),
        }

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any], where: str = "policy") -> RoutingPolicy:
        """The policy ``to_json`` wrote; OptimizeError naming the field when ``data`` is not one."""
        data = _state.only(_state.parse(data, where), {"version", "prefer", "bandit", "scale"}, where)
        _state.number(data["version"], f"{where}.version", VERSION, VERSION, whole=True)
        return cls(
            prefer=data["prefer"],
            bandit=Bandit.from_json(data["bandit"], f"{where}.bandit"),
            scale=Scale.from_json(data["scale"], f"{where}.scale"),
        )
