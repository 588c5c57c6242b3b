"""Detectors: is a signal anomalous *now*, and on what evidence.

Each detector takes a signal's recent history and the time to judge at (epoch seconds, or an aware
datetime) and returns a :class:`Verdict`: anomalous or not, one sentence saying why, and the evidence
(the baseline, the statistic, the threshold, the counts) as JSON-ready values. Nothing here reads a
clock, a database or a file, and each call costs a few milliseconds on a week of per-minute history.

- :func:`rate` — bad events among calls (failures, re-asks, schema failures, escalations): a
  beta-binomial test of each recent window against the agent's own smoothed baseline, with minimum
  evidence, so 1 failure in 3 calls on a quiet agent is not an incident and 6 in 20 against 2 % is.
- :func:`robust` — a measurement's median (or p95) in recent windows against its baseline's median
  and MAD on a log scale, the baseline being the same time of day on previous days (seasonality).
- :func:`drift` — slow degradation: a one-sided CUSUM of per-bucket medians against the same buckets of
  previous days.
- :func:`silence` — something that should keep happening stopped (a sensor finds nothing).
- :func:`schedule` — runs the schedule expected that did not start.
- :func:`change_points` / :func:`when_started` — for the post-incident report, where the series changed
  (``ruptures``' kernel change-point detection, its C implementation of PELT).

The statistics are scipy's (the beta-binomial, the binomial, the normal) and ruptures'; the windowing is
numpy's ``searchsorted`` over sorted times, so a detector touches only the points it needs. statsmodels'
CUSUM tests are for the residuals of a regression, not an online one-sided CUSUM against a seasonal
reference, and river (not in the lock) has no seasonal baseline either: the few lines of CUSUM are here.
bench/detectors_sim.py measures them all together on a labelled synthetic week.
"""

# long: the five detectors share their windows, baselines and evidence

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from scipy.stats import betabinom, binom, norm

from baton.errors import BatonError
from baton.ops.monitoring_config import (
    COUNT_SIGNALS,
    EVENT_SIGNALS,
    SCHEDULE_SIGNALS,
    VALUE_SIGNALS,
    Detectors,
    DriftDetector,
    RateDetector,
    RobustDetector,
    ScheduleDetector,
    SilenceDetector,
    show,
)

DAY_S = 86_400.0
MAD_TO_SIGMA = 1.4826  # the MAD of a normal distribution, times this, is its standard deviation
MEDIAN_SE = math.sqrt(math.pi / 2)  # a sample median's standard error, in sigmas over sqrt(n)
BACK_ODDS = 1.0  # a rate window is over once its latest part is this many times likelier at the baseline
CALM_Z, CALM_BUCKETS = 1.0, 2  # the drift CUSUM restarts after this many buckets in a row under this z
MAX_LOG_RATIO = 700.0  # a ratio of two measurements is reported as at most e^700 (see _ratio)
EARLY = 60.0  # seconds a run may seem to start before its scheduled time (clocks differ)


class SignalError(BatonError, ValueError):
    """A series handed to a detector is malformed (lengths differ, a value is not finite, bad > total)."""


# --- inputs ---------------------------------------------------------------------------------------


