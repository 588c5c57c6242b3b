"""Detectors: is a signal anomalous *now*, and on what evidence.

Each detector takes a signal's recent history and the time to judge at (epoch seconds, or an aware
datetime) and returns a :class:`Verdict`: anomalous or not, one sentence saying why, and the evidence
(the baseline, the statistic, the threshold, the counts) as JSON-ready values. Nothing here reads a
clock, a database or a file, and each call costs a few milliseconds on a week of per-minute history.
One module per detector, each a function ``(series, now, its settings) -> Verdict``:

- :func:`rate` (``rate.py``) — bad events among calls (failures, re-asks, schema failures, escalations):
  a beta-binomial test of each recent window against the agent's own smoothed baseline, with minimum
  evidence, so 1 failure in 3 calls on a quiet agent is not an incident and 6 in 20 against 2 % is.
- :func:`robust` (``robust.py``) — a measurement's median (or p95) in recent windows against its
  baseline's median and MAD on a log scale, the baseline being the same time of day on previous days.
- :func:`drift` (``drift.py``) — slow degradation: a one-sided CUSUM of per-bucket medians against the
  same buckets of previous days.
- :func:`silence` (``silence.py``) — something that should keep happening stopped (a sensor finds nothing).
- :func:`schedule` (``schedule.py``) — runs the schedule expected that did not start.
- :func:`change_points` / :func:`when_started` (``changes.py``) — for the post-incident report, where the
  series changed (``ruptures``' kernel change-point detection, its C implementation of PELT).

What they share (``base.py``): the inputs (:class:`Counts`, :class:`Points`, :class:`Events`,
:class:`Schedule`), the :class:`Verdict`, and the numerics of their evidence. :func:`detect` runs the
detectors a signal is configured with (``dags/monitoring.yaml``): a new detector is a module here, its
settings in :mod:`baton.spec.detectors`, and its name in :data:`DETECTORS`.

The statistics are scipy's (the beta-binomial, the binomial, the normal) and ruptures'; the windowing is
numpy's ``searchsorted`` over sorted times, so a detector touches only the points it needs.
bench/detectors_sim.py measures them all together on a labelled synthetic week.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from baton.ops.detectors.base import Counts, Events, Points, Schedule, SignalError, Verdict, seconds
from baton.ops.detectors.changes import change_points, rates, when_started
from baton.ops.detectors.drift import drift
from baton.ops.detectors.rate import rate
from baton.ops.detectors.robust import robust
from baton.ops.detectors.schedule import schedule
from baton.ops.detectors.silence import silence
from baton.spec.detectors import (
    COUNT_SIGNALS,
    EVENT_SIGNALS,
    SCHEDULE_SIGNALS,
    VALUE_SIGNALS,
    Detectors,
)

_INPUTS: dict[str, type] = {
    **dict.fromkeys(COUNT_SIGNALS, Counts),
    **dict.fromkeys(VALUE_SIGNALS, Points),
    **dict.fromkeys(EVENT_SIGNALS, Events),
    **dict.fromkeys(SCHEDULE_SIGNALS, Schedule),
}
# a signal's settings name its detectors by these keys (``failure_rate: {rate: ...}``)
DETECTORS: dict[str, Callable[[Any, float | datetime, Any], Verdict]] = {
    "rate": rate,
    "robust": robust,
    "drift": drift,
    "silence": silence,
    "schedule": schedule,
}


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
        for name, run in DETECTORS.items()
        if (cfg := getattr(signal, name, None)) is not None
    ]


__all__ = (
    "DETECTORS",
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
    "seconds",
    "silence",
    "when_started",
)
