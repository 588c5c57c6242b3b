"""A seasonal forecast of one hourly series (MSTL + ETS, daily and weekly seasons), its error on held-back
hours, and its prediction interval."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.tsa.exponential_smoothing.ets import ETSModel
from statsmodels.tsa.seasonal import MSTL

from baton.ops.capacity.common import (
    DAY,
    HEADLINE,
    MAX_HISTORY_HOURS,
    MAX_HORIZON_HOURS,
    SEASONAL_WINDOW,
    WEEK,
    CapacityError,
)
from baton.ops.capacity.demand import _show

# --- forecast -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backtest:
    """The forecast's error on the last ``hours`` of its history, forecast from the hours before them.

    ``mase`` is the headline: mean absolute error divided by the in-sample error of a seasonal-naive
    forecast (period ``naive_period``). It is defined when hours have no runs (hourly counts of one
    workflow are often 0), it is scale-free (runs and busy seconds compare), and below 1 it says the
    forecast beats repeating last week. ``mape`` (%, over the ``mape_hours`` hours whose actual is not 0,
    None when there is none) is the issue's goal, meaningful for busy series only: an hour with 1 run
    forecast at 3 is 200 %. ``smape`` (%, 0-200; an hour with 0 both forecast and actual counts 0) is
    bounded but just as unstable near 0. ``naive_*`` are the same errors of the seasonal-naive forecast
    on the same hours, the baseline to beat.
    """

    hours: int
    method: str
    mape: float | None
    mape_hours: int
    smape: float
    mase: float | None
    naive_period: int
    naive_mape: float | None
    naive_mase: float | None
    headline: str = HEADLINE


@dataclass(frozen=True)
class Forecast:
    """A forecast of one hourly series: the point forecast ``mean`` for each hour of ``index``, and an
    interval ``[lower, upper]`` meant to hold ``level`` of the hours (NaN when no hour could be held back).

    ``method`` is what forecast it, ``note`` why it is a fallback (or ""), ``interval`` how the interval
    was made, ``backtest`` the error on held-back history (None with a single hour of history), and
    ``history_hours`` how many hours of history it read.
    """

    name: str
    index: pd.Index
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float
    method: str
    note: str
    interval: str
    backtest: Backtest | None
    history_hours: int

    def frame(self) -> pd.DataFrame:
        """The hours as a DataFrame (mean, lower, upper)."""
        return pd.DataFrame({"mean": self.mean, "lower": self.lower, "upper": self.upper}, index=self.index)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the method, the note, the backtest and every hour (NaN as None)."""
        hours = [
            {"hour": _label(when), "mean": _num(m), "lower": _num(lo), "upper": _num(hi)}
            for when, m, lo, hi in zip(self.index, self.mean, self.lower, self.upper, strict=True)
        ]
        return {
            "name": self.name,
            "method": self.method,
            "note": self.note,
            "level": self.level,
            "interval": self.interval,
            "history_hours": self.history_hours,
            "backtest": None
            if self.backtest is None
            else {k: _num(v) for k, v in asdict(self.backtest).items()},
            "hours": hours,
        }


def _label(when: Any) -> Any:
    return when.isoformat() if isinstance(when, pd.Timestamp) else int(when)


