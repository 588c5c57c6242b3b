"""A measurement (latency, cost, tokens, a load slot's wait): a recent window's median or p95 against its
baseline's, on a log scale, the baseline being the same time of day on previous days when they have data."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
from scipy.stats import norm

from baton.ops.detectors.base import (
    DAY_S,
    Points,
    Verdict,
    as_times,
    capped_ratio,
    mad_spread,
    seconds,
    span_s,
)
from baton.spec.common import show
from baton.spec.detectors import RobustDetector


def _seasonal(time: np.ndarray, at: float, width: float, days: int) -> tuple[list[np.ndarray], int]:
    """The index ranges of ``at`` +/- ``width`` on each of the ``days`` previous days, and how many hold points."""
    bounds = np.array([(at - d * DAY_S - width, at - d * DAY_S + width) for d in range(1, days + 1)])
    edges = np.searchsorted(time, bounds.ravel(), "left").reshape(-1, 2)
    return [np.arange(lo, hi) for lo, hi in edges], int(sum(hi > lo for lo, hi in edges))


def robust(points: Points, now: float | datetime, cfg: RobustDetector) -> Verdict:
    """Whether a recent window's quantile of a measurement is far from its baseline, with evidence.

    Values are compared on a log scale (``floor`` stands for anything lower). The baseline is the same
    time of day (+/- ``seasonal_width``) on the previous days of ``baseline`` when ``min_days`` of them hold
    points, else the whole ``baseline`` period before the longest window. Each window's quantile gets a
    z-score against the baseline's quantile, in standard errors of that quantile (the baseline's MAD over
    the square root of the window's points); it fires past ``z`` and ``min_ratio`` both. It is not
    anomalous *now* once the shortest window with enough points is back under half of ``min_ratio`` (on
    the log scale): a spike that ended stops firing within minutes."""
    # long: the seasonal baseline and the robust score, with their evidence
    at = seconds(now)
    time, logs = points.time, np.log(np.maximum(points.value, cfg.floor))
    windows = [span_s(w) for w in cfg.windows]
    hi = int(np.searchsorted(time, at, "right"))

    base, how = np.empty(0), ""
    if cfg.seasonal:
        ranges, days = _seasonal(time, at, span_s(cfg.seasonal_width), int(span_s(cfg.baseline) // DAY_S))
        if days >= cfg.min_days:
            base = logs[np.concatenate(ranges)] if ranges else np.empty(0)
            how = f"the same time of day (+/- {show(cfg.seasonal_width)}) on {days} previous days"
    if len(base) < cfg.min_baseline:
        lo, top = np.searchsorted(time, [at - span_s(cfg.baseline), at - windows[-1]], "right")
        base, how = logs[lo:top], f"the {show(cfg.baseline)} before the last {show(cfg.windows[-1])}"
    if len(base) < cfg.min_baseline:
        return Verdict(
            "robust",
            False,
            f"too little history to judge: {len(base)} baseline points (at least {cfg.min_baseline})",
            {"baseline": {"how": how, "points": len(base)}},
        )

    center, spread = mad_spread(base, cfg.min_spread)
    base_q = float(np.quantile(base, cfg.quantile))
    factor = math.sqrt(cfg.quantile * (1 - cfg.quantile)) / norm.pdf(norm.ppf(cfg.quantile))
    up, down = cfg.direction in ("up", "both"), cfg.direction in ("down", "both")
    rows = []
    for span in windows:
        recent = logs[int(np.searchsorted(time, at - span, "right")) : hi]
        judged = len(recent) >= cfg.min_points
        q = float(np.quantile(recent, cfg.quantile)) if len(recent) else math.nan
        z = (q - base_q) / (factor * spread / math.sqrt(len(recent))) if len(recent) else math.nan
        ratio = capped_ratio(q - base_q) if len(recent) else math.nan
        fired = judged and (
            (up and z >= cfg.z and ratio >= cfg.min_ratio)
            or (down and z <= -cfg.z and ratio <= 1 / cfg.min_ratio)
        )
        rows.append(
            {"window_s": span, "points": len(recent), "value": math.exp(q) if len(recent) else None}
            | {"ratio": ratio, "z": z, "judged": judged, "fired": fired}
        )
    judged = [row for row in rows if row["judged"]]
    fired = [row for row in rows if row["fired"]]
    half = math.sqrt(cfg.min_ratio)  # halfway to min_ratio, on the log scale
    recovered = (
        bool(judged)
        and not judged[0]["fired"]
        and (not up or judged[0]["ratio"] < half)
        and (not down or judged[0]["ratio"] > 1 / half)
    )
    anomalous = bool(fired) and not recovered
    name = "median" if cfg.quantile == 0.5 else f"p{round(100 * cfg.quantile):d}"
    evidence = {
        "baseline": {
            "how": how,
            "points": len(base),
            "median": math.exp(center),
            "value": math.exp(base_q),
            "spread_log": spread,
        },
        "statistic": name,
        "windows": rows,
        "threshold": {"z": cfg.z, "min_ratio": cfg.min_ratio, "min_points": cfg.min_points},
        "recovered": recovered,
    }
    if anomalous:
        row = max(fired, key=lambda r: abs(r["z"]))
        reason = (
            f"{name} {row['value']:.4g} over the last {show(timedelta(seconds=row['window_s']))} "
            f"({row['points']} points) is {as_times(row['ratio'])} the baseline's {math.exp(base_q):.4g} "
            f"({how}): z = {row['z']:.1f}, threshold {cfg.z:g} and {cfg.min_ratio:g}x"
        )
    elif not judged:
        reason = f"too few points to judge: {rows[-1]['points']} in the last {show(cfg.windows[-1])}"
    else:
        row = judged[0]
        reason = (
            f"{name} {row['value']:.4g} over the last {show(timedelta(seconds=row['window_s']))} is "
            f"{as_times(row['ratio'])} the baseline's {math.exp(base_q):.4g} (z = {row['z']:.1f})"
        )
    return Verdict("robust", anomalous, reason, evidence)
