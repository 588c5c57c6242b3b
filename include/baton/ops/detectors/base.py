"""What every detector shares: the series a signal is read as, the verdict a detector gives, and the
numerics of the detectors' evidence.

A detector takes one of the inputs below and the time to judge at (epoch seconds, or an aware datetime):
:class:`Counts` (calls and bad ones per bucket), :class:`Points` (timestamped measurements),
:class:`Events` (the times something happened) or :class:`Schedule` (when runs were due, when they
started). Each checks its arrays on construction (one-dimensional, finite, sorted by time) and raises
:class:`SignalError` naming what is wrong. A detector returns a :class:`Verdict` whose evidence is
JSON-ready (numpy scalars made Python's, NaN and infinities made None).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from baton.errors import BatonError

DAY_S = 86_400.0
MAD_TO_SIGMA = 1.4826  # the MAD of a normal distribution, times this, is its standard deviation
MAX_LOG_RATIO = 700.0  # a ratio of two measurements is reported as at most e^700 (see capped_ratio)


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


def json_ready(value: Any) -> Any:
    """numpy scalars to Python ones, NaN and infinities to None: what ``json.dumps(allow_nan=False)`` takes."""
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
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
        object.__setattr__(self, "evidence", json_ready(self.evidence))

    def as_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "anomalous": self.anomalous,
            "reason": self.reason,
            **self.evidence,
        }


# --- the evidence's numerics, shared by the detectors ---------------------------------------------


def span_s(span: timedelta) -> float:
    """A setting's span in seconds, as the detectors compare times."""
    return span.total_seconds()


def percent(rate: float) -> str:
    """A rate as a reason says it: ``12.5 %``."""
    return f"{100 * rate:.1f} %"


def mad_spread(values: np.ndarray, floor: float) -> tuple[float, float]:
    """The median of ``values`` and their MAD-based spread (a robust standard deviation), at least ``floor``."""
    center = float(np.median(values))
    return center, max(MAD_TO_SIGMA * float(np.median(np.abs(values - center))), floor)


def capped_ratio(log_ratio: float) -> float:
    """exp of a difference of two logs of measurements, at most e^700: each log is a finite double's, but
    a huge one (1.7e308 s) over a value at the floor (1e-6) is more than a double holds."""
    return math.exp(min(log_ratio, MAX_LOG_RATIO))


def as_times(ratio: float) -> str:
    """A ratio as a reason says it: ``2.50x``, and a huge one in 3 significant digits (``1.01e+304x``, not
    the 300 digits ``.2f`` gives a ratio capped at e^700)."""
    return f"{ratio:.2f}x" if ratio < 1e6 else f"{ratio:.3g}x"
