"""Durations still to go, from empirical samples (pure: numpy only, no store, no Airflow).

The prediction of a run's remaining time (``baton.coordination.prediction``) rests on these three pieces:

- ``residual``: the time still to go of a duration already ``elapsed`` long, from the samples of that
  duration: the samples longer than ``elapsed``, less ``elapsed`` (the empirical conditional distribution,
  no shape assumed). When fewer than ``keep`` samples are that long, the history does not reach so far: the
  ``keep`` longest samples are used, less the shortest of them (the residual life at the last threshold the
  history can measure, taken as constant beyond it: an exponential tail, not a time that shrinks to 0).
- ``quantiles``: predictive quantiles. Method "weibull" puts the i-th of n sorted samples at probability
  i/(n+1), so that a new draw from the same distribution falls between the k-th and m-th samples with
  probability (m-k)/(n+1): a [p5, p95] interval then covers 90 % of new runs even for a few dozen samples,
  where numpy's default (linear) interval is too narrow.
- ``survival``: P(X > x) from the same positions, interpolated between samples; beyond the largest it decays
  exponentially with the mean excess of the longest samples; always in [0, 1] and never rising with x.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TAIL = 5  # the longest samples that measure the tail beyond the largest one


def residual(
    samples: Sequence[float] | np.ndarray,
    elapsed: float,
    keep: int = TAIL,
    then: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """What remains of each sample longer than ``elapsed``, plus its own ``then`` (the time after it in the
    same run: pairs, so that what follows keeps its dependence on how long the sample took), sorted; the
    ``keep`` longest samples less the shortest of them when fewer than ``keep`` are longer (see the module's
    docstring). Pairs with a sample or a ``then`` not finite or below 0 are left out; empty without any."""
    values = np.asarray(samples, dtype=float).ravel()
    after = np.zeros_like(values) if then is None else np.asarray(then, dtype=float).ravel()
    ok = np.isfinite(values) & (values >= 0) & np.isfinite(after) & (after >= 0)
    values, after = values[ok], after[ok]
    if values.size == 0:
        return values
    elapsed = max(float(elapsed), 0.0) if np.isfinite(elapsed) else 0.0
    longer = values > elapsed
    if longer.sum() >= min(keep, values.size):
        return np.sort(values[longer] - elapsed + after[longer])
    top = np.argsort(values, kind="stable")[-min(keep, values.size) :]
    return np.sort(values[top] - values[top[0]] + after[top])


def quantiles(sorted_samples: np.ndarray, probabilities: Sequence[float]) -> np.ndarray:
    """The predictive quantiles of ``sorted_samples`` (non-empty, sorted): ``np.quantile``'s method
    "weibull" (the i-th sample at i/(n+1), clipped at the ends; the tests check the two agree), in a few
    vector operations: ``np.quantile``'s general path cost 130 us a call, and the scheduler asks often."""
    n = sorted_samples.size
    at = np.clip(np.asarray(probabilities, dtype=float) * (n + 1) - 1, 0, n - 1)
    lo = np.floor(at).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    return sorted_samples[lo] + (at - lo) * (sorted_samples[hi] - sorted_samples[lo])


def survival(sorted_samples: np.ndarray, x: float) -> float:
    """P(X > x) for a new draw like ``sorted_samples`` (non-empty, sorted, at least 0): 1 below 0,
    interpolated between the samples at 1 - i/(n+1), then an exponential tail beyond the largest."""
    if np.isnan(x):
        return 1.0
    values = sorted_samples
    n = values.size
    if x < 0 or n == 0:
        return 1.0
    if x <= values[-1]:
        i = int(np.searchsorted(values, x, side="right"))  # the samples at most x (ties counted)
        if i > 0 and values[i - 1] == x:
            return 1.0 - i / (n + 1)
        lo, lo_level = (0.0, 1.0) if i == 0 else (float(values[i - 1]), 1.0 - i / (n + 1))
        hi, hi_level = float(values[i]), 1.0 - (i + 1) / (n + 1)
        return float(lo_level + (x - lo) / (hi - lo) * (hi_level - lo_level))
    top = values[-min(TAIL, n) :]
    scale = float(np.mean(top - top[0]))
    if scale <= 0 or not np.isfinite(x):  # every longest sample equal (no tail measured), or never
        return 0.0
    return float(np.exp(-(x - values[-1]) / scale) / (n + 1))
