"""What one agent call earned: an ``Outcome`` turned into a reward in [0, 1], weighted by ``prefer``.

A call *delivers* when it succeeded and its output was valid (it passed the step's schema). A call that
did not deliver earns 0: the time and the money it took bought nothing, so a cheap agent that fails
is not cheap. A call that delivered earns::

    w_quality * feedback + w_speed * speed + w_cost * cheapness

- ``feedback`` is the person's verdict on the output in [0, 1] where there is one, else 1;
- ``speed = L / (L + latency)`` and ``cheapness = C / (C + cost)``, where ``L`` and ``C`` are the
  references of the step's candidates (``Scale``): a call as fast as the reference scores 0.5, one twice
  as slow 0.33, an instant one 1 (the same for cost; a free call, a deterministic skill, scores 1). The
  form is bounded without clipping and needs no fastest or cheapest agent;
- the weights are ``coordination.routing.WEIGHTS`` (reliability, free capacity, speed, cheapness) for the
  same ``prefer``, without free capacity, rescaled to sum to 1: load is not something a call earns; the
  caller leaves an agent with no free slot out of the choice instead.

``Scale`` keeps, per agent, the latency and the cost of its last ``window`` delivered calls; a
reference is the median over the candidates of each one's median. Medians, so one stuck call does not
move it; a median per agent first, so the agent that gets most of the traffic does not set the scale
alone, and moving traffic from one agent to another does not change every reward.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from baton.errors import OptimizeError
from baton.optimize import _state

# (quality, speed, cheapness): coordination.routing.WEIGHTS without the free-capacity column, rescaled
# (tests/optimize/test_reward.py checks that the two tables agree).
_ROUTING_WEIGHTS = {  # reliability, free capacity, speed, cheapness
    "balanced": (0.35, 0.35, 0.15, 0.15),
    "reliable": (0.60, 0.25, 0.10, 0.05),
    "fast": (0.20, 0.30, 0.45, 0.05),
    "cheap": (0.20, 0.25, 0.05, 0.50),
}
WEIGHTS: dict[str, tuple[float, float, float]] = {
    prefer: (rel / (rel + speed + cost), speed / (rel + speed + cost), cost / (rel + speed + cost))
    for prefer, (rel, _free, speed, cost) in _ROUTING_WEIGHTS.items()
}
WINDOW = 50  # delivered calls per agent that a reference looks back on
MAX_WINDOW = 10_000


def weights(prefer: str, where: str = "prefer") -> tuple[float, float, float]:
    """(quality, speed, cheapness) weights of ``prefer``."""
    try:
        return WEIGHTS[prefer]
    except (KeyError, TypeError):
        raise OptimizeError(
            f"{where}: unknown preference {str(prefer)[:40]!r} (fix: use one of {', '.join(sorted(WEIGHTS))})"
        ) from None


def _amount(name: str, value: Any, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise OptimizeError(
            f"outcome.{name}: must be a finite number of {unit} >= 0, got {value!r} "
            f"(fix: record the call's measured {unit}; 0 when it has none)"
        )
    return float(value)


@dataclass(frozen=True)
class Outcome:
    """One agent call as routing learns from it.

    :param success: the call returned an answer (no error, no timeout).
    :param valid: its output passed the step's schema (True when the step has none).
    :param latency_s: seconds the call took.
    :param cost: what it cost, in the roster's currency.
    :param feedback: a person's verdict on the output in [0, 1] (1 good, 0 bad), where there is one.
    """

    success: bool
    valid: bool = True
    latency_s: float = 0.0
    cost: float = 0.0
    feedback: float | None = None

    def __post_init__(self) -> None:
        for name in ("success", "valid"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise OptimizeError(
                    f"outcome.{name}: must be true or false, got {getattr(self, name)!r} (fix: pass a bool)"
                )
        object.__setattr__(self, "latency_s", _amount("latency_s", self.latency_s, "seconds"))
        object.__setattr__(self, "cost", _amount("cost", self.cost, "cost"))
        if self.feedback is not None:
            value = self.feedback
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not 0 <= value <= 1
            ):
                raise OptimizeError(
                    f"outcome.feedback: must be a number in [0, 1] or none, got {value!r} "
                    "(fix: map the person's verdict to 0 (bad) .. 1 (good), or leave it out)"
                )
            object.__setattr__(self, "feedback", float(value))

    @property
    def delivered(self) -> bool:
        return bool(self.success and self.valid)


def relative(value: float, reference: float | None) -> float:
    """``reference / (reference + value)`` in [0, 1]: 0.5 at the reference, 1 at zero. With no
    reference yet, 0.5; with a reference of 0 (free or instant calls), 1 for 0 and 0 otherwise."""
    if reference is None:
        return 0.5
    if reference + value == 0:
        return 1.0
    return reference / (reference + value)


def reward(
    outcome: Outcome, prefer: str, latency_ref: float | None, cost_ref: float | None
) -> dict[str, float]:
    """The reward of ``outcome`` under ``prefer`` and its parts: ``{"reward", "quality", "speed",
    "cheapness"}``, each in [0, 1] (the parts are 0 when the call did not deliver)."""
    w_quality, w_speed, w_cost = weights(prefer)
    if not outcome.delivered:
        return {"reward": 0.0, "quality": 0.0, "speed": 0.0, "cheapness": 0.0}
    quality = 1.0 if outcome.feedback is None else outcome.feedback
    speed = relative(outcome.latency_s, latency_ref)
    cheapness = relative(outcome.cost, cost_ref)
    value = w_quality * quality + w_speed * speed + w_cost * cheapness
    return {"reward": min(1.0, max(0.0, value)), "quality": quality, "speed": speed, "cheapness": cheapness}


class Scale:
    """The recent latency and cost of each agent's delivered calls; the candidates' references."""

    def __init__(self, window: int = WINDOW):
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= MAX_WINDOW:
            raise OptimizeError(
                f"scale.window: must be a whole number of calls in [1, {MAX_WINDOW}], got {window!r} "
                f"(fix: keep the default, {WINDOW})"
            )
        self.window = window
        self.latency: dict[str, deque[float]] = {}
        self.cost: dict[str, deque[float]] = {}
        self.medians: dict[
            str, tuple[float, float]
        ] = {}  # each agent's (latency, cost) medians, kept up to date

    def observe(self, arm: str, outcome: Outcome) -> None:
        """Remember a delivered call's latency and cost (other calls say nothing about them)."""
        if not outcome.delivered:
            return
        if arm not in self.latency and len(self.latency) >= _state.MAX_ARMS:
            raise OptimizeError(
                f"scale: at most {_state.MAX_ARMS} agents, and {str(arm)[:40]!r} would be one more "
                "(fix: route among fewer agents, by capability)"
            )
        self.latency.setdefault(arm, deque(maxlen=self.window)).append(outcome.latency_s)
        self.cost.setdefault(arm, deque(maxlen=self.window)).append(outcome.cost)
        self._remember(arm)

    def _remember(self, arm: str) -> None:
        # statistics.median, not np.median: the same value (the mean of the middle two, in the same
        # float arithmetic) in 2 us instead of 14 for a window of 100; this runs on every routed call
        self.medians[arm] = (statistics.median(self.latency[arm]), statistics.median(self.cost[arm]))

    def references(self, arms: Iterable[str] | None = None) -> tuple[float | None, float | None]:
        """(latency, cost) references over ``arms`` (all known agents when None): the median of the
        per-agent medians, None when none of them has delivered yet."""
        names = list(self.medians) if arms is None else [a for a in arms if a in self.medians]
        if not names:
            return None, None
        return (
            statistics.median([self.medians[a][0] for a in names]),
            statistics.median([self.medians[a][1] for a in names]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "latency_s": {arm: list(values) for arm, values in self.latency.items()},
            "cost": {arm: list(values) for arm, values in self.cost.items()},
        }

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any], where: str = "scale") -> Scale:
        """The scale ``to_json`` wrote; OptimizeError naming the field when ``data`` is not one."""
        data = _state.only(_state.parse(data, where), {"window", "latency_s", "cost"}, where)
        window = int(_state.number(data["window"], f"{where}.window", 1, MAX_WINDOW, whole=True))
        scale = cls(window)
        columns: dict[str, dict[str, list[float]]] = {}
        for column in ("latency_s", "cost"):
            values = data[column]
            if not isinstance(values, Mapping) or len(values) > _state.MAX_ARMS:
                raise OptimizeError(
                    f"{where}.{column}: must be an object of at most {_state.MAX_ARMS} agent -> values "
                    f"{_state.FIX}"
                )
            columns[column] = {}
            for arm, series in values.items():
                here = f"{where}.{column}.{_state.name(arm, f'{where}.{column}')}"
                if not isinstance(series, list) or len(series) > window:
                    raise OptimizeError(f"{here}: must be a list of at most {window} numbers {_state.FIX}")
                columns[column][arm] = [_state.number(v, f"{here}[{i}]") for i, v in enumerate(series)]
        latency, cost = columns["latency_s"], columns["cost"]
        if set(latency) != set(cost) or any(len(latency[a]) != len(cost[a]) for a in cost):
            raise OptimizeError(
                f"{where}: latency_s and cost must hold the same agents with as many values each {_state.FIX}"
            )
        for arm in cost:
            scale.latency[arm] = deque(latency[arm], maxlen=window)
            scale.cost[arm] = deque(cost[arm], maxlen=window)
            if cost[arm]:
                scale._remember(arm)
        return scale