def _num(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class _Fit:
    mean: np.ndarray
    method: str
    note: str = ""


def forecast(
    series: pd.Series | Sequence[float] | np.ndarray,
    horizon_hours: int,
    *,
    level: float = 0.9,
    holdout_hours: int | None = None,
    max_history_hours: int = MAX_HISTORY_HOURS,
) -> Forecast:
    """Forecast an hourly series ``horizon_hours`` ahead, with a ``level`` prediction interval and the
    error on held-back history.

    ``series``: hourly values >= 0 (a column of :class:`Demand`, whose hourly UTC index the forecast
    continues; or any sequence, indexed by position). Only its last ``max_history_hours`` are read.
    The last ``holdout_hours`` (default: a week, or half the history when it is shorter than two weeks)
    are held back, forecast from the rest and compared (:class:`Backtest`); their errors make the
    interval (so it is the spread of errors up to a week ahead, whatever the horizon).

    Methods by history length: more than two weeks, MSTL with daily and weekly seasons + ETS; one to two
    weeks, the mean of the full weeks hour by hour (seasonal naive); more than two days, MSTL with the
    daily season only; one day or more, the last day repeated; less, the mean. A constant
    series (all zero, say) is forecast as that constant.
    """
    # long: the fallbacks by history length, each said in the result
    name, values, index = _series(series)
    horizon = _whole(horizon_hours, "horizon_hours", 1, MAX_HORIZON_HOURS)
    if not 0 < level < 1:
        raise CapacityError(f"level={level!r} is not a probability (fix: give one between 0 and 1, like 0.9)")
    history = _whole(max_history_hours, "max_history_hours", 1, 10**7)
    read = values[-history:]
    hold = min(WEEK, read.size // 2) if holdout_hours is None else holdout_hours
    hold = _whole(hold, "holdout_hours", 0, max(read.size - 1, 0))
    fit = _fit(read, horizon)
    notes = [fit.note] if fit.note else []
    if read.size < values.size:
        notes.append(f"read the last {read.size:,} of {values.size:,} hours (max_history_hours)")
    backtest, errors = _backtest(read, hold) if hold else (None, None)
    if errors is None:
        lower = upper = np.full(horizon, np.nan)
        interval = "none: no hour of history could be held back to measure the error"
    else:
        lower, upper = _conformal(fit.mean, errors, level)
        interval = (
            f"split conformal: the {level:.0%} quantile of the {errors.size} held-back hours' errors, in "
            "square-root scale"
        )
    return Forecast(
        name=name,
        index=_future(index, values.size, horizon),
        mean=fit.mean,
        lower=lower,
        upper=upper,
        level=level,
        method=fit.method,
        note="; ".join(notes),
        interval=interval,
        backtest=backtest,
        history_hours=int(read.size),
    )


def _whole(value: Any, name: str, least: int, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not least <= value <= most:
        raise CapacityError(
            f"{name}={value!r} is not a whole number from {least:,} to {most:,} (fix: give one)"
        )
    return int(value)


def _series(series: pd.Series | Sequence[float] | np.ndarray) -> tuple[str, np.ndarray, pd.Index]:
    if np.ndim(series) != 1:
        raise CapacityError(
            f"the series has {np.ndim(series)} dimensions, not 1 (fix: forecast one column of hourly(...).counts "
            "at a time)"
        )
    frame = series if isinstance(series, pd.Series) else pd.Series(series, dtype=object)
    name = str(frame.name) if frame.name is not None else "series"
    values = pd.to_numeric(frame, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if values.ndim != 1 or values.size == 0:
        raise CapacityError(f"{name} is empty: there is no history to forecast (fix: record runs first)")
    bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0)))
    if bad.size:
        i = int(bad[0])
        raise CapacityError(
            f"{name}[{_label(frame.index[i])}] is {_show(frame.iloc[i])}: an hourly count or busy time is a "
            "finite number >= 0 (fix: bucket the records with hourly(), which zero-fills missing hours)"
        )
    index = frame.index
    if isinstance(index, pd.DatetimeIndex) and ((index[1:] - index[:-1]) != pd.Timedelta(hours=1)).any():
        raise CapacityError(
            f"{name}'s index is not one row per hour without gaps (fix: bucket the records with hourly())"
        )
    return name, values, index


def _future(index: pd.Index, size: int, horizon: int) -> pd.Index:
    if isinstance(index, pd.DatetimeIndex) and index.size:
        return pd.date_range(index[-1] + pd.Timedelta(hours=1), periods=horizon, freq="h")
    return pd.RangeIndex(size, size + horizon)


def _fit(y: np.ndarray, horizon: int) -> _Fit:
    """The point forecast of ``y`` for ``horizon`` hours, by the richest method its length allows."""
    n = y.size
    if np.ptp(y) == 0:
        return _Fit(np.full(horizon, y[0]), "constant", f"the history is constant ({y[0]:g} every hour)")
    if n > 2 * WEEK:  # MSTL keeps a season only with more than two of its cycles
        return _Fit(_mstl(y, (DAY, WEEK), horizon), "mstl(24,168)+ets")
    if n >= WEEK:
        weeks = n // WEEK
        note = (
            f"two weeks of history or less ({n} h): each hour of the week is the mean of the last {weeks} "
            "week(s) at that hour, no trend"
        )
        return _Fit(
            _naive(y[-weeks * WEEK :].reshape(weeks, WEEK).mean(axis=0), WEEK, horizon), "weekly mean", note
        )
    if n > 2 * DAY:
        note = f"less than a week of history ({n} h): daily seasonality only, no weekly"
        return _Fit(_mstl(y, (DAY,), horizon), "mstl(24)+ets", note)
    if n >= DAY:
        note = f"two days of history or less ({n} h): the last day repeated, no trend, no weekly season"
        return _Fit(_naive(y, DAY, horizon), "seasonal naive(24)", note)
    note = f"less than a day of history ({n} h): the mean of every hour, no seasonality"
    return _Fit(np.full(horizon, y.mean()), "mean", note)


def _mstl(y: np.ndarray, periods: tuple[int, ...], horizon: int) -> np.ndarray:
    """MSTL + ETS in square-root scale (which steadies the noise of counts, so quiet and busy hours weigh
    alike), back to the original scale with the bias adjustment E[y] = E[z]^2 + Var(z)."""
    n, root = y.size, np.sqrt(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' convergence chatter; the backtest measures the result
        parts = MSTL(root, periods=periods, windows=[SEASONAL_WINDOW] * len(periods)).fit()
        seasonal = np.asarray(parts.seasonal, dtype=float).reshape(n, len(periods)).T
        ahead = np.arange(horizon)
        future = sum(season[n - p + ahead % p] for season, p in zip(seasonal, periods, strict=True))
        adjusted = root - seasonal.sum(axis=0)
        model = ETSModel(pd.Series(adjusted), error="add", trend="add", damped_trend=True).fit(disp=False)
        level = np.asarray(model.forecast(horizon), dtype=float)
        spread = float(np.var(np.asarray(model.resid, dtype=float)))
    if not (np.isfinite(level).all() and math.isfinite(spread)):  # ETS failed (a noiseless series)
        level, spread = np.full(horizon, adjusted[-DAY:].mean()), 0.0
    return np.clip(level + future, 0, None) ** 2 + spread


def _naive(y: np.ndarray, period: int, horizon: int) -> np.ndarray:
    """Repeat the last ``period`` hours (the seasonal-naive forecast)."""
    return y[-period:][np.arange(horizon) % period]


def _naive_period(n: int) -> int:
    return WEEK if n > 2 * WEEK else DAY if n > 2 * DAY else 1


def _backtest(y: np.ndarray, hold: int) -> tuple[Backtest, np.ndarray]:
    train, actual = y[:-hold], y[-hold:]
    fit = _fit(train, hold)
    period = _naive_period(train.size)
    naive = _naive(train, period, hold)
    scale = float(np.abs(train[period:] - train[:-period]).mean()) if train.size > period else 0.0
    mape, mape_hours = _mape(actual, fit.mean)
    backtest = Backtest(
        hours=hold,
        method=fit.method,
        mape=mape,
        mape_hours=mape_hours,
        smape=_smape(actual, fit.mean),
        mase=_mase(actual, fit.mean, scale),
        naive_period=period,
        naive_mape=_mape(actual, naive)[0],
        naive_mase=_mase(actual, naive, scale),
    )
    return backtest, np.sqrt(actual) - np.sqrt(fit.mean)


def _mape(actual: np.ndarray, predicted: np.ndarray) -> tuple[float | None, int]:
    busy = actual > 0
    if not busy.any():
        return None, 0
    return float(100 * np.mean(np.abs(actual[busy] - predicted[busy]) / actual[busy])), int(busy.sum())


def _smape(actual: np.ndarray, predicted: np.ndarray) -> float:
    total = np.abs(actual) + np.abs(predicted)
    ratio = np.divide(2 * np.abs(actual - predicted), total, out=np.zeros_like(total), where=total > 0)
    return float(100 * ratio.mean())


def _mase(actual: np.ndarray, predicted: np.ndarray, scale: float) -> float | None:
    return float(np.abs(actual - predicted).mean() / scale) if scale > 0 else None


def _conformal(mean: np.ndarray, errors: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The interval around ``mean`` that held ``level`` of the held-back hours (in square-root scale)."""
    rank = min(1.0, math.ceil((errors.size + 1) * level) / errors.size)
    width = float(np.quantile(np.abs(errors), rank))
    root = np.sqrt(mean)
    return np.clip(root - width, 0, None) ** 2, (root + width) ** 2
