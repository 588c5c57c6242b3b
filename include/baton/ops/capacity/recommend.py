"""Sizing: each agent's max_concurrency, the pools and the Celery workers that keep queue wait under a target
at the forecast busy hour."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from baton.ops.capacity.common import HOUR_S, MAX_CONCURRENCY, CapacityError
from baton.ops.capacity.demand import Service
from baton.ops.capacity.forecast import Backtest, Forecast, _num, _whole
from baton.ops.capacity.queueing import erlang_c, mean_wait, smallest_concurrency

# --- recommendation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentPlan:
    """One agent's recommendation and the reasoning behind it (every figure the wait was computed from)."""

    agent: str
    max_concurrency: int  # also the size of its pool
    pool_slots: int
    peak_calls_per_hour: float  # the forecast hours' ``quantile``
    quantile: float
    service_mean_s: float
    service_cv: float
    offered_load: float  # erlangs: peak calls/s x mean service time (the slots busy on average at the peak)
    target_wait_s: float
    predicted_wait_s: float  # at max_concurrency
    predicted_wait_below_s: float | None  # at max_concurrency - 1; None when that cannot keep up, or is 0
    p_wait: float  # Erlang C at max_concurrency: the share of calls that wait at all
    utilisation: float
    model: str
    reason: str


@dataclass(frozen=True)
class Recommendation:
    """Every agent's plan, and the Celery workers needed to hold all their slots with headroom."""

    agents: dict[str, AgentPlan]
    target_wait_s: float
    quantile: float
    worker_concurrency: int
    headroom: float
    slots: int  # sum of max_concurrency: agent tasks that may run at once
    busy_slots: float  # sum of offered loads at each agent's peak: slots busy on average
    celery_workers: int
    reason: str
    forecast_errors: dict[str, Backtest | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (inf and NaN as None)."""
        data = asdict(self)
        data["agents"] = {
            name: {k: _num(v) for k, v in plan.items()} for name, plan in data["agents"].items()
        }
        data["forecast_errors"] = {
            name: None if bt is None else {k: _num(v) for k, v in bt.items()}
            for name, bt in data["forecast_errors"].items()
        }
        return {k: _num(v) if not isinstance(v, dict) else v for k, v in data.items()}


def recommend(
    forecasts: Mapping[str, Forecast],
    service: Mapping[str, Service],
    *,
    target_wait_s: float,
    quantile: float = 0.95,
    worker_concurrency: int = 16,
    headroom: float = 0.25,
    limit: int = MAX_CONCURRENCY,
) -> Recommendation:
    """Each agent's ``max_concurrency`` (and pool size), and the Celery workers, for a mean queue wait of at
    most ``target_wait_s`` in the forecast's busy hour.

    ``forecasts``: each agent's forecast of its calls per hour. ``service``: each agent's
    :class:`Service` (``Demand.service``). The busy hour is the ``quantile`` of the forecast hours (0.95:
    the target holds in 19 hours of 20 if the forecast is right). ``worker_concurrency`` is each Celery
    worker's slots (Airflow's default, 16); the workers are the sum of all agents' slots (an agent task
    holds a worker slot while its call runs), plus ``headroom`` for the other tasks, over
    ``worker_concurrency``, rounded up. This is safe when every agent peaks in the same hour, and
    generous when they do not.
    """
    # long: each agent sized, then the pools and workers, with the reasoning
    target = _positive(target_wait_s, "target_wait_s")
    if not 0 < quantile <= 1:
        raise CapacityError(
            f"quantile={quantile!r} is not in (0, 1] (fix: give the busy hour's quantile, like 0.95)"
        )
    slots_per_worker = _whole(worker_concurrency, "worker_concurrency", 1, 10_000)
    if not (isinstance(headroom, int | float) and math.isfinite(headroom) and headroom >= 0):
        raise CapacityError(
            f"headroom={headroom!r} is not a fraction >= 0 (fix: give one like 0.25 for 25 %)"
        )
    if not forecasts:
        raise CapacityError(
            "no agent to size: forecasts is empty (fix: forecast each agent's calls per hour)"
        )
    plans = {
        agent: _plan(agent, fc, _service_of(agent, service), target, quantile, limit)
        for agent, fc in sorted(forecasts.items())
    }
    slots = sum(plan.max_concurrency for plan in plans.values())
    busy = sum(plan.offered_load for plan in plans.values())
    workers = max(1, math.ceil(slots * (1 + headroom) / slots_per_worker))
    reason = (
        f"{slots} agent slots (the sum of max_concurrency) + {headroom:.0%} headroom = "
        f"{slots * (1 + headroom):.1f} task slots / {slots_per_worker} per worker -> {workers} Celery worker(s); "
        f"{busy:.1f} slots are busy on average at the agents' peaks"
    )
    return Recommendation(
        agents=plans,
        target_wait_s=target,
        quantile=quantile,
        worker_concurrency=slots_per_worker,
        headroom=float(headroom),
        slots=slots,
        busy_slots=busy,
        celery_workers=workers,
        reason=reason,
        forecast_errors={agent: fc.backtest for agent, fc in sorted(forecasts.items())},
    )


def _positive(value: Any, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value > 0)
    ):
        raise CapacityError(f"{name}={value!r} is not a number of seconds > 0 (fix: give one, like 5)")
    return float(value)


def _service_of(agent: str, service: Mapping[str, Service]) -> Service:
    if agent not in service:
        raise CapacityError(
            f"agent '{agent}' has a forecast but no service times (fix: pass its Service, from "
            "hourly(...).service of its calls)"
        )
    profile = service[agent]
    if not (
        math.isfinite(profile.mean_s)
        and profile.mean_s >= 0
        and math.isfinite(profile.cv)
        and profile.cv >= 0
    ):
        raise CapacityError(
            f"agent '{agent}': service {profile} is not a finite mean >= 0 and cv >= 0 (fix: measure it with hourly())"
        )
    return profile


def _plan(
    agent: str, fc: Forecast, profile: Service, target: float, quantile: float, limit: int
) -> AgentPlan:
    peak = float(np.quantile(fc.mean, quantile))
    rate = peak / HOUR_S
    load = rate * profile.mean_s
    servers = smallest_concurrency(rate, profile.mean_s, profile.cv, target, limit=limit)
    wait = mean_wait(servers, rate, profile.mean_s, profile.cv)
    below = mean_wait(servers - 1, rate, profile.mean_s, profile.cv) if servers > 1 else math.inf
    model = "M/M/c (Erlang C)" if profile.cv == 1 else "M/G/c (Erlang C x (1 + cv^2) / 2, Allen-Cunneen)"
    if load <= 0:
        reason = f"no calls forecast in the busy hour (q{quantile:g}): 1 slot"
    else:
        at_below = "cannot keep up" if not math.isfinite(below) else f"wait {below:.2f} s on average"
        fewer = f"with {servers - 1} slot(s) calls {at_below}, " if servers > 1 else ""
        reason = (
            f"busy hour (q{quantile:g} of {fc.mean.size} forecast hours): {peak:,.1f} calls/h x "
            f"{profile.mean_s:.2f} s (cv {profile.cv:.2f}) = {load:.2f} erlangs; {fewer}with {servers} "
            f"{wait:.2f} s <= target {target:g} s"
        )
    return AgentPlan(
        agent=agent,
        max_concurrency=servers,
        pool_slots=servers,
        peak_calls_per_hour=peak,
        quantile=quantile,
        service_mean_s=profile.mean_s,
        service_cv=profile.cv,
        offered_load=load,
        target_wait_s=target,
        predicted_wait_s=wait,
        predicted_wait_below_s=below if math.isfinite(below) else None,
        p_wait=erlang_c(servers, load),
        utilisation=load / servers,
        model=model,
        reason=reason,
    )
