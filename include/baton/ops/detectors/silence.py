"""Silence: something that should keep happening stopped (a sensor finds nothing)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np

from baton.ops.detectors.base import DAY_S, Events, Verdict, seconds, span_s
from baton.spec.common import show
from baton.spec.detectors import SilenceDetector


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
    lookback = min(span_s(cfg.lookback), max(last - since, 0.0))
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
    anomalous = gap >= span_s(cfg.min_silence) and chance <= cfg.alpha
    evidence = {
        "last_event": last,
        "silence_s": gap,
        "expected": expected,
        "expected_at_recent_rate": expected_recent,
        "same_hours_previous_days": same_hours,
        "chance_of_none": chance,
        "threshold": {"alpha": cfg.alpha, "min_silence_s": span_s(cfg.min_silence)},
    }
    quiet = f"no event for {show(timedelta(seconds=round(gap)))}"
    if anomalous:
        reason = f"{quiet} where {expected:.1f} were expected ({how}): chance {chance:.2g} <= {cfg.alpha:g}"
    else:
        reason = f"{quiet}; {expected:.1f} expected ({how}), chance of none {chance:.2g}"
    return Verdict("silence", anomalous, reason, evidence)