def seconds(when: float | int | datetime) -> float:
    """Epoch seconds of ``when`` (a number, or a timezone-aware datetime)."""
    if isinstance(when, datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            raise SignalError(
                f"{when.isoformat()} has no timezone: pass an aware datetime (UTC) or epoch seconds"
            )
        return when.timestamp()
    if isinstance(when, bool) or not isinstance(when, int | float) or not math.isfinite(when):
        raise SignalError(f"a time must be epoch seconds or an aware datetime, got {when!r}")
    return float(when)


def _array(name: str, values: Any, dtype: Any) -> np.ndarray:
    array = np.asarray(values, dtype=dtype)
    if array.ndim != 1:
        raise SignalError(f"'{name}' must be one-dimensional, got shape {array.shape}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        where = int(np.flatnonzero(~np.isfinite(array))[0])
        raise SignalError(f"'{name}'[{where}] is {array[where]}: drop it or replace it by a number")
    return array


def _sorted(time: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    for name, other in zip(("second", "third"), others, strict=False):
        if len(other) != len(time):
            raise SignalError(f"the {name} series has {len(other)} entries but the times have {len(time)}")
    if len(time) > 1 and (np.diff(time) < 0).any():
        order = np.argsort(time, kind="stable")
        return (time[order], *(other[order] for other in others))
    return (time, *others)


@dataclass(frozen=True)
class Counts:
    """Calls and bad ones per bucket (e.g. per minute): ``start`` the buckets' start times (epoch
    seconds), ``total`` the calls, ``bad`` the bad ones among them. Empty buckets may be left out."""

    start: Any
    total: Any
    bad: Any

    def __post_init__(self) -> None:
        start = _array("start", self.start, float)
        total = _array("total", self.total, np.int64)
        bad = _array("bad", self.bad, np.int64)
        start, total, bad = _sorted(start, total, bad)
        if (total < 0).any() or (bad < 0).any():
            raise SignalError("'total' and 'bad' count events: they cannot be negative")
        if (bad > total).any():
            where = int(np.flatnonzero(bad > total)[0])
            raise SignalError(
                f"bucket {where} has {bad[where]} bad of {total[where]} calls: 'bad' is part of 'total'"
            )
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "total", total)
        object.__setattr__(self, "bad", bad)


@dataclass(frozen=True)
class Points:
    """Timestamped measurements (a call's latency, a minute's cost): ``time`` epoch seconds, ``value``."""

    time: Any
    value: Any

    def __post_init__(self) -> None:
        time, value = _sorted(_array("time", self.time, float), _array("value", self.value, float))
        object.__setattr__(self, "time", time)
        object.__setattr__(self, "value", value)


@dataclass(frozen=True)
class Events:
    """The times something happened (a sensor found rows); ``since``: from when the record is complete
    (default: the first event), so that a day before it is not mistaken for a silent day."""

    time: Any
    since: float | None = None

    def __post_init__(self) -> None:
        (time,) = _sorted(_array("time", self.time, float))
        object.__setattr__(self, "time", time)
        if self.since is not None:
            object.__setattr__(self, "since", seconds(self.since))


@dataclass(frozen=True)
class Schedule:
    """When runs should have started (from the schedule) and when runs did start (epoch seconds)."""

    expected: Any
    started: Any

    def __post_init__(self) -> None:
        (expected,) = _sorted(_array("expected", self.expected, float))
        (started,) = _sorted(_array("started", self.started, float))
        object.__setattr__(self, "expected", expected)
        object.__setattr__(self, "started", started)


# --- output ---------------------------------------------------------------------------------------


def _json(value: Any) -> Any:
    """numpy scalars to Python ones, NaN and infinities to None: what ``json.dumps(allow_nan=False)`` takes."""
    if isinstance(value, dict):
        return {str(key): _json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value) if math.isfinite(value) else None
    return value


@dataclass(frozen=True)
class Verdict:
    """A detector's answer: ``anomalous`` now or not, ``reason`` in one sentence, ``evidence`` JSON-ready."""

    detector: str
    anomalous: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "evidence", _json(self.evidence))

    def as_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "anomalous": self.anomalous,
            "reason": self.reason,
            **self.evidence,
        }


def _s(span: timedelta) -> float:
    return span.total_seconds()


def _pct(rate: float) -> str:
    return f"{100 * rate:.1f} %"


# --- the rate of bad events -----------------------------------------------------------------------


