"""The rate of bad events among calls (failures, re-asks, schema failures, escalations to a person)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from scipy.stats import betabinom, binom

from baton.ops.detectors.base import Counts, Verdict, percent, seconds, span_s
from baton.spec.common import show
from baton.spec.detectors import RateDetector

BACK_ODDS = 1.0  # a rate window is over once its latest part is this many times likelier at the baseline


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
    windows = [span_s(w) for w in cfg.windows]
    start, total, bad = counts.start, counts.total, counts.bad
    # (from, to] bounds: a bucket stamped at its end (baton.ops.monitor.signals) is in the window it ends in
    hi = int(np.searchsorted(start, at, "right"))
    base_lo, base_hi = np.searchsorted(start, [at - span_s(cfg.baseline), at - windows[-1]], "right")
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
            "from": at - span_s(cfg.baseline),
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
    base = f"a baseline of {percent(base_rate)} ({base_bad} of {base_calls} calls)"
    if anomalous:
        row = min(fired, key=lambda r: r["p_value"])
        evidence["statistic"] = {"window_s": row["window_s"], "p_value": row["p_value"]}
        reason = (
            f"{row['bad']} of {row['calls']} calls bad in the last {show(timedelta(seconds=row['window_s']))} "
            f"({percent(row['rate'])}) against {base}: p = {row['p_value']:.2g} <= {per_window_alpha:.2g}"
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
