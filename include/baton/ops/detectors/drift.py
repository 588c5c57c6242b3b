"""Slow degradation of a measurement: a one-sided CUSUM of per-bucket medians against the same buckets of
previous days. statsmodels' CUSUM tests are for the residuals of a regression, not an online one-sided CUSUM
against a seasonal reference, and river has no seasonal baseline either: the few lines of CUSUM are here."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np

from baton.ops.detectors.base import (
    DAY_S,
    MAD_TO_SIGMA,
    Points,
    Verdict,
    as_times,
    capped_ratio,
    mad_spread,
    seconds,
    span_s,
)
from baton.spec.common import show
from baton.spec.detectors import DriftDetector

MEDIAN_SE = math.sqrt(math.pi / 2)  # a sample median's standard error, in sigmas over sqrt(n)
CALM_Z, CALM_BUCKETS = 1.0, 2  # the drift CUSUM restarts after this many buckets in a row under this z


def _bucket_medians(
    time: np.ndarray, logs: np.ndarray, edges: np.ndarray, min_points: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bucket between successive ``edges``: the median of ``logs`` (NaN under ``min_points``) and the
    number of points; and each point's distance from its bucket's median. One sort, not one per bucket."""
    lo, hi = np.searchsorted(time, [edges[0], edges[-1]], "left")
    bucket = np.searchsorted(edges, time[lo:hi], "right") - 1
    order = np.lexsort((logs[lo:hi], bucket))
    values, sizes = logs[lo:hi][order], np.bincount(bucket, minlength=len(edges) - 1)
    first = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    medians = np.full(len(sizes), np.nan)
    full = sizes >= max(min_points, 1)
    low, high = first[full] + (sizes[full] - 1) // 2, first[full] + sizes[full] // 2
    medians[full] = (values[low] + values[high]) / 2
    spread = values - medians[bucket[order]]
    return medians, sizes, spread[np.isfinite(spread)]


def drift(points: Points, now: float | datetime, cfg: DriftDetector) -> Verdict:
    """Whether a measurement has crept up: a one-sided CUSUM over the complete buckets of the last ``span``.

    Each bucket's median (log scale) is compared with the median of the same bucket on previous days when
    ``min_days`` of them have data, else with the buckets of the ``reference`` period before the span. Its
    z-score divides the difference by the day-to-day spread of those medians combined with the bucket
    median's own sampling error (from the points' spread around their bucket medians), at least
    ``min_spread``; clipped to +/-4 so one odd bucket cannot fire it alone, the z-scores feed
    ``S = max(0, S + z - k)`` (at most ``2h``), which restarts from 0 after ``CALM_BUCKETS`` buckets in a row
    under ``CALM_Z`` (recovered: a spike that ended must not hold an incident open for hours).
    It fires when ``S >= h`` and the level since S left 0 is ``min_ratio`` times the reference. The
    verdict only changes when a bucket completes: run it once per bucket and keep the verdict between."""
    # long: the CUSUM over completed buckets, with its evidence
    at = seconds(now)
    bucket, span = span_s(cfg.bucket), span_s(cfg.span)
    time, logs = points.time, np.log(np.maximum(points.value, cfg.floor))
    end = math.floor(at / bucket) * bucket
    count = round(span / bucket)
    edges = end - span + bucket * np.arange(count + 1)
    medians, sizes, deviations = _bucket_medians(time, logs, edges, cfg.min_points)
    noise = MAD_TO_SIGMA * float(np.median(np.abs(deviations))) if len(deviations) else 0.0

    days = int(span_s(cfg.reference) // DAY_S)
    history = np.array(
        [_bucket_medians(time, logs, edges - d * DAY_S, cfg.min_points)[0] for d in range(1, days + 1)]
    ).reshape(days, count)
    seasonal = (np.isfinite(history).sum(axis=0) >= cfg.min_days) if days else np.zeros(count, bool)
    reference, between = np.full(count, np.nan), np.full(count, np.nan)
    if seasonal.any():
        with np.errstate(all="ignore"):
            reference[seasonal] = np.nanmedian(history[:, seasonal], axis=0)
            between[seasonal] = MAD_TO_SIGMA * np.nanmedian(
                np.abs(history[:, seasonal] - reference[seasonal]), axis=0
            )
    how = f"the same bucket on previous days ({int(seasonal.sum())} of {count} buckets)"
    if not seasonal.all():
        ref_edges = np.arange(end - span - span_s(cfg.reference), end - span + bucket / 2, bucket)
        before = _bucket_medians(time, logs, ref_edges, cfg.min_points)[0]
        before = before[np.isfinite(before)]
        if len(before) >= 3:
            center, flat = mad_spread(before, cfg.min_spread)
            reference[~seasonal], between[~seasonal] = center, flat
            how += f", else the {len(before)} buckets of the {show(cfg.reference)} before"
    with np.errstate(divide="ignore", invalid="ignore"):  # an empty bucket: no median, no error
        sampling = MEDIAN_SE * noise / np.sqrt(sizes)
    spread = np.maximum(np.sqrt(between**2 + sampling**2), cfg.min_spread)
    usable = np.isfinite(medians) & np.isfinite(reference)
    if usable.sum() < 3:
        return Verdict(
            "drift",
            False,
            f"too little data to judge: {int(usable.sum())} buckets with a reference (at least 3)",
            {"buckets": int(usable.sum()), "reference": how},
        )

    kept = np.flatnonzero(usable)
    z = np.clip((medians - reference) / spread, -4.0, 4.0)
    cusum, since, calm = 0.0, None, 0
    for i in kept:
        calm = calm + 1 if z[i] <= CALM_Z else 0
        cusum = 0.0 if calm >= CALM_BUCKETS else min(max(0.0, cusum + z[i] - cfg.k), 2 * cfg.h)
        since = None if cusum == 0 else (i if since is None else since)
    level = float(np.mean((medians - reference)[kept[kept >= since]])) if since is not None else 0.0
    last = kept[-1]
    level_ratio = capped_ratio(level)
    anomalous = cusum >= cfg.h and level_ratio >= cfg.min_ratio
    evidence = {
        "reference": how,
        "buckets": len(kept),
        "bucket_s": bucket,
        "cusum": cusum,
        "threshold": {"h": cfg.h, "k": cfg.k, "min_ratio": cfg.min_ratio},
        "started_at": float(edges[since]) if since is not None else None,
        "level_ratio": level_ratio,
        "last_bucket": {"start": float(edges[last]), "value": math.exp(medians[last]), "z": float(z[last])}
        | {"reference": math.exp(reference[last]), "points": int(sizes[last])},
    }
    if anomalous:
        reason = (
            f"crept up for {show(timedelta(seconds=float(end - edges[since])))}: {as_times(level_ratio)} the "
            f"reference ({how}), CUSUM {cusum:.1f} >= {cfg.h:g}"
        )
    else:
        reason = f"no sustained drift: CUSUM {cusum:.1f} (fires at {cfg.h:g}), level {as_times(level_ratio)}"
    return Verdict("drift", anomalous, reason, evidence)