def _back(short: dict[str, Any], long: dict[str, Any], base_rate: float) -> bool:
    """Whether the ``short`` window (the latest part of ``long``) is back to normal: its bad events are
    ``BACK_ODDS`` times likelier at the baseline rate than at the rate of the rest of ``long``."""
    if short["fired"] or long["calls"] <= short["calls"]:
        return False
    before = (long["bad"] - short["bad"]) / (long["calls"] - short["calls"])
    if before <= base_rate:
        return False
    at_before = binom.logpmf(short["bad"], short["calls"], before)
    return bool(at_before + math.log(BACK_ODDS) < binom.logpmf(short["bad"], short["calls"], base_rate))


def rate(counts: Counts, now: float | datetime, cfg: RateDetector) -> Verdict:
    """Whether the share of bad events in a recent window is far above the baseline, with evidence.

    The baseline rate is a Beta posterior: the bad events and calls of the ``baseline`` period before the
    longest window, plus ``prior_weight`` calls at ``prior_rate``. Each window's bad count is tested
    against the beta-binomial its calls would follow at that rate (the baseline's own uncertainty
    included); a window fires when it has ``min_calls`` calls, ``min_bad`` bad ones, a rate ``min_ratio``
    times the baseline, and a chance below ``alpha / len(windows)``. A window that fired is stale when a
    shorter window with enough calls is back down from the rate of the rest of it (see ``_back``), as in
    the two-window rule of burn-rate alerts: a storm that ended stops firing within minutes, not when it
    leaves the longest window. It is anomalous *now* when a window fired and is not stale."""
    # long: the small-count rate test over each window, with its evidence
    at = seconds(now)
    windows = [_s(w) for w in cfg.windows]
    start, total, bad = counts.start, counts.total, counts.bad
    # (from, to] bounds: a bucket stamped at its end (baton.ops.signals) is in the window it ends in
    hi = int(np.searchsorted(start, at, "right"))
    base_lo, base_hi = np.searchsorted(start, [at - _s(cfg.baseline), at - windows[-1]], "right")
    base_calls, base_bad = int(total[base_lo:base_hi].sum()), int(bad[base_lo:base_hi].sum())
    a = base_bad + cfg.prior_rate * cfg.prior_weight
    b = base_calls - base_bad + (1 - cfg.prior_rate) * cfg.prior_weight
    base_rate = a / (a + b)
    per_window_alpha = cfg.alpha / len(windows)

    rows = []
    for span in windows:
        lo = int(np.searchsorted(start, at - span, "right"))
        calls, bad_ = int(total[lo:hi].sum()), int(bad[lo:hi].sum())
        p_value = float(betabinom.sf(bad_ - 1, calls, a, b)) if calls and bad_ else 1.0
        share = bad_ / calls if calls else 0.0
        judged = calls >= cfg.min_calls
        fired = (
            judged
            and bad_ >= cfg.min_bad
            and share >= cfg.min_ratio * base_rate
            and p_value <= per_window_alpha
        )
        rows.append(
            {"window_s": span, "calls": calls, "bad": bad_, "rate": share, "p_value": p_value}
            | {"judged": judged, "fired": fired}
        )
    judged = [row for row in rows if row["judged"]]
    fired = [row for row in rows if row["fired"]]
    recovered = False
    if fired:  # a window that fired is stale once a shorter one shows its bad events are in the past
        current = [
            row
            for row in fired
            if not any(
                _back(short, row, base_rate)
                for short in judged
                if short is not row and short["window_s"] < row["window_s"]
            )
        ]
        recovered, fired = not current, current or fired
    anomalous = bool(fired) and not recovered
    evidence = {
        "baseline": {
            "from": at - _s(cfg.baseline),
            "to": at - windows[-1],
            "calls": base_calls,
            "bad": base_bad,
            "rate": base_rate,
            "prior_rate": cfg.prior_rate,
            "prior_weight": cfg.prior_weight,
        },
        "windows": rows,
        "threshold": {
            "alpha_per_window": per_window_alpha,
            "min_calls": cfg.min_calls,
            "min_bad": cfg.min_bad,
            "min_ratio": cfg.min_ratio,
        },
        "recovered": recovered,
    }
    base = f"a baseline of {_pct(base_rate)} ({base_bad} of {base_calls} calls)"
    if anomalous:
        row = min(fired, key=lambda r: r["p_value"])
        evidence["statistic"] = {"window_s": row["window_s"], "p_value": row["p_value"]}
        reason = (
            f"{row['bad']} of {row['calls']} calls bad in the last {show(timedelta(seconds=row['window_s']))} "
            f"({_pct(row['rate'])}) against {base}: p = {row['p_value']:.2g} <= {per_window_alpha:.2g}"
        )
    elif fired:
        row = judged[0]
        reason = (
            f"healthy again: {row['bad']} of {row['calls']} calls bad in the last "
            f"{show(timedelta(seconds=row['window_s']))} against {base}"
        )
    elif not judged:
        row = rows[-1]
        reason = (
            f"too few calls to judge: {row['calls']} in the last {show(timedelta(seconds=row['window_s']))} "
            f"(at least {cfg.min_calls})"
        )
    else:
        row = min(judged, key=lambda r: r["p_value"])
        reason = (
            f"{row['bad']} of {row['calls']} calls bad in the last {show(timedelta(seconds=row['window_s']))} "
            f"is within {base} (p = {row['p_value']:.2g})"
        )
    return Verdict("rate", anomalous, reason, evidence)


