"""Capacity planning: hourly demand from recorded history, a seasonal forecast with its error
on held-back hours, and the concurrency that keeps queue wait under a target, checked by simulation.

The four parts, each usable alone:

* :func:`hourly` buckets raw records ``(timestamp, key, duration_s)`` (a key is a workflow or an agent)
  into per-key hourly counts and busy seconds, zero-filled, in UTC, with numpy (a million records in
  about a second), and each key's service-time profile (:class:`Service`).
* :func:`forecast` forecasts one hourly series with daily (24 h) and weekly (168 h) seasonality: MSTL
  (statsmodels) splits the history into a trend, a daily and a weekly component; each seasonal component
  goes on as it last was and an exponential-smoothing model (ETS, additive damped trend) carries the
  seasonally adjusted rest; this is Hyndman's "STL + ETS" decomposition forecast with two seasons (FPP3
  §12.1, Bandara et al.'s MSTL), in square-root scale (counts' noise grows with their level) and back
  with a bias adjustment (FPP3 §5.6), so that a sparse series keeps its mean. With two weeks of history
  or less it falls back to the mean of the full weeks hour by hour (seasonal naive), with less than a
  week to the daily season only, with two days or less to the last day or the mean, and it says so in
  :attr:`Forecast.note`. The last hours are held back and forecast from the rest first: the errors on
  them are the forecast's :class:`Backtest` (MAPE, sMAPE, MASE, beside a seasonal-naive baseline's), and
  their spread is the prediction interval (split conformal, in square-root scale so that it widens with
  the level).
* :func:`recommend` sizes each agent: from the forecast's busy hour (a high quantile of the forecast
  hours, not their mean) and the agent's service times, the smallest concurrency whose expected queue
  wait is under the target by Erlang C (M/M/c), corrected for non-exponential service times by
  Allen-Cunneen's ``(1 + cv^2) / 2``; pools are that concurrency, and Celery workers hold every slot
  with headroom. The result is JSON-ready and gives its reasoning (rate, service time, waits at c-1, c).
* :func:`simulate` is a first-come-first-served queue with ``c`` slots: the check of a recommendation.

Errors are :class:`CapacityError` (a :class:`~baton.errors.BatonError`), naming the record or the
argument, what is wrong with it and the fix."""

from baton.ops.capacity.common import (
    DAY,
    FIELDS,
    HEADLINE,
    HOUR_S,
    MAX_CELLS,
    MAX_CONCURRENCY,
    MAX_HISTORY_HOURS,
    MAX_HORIZON_HOURS,
    SEASONAL_WINDOW,
    WEEK,
    CapacityError,
)
from baton.ops.capacity.demand import Demand, Service, hourly
from baton.ops.capacity.forecast import Backtest, Forecast, forecast
from baton.ops.capacity.queueing import erlang_c, mean_wait, smallest_concurrency
from baton.ops.capacity.recommend import AgentPlan, Recommendation, recommend
from baton.ops.capacity.simulation import simulate

__all__ = [
    "AgentPlan",
    "Backtest",
    "CapacityError",
    "DAY",
    "Demand",
    "FIELDS",
    "Forecast",
    "HEADLINE",
    "HOUR_S",
    "MAX_CELLS",
    "MAX_CONCURRENCY",
    "MAX_HISTORY_HOURS",
    "MAX_HORIZON_HOURS",
    "Recommendation",
    "SEASONAL_WINDOW",
    "Service",
    "WEEK",
    "erlang_c",
    "forecast",
    "hourly",
    "mean_wait",
    "recommend",
    "simulate",
    "smallest_concurrency",
]
