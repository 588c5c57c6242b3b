"""An arm's belief: the Normal-Gamma prior every agent starts from, and the discounted sums its calls add
(see ``bandit``, whose Thompson sampling draws from the posterior they give)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from baton.errors import OptimizeError
from baton.optimize import _state

TINY = 1e-12  # an effective count under this is no evidence at all


@dataclass(frozen=True)
class Prior:
    """What an arm is believed to earn before any call: a Normal-Gamma prior with mean ``mean``, worth
    ``strength`` calls, and a prior reward variance of about ``rate / (shape - 1)``."""

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
    """An arm's discounted sums: effective calls, total reward, total squared reward; its last outcome."""

    n: float = 0.0
    total: float = 0.0
    squares: float = 0.0
    last_at: float | None = None

    def scale(self, factor: float) -> None:
        self.n *= factor
        self.total *= factor
        self.squares *= factor

    def posterior(self, prior: Prior) -> tuple[float, float, float]:
        """(mean, scale, degrees of freedom) of the Student t over the arm's mean reward."""
        kappa = prior.strength + self.n
        mean = (prior.strength * prior.mean + self.total) / kappa
        shape = prior.shape + self.n / 2
        rate = prior.rate
        if self.n > TINY:
            average = self.total / self.n
            spread = max(0.0, self.squares - self.total * average)
            rate += 0.5 * spread + prior.strength * self.n * (average - prior.mean) ** 2 / (2 * kappa)
        return mean, math.sqrt(rate / (shape * kappa)), 2 * shape