# --- a measurement: median/MAD against the same time of day ----------------------------------------


def _mad_spread(values: np.ndarray, floor: float) -> tuple[float, float]:
    """The median of ``values`` and their MAD-based spread (a robust standard deviation), at least ``floor``."""
    center = float(np.median(values))
    return center, max(MAD_TO_SIGMA * float(np.median(np.abs(values - center))), floor)


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
    windows = [_s(w) for w in cfg.windows]
    hi = int(np.searchsorted(time, at, "right"))

    base, how = np.empty(0), ""
    if cfg.seasonal:
        ranges, days = _seasonal(time, at, _s(cfg.seasonal_width), int(_s(cfg.baseline) // DAY_S))
        if days >= cfg.min_days:
            base = logs[np.concatenate(ranges)] if ranges else np.empty(0)
            how = f"the same time of day (+/- {show(cfg.seasonal_width)}) on {days} previous days"
    if len(base) < cfg.min_baseline:
        lo, top = np.searchsorted(time, [at - _s(cfg.baseline), at - windows[-1]], "right")
        base, how = logs[lo:top], f"the {show(cfg.baseline)} before the last {show(cfg.windows[-1])}"
    if len(base) < cfg.min_baseline:
        return Verdict(
            "robust",
            False,
            f"too little history to judge: {len(base)} baseline points (at least {cfg.min_baseline})",
            {"baseline": {"how": how, "points": len(base)}},
        )

    center, spread = _mad_spread(base, cfg.min_spread)
    base_q = float(np.quantile(base, cfg.quantile))
    factor = math.sqrt(cfg.quantile * (1 - cfg.quantile)) / norm.pdf(norm.ppf(cfg.quantile))
    up, down = cfg.direction in ("up", "both"), cfg.direction in ("down", "both")
    rows = []
    for span in windows:
        recent = logs[int(np.searchsorted(time, at - span, "right")) : hi]
        judged = len(recent) >= cfg.min_points
        q = float(np.quantile(recent, cfg.quantile)) if len(recent) else math.nan
        z = (q - base_q) / (factor * spread / math.sqrt(len(recent))) if len(recent) else math.nan
        ratio = _ratio(q - base_q) if len(recent) else math.nan
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
            f"({row['points']} points) is {_times(row['ratio'])} the baseline's {math.exp(base_q):.4g} "
            f"({how}): z = {row['z']:.1f}, threshold {cfg.z:g} and {cfg.min_ratio:g}x"
        )
    elif not judged:
        reason = f"too few points to judge: {rows[-1]['points']} in the last {show(cfg.windows[-1])}"
    else:
        row = judged[0]
        reason = (
            f"{name} {row['value']:.4g} over the last {show(timedelta(seconds=row['window_s']))} is "
            f"{_times(row['ratio'])} the baseline's {math.exp(base_q):.4g} (z = {row['z']:.1f})"
        )
    return Verdict("robust", anomalous, reason, evidence)


def _ratio(log_ratio: float) -> float:
    """exp of a difference of two logs of measurements, at most e^700: each log is a finite double's, but
    a huge one (1.7e308 s) over a value at the floor (1e-6) is more than a double holds."""
    return math.exp(min(log_ratio, MAX_LOG_RATIO))


def _times(ratio: float) -> str:
    """A ratio as a reason says it: ``2.50x``, and a huge one in 3 significant digits (``1.01e+304x``, not
    the 300 digits ``.2f`` gives a ratio capped at e^700)."""
    return f"{ratio:.2f}x" if ratio < 1e6 else f"{ratio:.3g}x"


# --- slow drift: CUSUM of bucket medians ------------------------------------------------------------


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
    bucket, span = _s(cfg.bucket), _s(cfg.span)
    time, logs = points.time, np.log(np.maximum(points.value, cfg.floor))
    end = math.floor(at / bucket) * bucket
    count = round(span / bucket)
    edges = end - span + bucket * np.arange(count + 1)
    medians, sizes, deviations = _bucket_medians(time, logs, edges, cfg.min_points)
    noise = MAD_TO_SIGMA * float(np.median(np.abs(deviations))) if len(deviations) else 0.0

    days = int(_s(cfg.reference) // DAY_S)
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
        ref_edges = np.arange(end - span - _s(cfg.reference), end - span + bucket / 2, bucket)
        before = _bucket_medians(time, logs, ref_edges, cfg.min_points)[0]
        before = before[np.isfinite(before)]
        if len(before) >= 3:
            center, flat = _mad_spread(before, cfg.min_spread)
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
    level_ratio = _ratio(level)
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
            f"crept up for {show(timedelta(seconds=float(end - edges[since])))}: {_times(level_ratio)} the "
            f"reference ({how}), CUSUM {cusum:.1f} >= {cfg.h:g}"
        )
    else:
        reason = f"no sustained drift: CUSUM {cusum:.1f} (fires at {cfg.h:g}), level {_times(level_ratio)}"
    return Verdict("drift", anomalous, reason, evidence)


# --- silence --------------------------------------------------------------------------------------


def silence(events: Events, now: float | datetime, cfg: SilenceDetector) -> Verdict:
    """Whether something that keeps happening has stopped: no event since the last one for long enough
    that, at the rate before it (over ``lookback``) and at the same hours of previous days (the lower of
    the two, so a quiet night or weekend does not count), the chance of none is below ``alpha``."""
    at = seconds(now)
    time = events.time[: int(np.searchsorted(events.time, at, "right"))]
    if not len(time):
        return Verdict("silence", False, "no event yet: nothing to compare the silence with", {"events": 0})
    since = events.since if events.since is not None else float(time[0])
    last, gap = float(time[-1]), at - float(time[-1])
    lookback = min(_s(cfg.lookback), max(last - since, 0.0))
    recent = int(len(time) - np.searchsorted(time, last - lookback, "right")) if lookback > 0 else 0
    expected_recent = recent / lookback * gap if lookback > 0 else 0.0
    expected, how = expected_recent, f"{recent} events in the {show(timedelta(seconds=lookback))} before it"
    same_hours = []
    if cfg.seasonal:
        for d in range(1, cfg.days + 1):
            if last - d * DAY_S >= since:
                lo, hi = np.searchsorted(time, [last - d * DAY_S, at - d * DAY_S], "right")
                same_hours.append(int(hi - lo))
        if same_hours:  # even one day helps: the lower expectation only makes it more careful
            seasonal = float(np.median(same_hours))
            if seasonal < expected:
                expected, how = (
                    seasonal,
                    f"a median of {seasonal:g} in the same hours of {len(same_hours)} previous days",
                )
    chance = math.exp(-expected)
    anomalous = gap >= _s(cfg.min_silence) and chance <= cfg.alpha
    evidence = {
        "last_event": last,
        "silence_s": gap,
        "expected": expected,
        "expected_at_recent_rate": expected_recent,
        "same_hours_previous_days": same_hours,
        "chance_of_none": chance,
        "threshold": {"alpha": cfg.alpha, "min_silence_s": _s(cfg.min_silence)},
    }
    quiet = f"no event for {show(timedelta(seconds=round(gap)))}"
    if anomalous:
        reason = f"{quiet} where {expected:.1f} were expected ({how}): chance {chance:.2g} <= {cfg.alpha:g}"
    else:
        reason = f"{quiet}; {expected:.1f} expected ({how}), chance of none {chance:.2g}"
    return Verdict("silence", anomalous, reason, evidence)


# --- runs the schedule expected ----------------------------------------------------------------------


def schedule(runs: Schedule, now: float | datetime, cfg: ScheduleDetector) -> Verdict:
    """Whether the latest runs the schedule expected did not start. Each expected time more than ``grace``
    ago (and within ``lookback``) needs a start from ``EARLY`` seconds before it (clocks differ; Airflow
    never starts a scheduled run early) to ``grace`` after it; a start counts for the latest expected time
    it can belong to (so a start for a later slot never covers an earlier missed one). It
    fires when the latest ``min_missed`` due runs in a row were missed, and stops once runs start again
    (the missed ones stay in the evidence)."""
    at, grace = seconds(now), _s(cfg.grace)
    due = runs.expected[(runs.expected <= at - grace) & (runs.expected >= at - _s(cfg.lookback))]
    early = min(EARLY, grace)
    slot = np.searchsorted(due, runs.started + early, "right") - 1  # each start's latest expected time
    fits = (slot >= 0) & (runs.started <= due[np.maximum(slot, 0)] + grace) if len(due) else slot < -1
    kept = np.zeros(len(due), bool)
    kept[slot[fits]] = True
    late = np.flatnonzero(kept)
    in_a_row = len(due) - (int(late[-1]) + 1 if len(late) else 0)
    missed = due[~kept]
    anomalous = in_a_row >= cfg.min_missed
    evidence = {
        "due": len(due),
        "started": int(kept.sum()),
        "missed_in_a_row": in_a_row,
        "missed": missed[-20:].tolist(),
        "missed_count": len(missed),
        "threshold": {"grace_s": grace, "min_missed": cfg.min_missed},
    }
    if anomalous:
        reason = (
            f"the last {in_a_row} scheduled run(s) did not start within {show(cfg.grace)} "
            f"(since {datetime.fromtimestamp(due[-in_a_row], UTC).isoformat()})"
        )
    elif len(missed):
        reason = f"runs start again; {len(missed)} of {len(due)} scheduled in the last {show(cfg.lookback)} did not"
    else:
        reason = f"all {len(due)} scheduled runs started within {show(cfg.grace)}"
    return Verdict("schedule", anomalous, reason, evidence)


# --- one signal, all its detectors ----------------------------------------------------------------

_INPUTS: dict[str, type] = {
    **dict.fromkeys(COUNT_SIGNALS, Counts),
    **dict.fromkeys(VALUE_SIGNALS, Points),
    **dict.fromkeys(EVENT_SIGNALS, Events),
    **dict.fromkeys(SCHEDULE_SIGNALS, Schedule),
}
_DETECTORS = {"rate": rate, "robust": robust, "drift": drift, "silence": silence, "schedule": schedule}


def detect(
    kind: str, data: Counts | Points | Events | Schedule, now: float | datetime, detectors: Detectors
) -> list[Verdict]:
    """The verdicts of every detector configured for the signal ``kind`` on ``data`` (none when disabled)."""
    signal = detectors.of(kind)
    expected = _INPUTS[kind]
    if not isinstance(data, expected):
        raise SignalError(
            f"the signal '{kind}' is measured as {expected.__name__}, got {type(data).__name__}"
        )
    if not signal.enabled:
        return []
    return [
        run(data, now, cfg)
        for name, run in _DETECTORS.items()
        if (cfg := getattr(signal, name, None)) is not None
    ]


# --- when did it start ----------------------------------------------------------------------------


def rates(counts: Counts, bucket: float) -> Points:
    """Per-``bucket`` (seconds) shares of bad events, for :func:`change_points` (empty buckets left out)."""
    keys = np.floor(counts.start / bucket) * bucket
    starts, first = np.unique(keys, return_index=True)
    total = np.add.reduceat(counts.total, first) if len(first) else np.empty(0, np.int64)
    bad = np.add.reduceat(counts.bad, first) if len(first) else np.empty(0, np.int64)
    kept = total > 0
    return Points(starts[kept], bad[kept] / total[kept])


def change_points(
    points: Points, *, log: bool = False, min_size: int = 5, penalty: float | None = None, floor: float = 1e-9
) -> dict[str, Any]:
    """Where the level of a series changes: ruptures' kernel change-point detection with a linear kernel
    (a change in mean, PELT in C), penalised by ``penalty`` (default ``3 sigma^2 log n``, sigma the noise
    estimated from the MAD of successive differences). JSON-ready: each segment's start, end, mean, size."""
    values = np.log(np.maximum(points.value, floor)) if log else points.value
    n = len(values)
    if n < 2 * min_size:
        return {"changes": [], "segments": [], "points": n, "penalty": None}
    steps = np.diff(values)
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(steps - np.median(steps)))) / math.sqrt(2)
    sigma = max(sigma, 1e-3 * (float(np.std(values)) or 1.0))
    pen = penalty if penalty is not None else 3 * sigma**2 * math.log(n)
    import ruptures  # only the post-incident report needs it, and it takes a second to import

    ends = ruptures.KernelCPD(kernel="linear", min_size=min_size).fit(values.reshape(-1, 1)).predict(pen=pen)
    segments, begin = [], 0
    for stop in ends:
        mean = float(np.mean(values[begin:stop]))
        segments.append(
            {
                "start": float(points.time[begin]),
                "end": float(points.time[stop - 1]),
                "points": int(stop - begin),
            }
            | {"mean": math.exp(mean) if log else mean}
        )
        begin = stop
    return _json(
        {"changes": [s["start"] for s in segments[1:]], "segments": segments, "points": n, "penalty": pen}
    )


def when_started(
    points: Points,
    opened_at: float | datetime,
    *,
    direction: str = "up",
    log: bool = False,
    min_size: int = 5,
) -> dict[str, Any]:
    """For the post-incident report: the last change point at or before the incident opened where the
    level moved in ``direction`` (``started_at`` None if there is none), with the levels before and after."""
    report = change_points(points, log=log, min_size=min_size)
    opened, segments = seconds(opened_at), report["segments"]
    started = None
    for before, after in zip(segments, segments[1:], strict=False):
        rose = after["mean"] > before["mean"]
        if after["start"] <= opened and (rose if direction == "up" else not rose):
            started = {"started_at": after["start"], "before": before["mean"], "after": after["mean"]}
    return {"started_at": None, **(started or {}), "opened_at": opened, **report}


__all__ = (
    "Counts",
    "Events",
    "Points",
    "Schedule",
    "SignalError",
    "Verdict",
    "change_points",
    "detect",
    "drift",
    "rate",
    "rates",
    "robust",
    "schedule",
    "silence",
    "when_started",
)
