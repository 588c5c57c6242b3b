"""The signals the monitor measures and the detectors that watch each (``monitoring.detectors`` of
``dags/monitoring.yaml``): their settings, defaults per signal, and the bounds each setting is refused
outside. What a detector computes is :mod:`baton.ops.detectors`; these are the settings it is given."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, model_validator
from pydantic_core import PydanticCustomError

from baton.spec.common import Span, Strict, show

# --- signals --------------------------------------------------------------------------------------

COUNT_SIGNALS = ("failure_rate", "schema_failure_rate", "reask_rate", "escalation_rate")
"""Shares of bad events among calls (per minute: calls and bad ones): the rate detector."""
VALUE_SIGNALS = ("latency", "queue_wait", "tokens", "cost", "sensor_lag")
"""Positive measurements (one per call or per minute): the robust and drift detectors."""
EVENT_SIGNALS = ("sensor_silence",)
"""The times something happened (a sensor found rows): the silence detector."""
SCHEDULE_SIGNALS = ("runs_started",)
"""Runs that started against the times the schedule said they should: the schedule detector."""
SIGNAL_KINDS = COUNT_SIGNALS + VALUE_SIGNALS + EVENT_SIGNALS + SCHEDULE_SIGNALS
"""The signals measured as series, each watched by its detectors on every scope."""
PLATFORM_SIGNAL = "platform"
"""Faults of the platform itself, seen as a change between two ticks, not in a series
(:mod:`baton.ops.monitor.platform`)."""

SignalKind = Literal[
    "failure_rate",
    "schema_failure_rate",
    "reask_rate",
    "escalation_rate",
    "latency",
    "queue_wait",
    "tokens",
    "cost",
    "sensor_lag",
    "sensor_silence",
    "runs_started",
    "platform",
]

MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
# the monitor's tick: under 10 s its own task run (a few seconds) would be most of it; over an hour, detection
# would wait longer than the incidents it is for last. An incident's quiet time and a circuit's probe may be as
# short as the shortest tick (a window may not: signals are counted per minute)
TICK_BOUNDS = (timedelta(seconds=10), HOUR)

Count = Annotated[int, Field(strict=True)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]


def _windows_ok(windows: list[timedelta]) -> list[timedelta]:
    if len(set(windows)) != len(windows):
        raise PydanticCustomError(
            "duplicate_window", "a window is listed twice: list each length once, e.g. ['5m', '15m', '1h']"
        )
    return sorted(windows)


# --- detectors ------------------------------------------------------------------------------------


class _Windowed(Strict):
    """A detector that tests recent ``windows`` against a longer ``baseline`` before them."""

    windows: list[timedelta]
    baseline: timedelta

    @model_validator(mode="after")
    def _baseline_longer(self) -> _Windowed:
        if self.baseline < 2 * self.windows[-1]:
            raise ValueError(
                f"the baseline ({show(self.baseline)}) must be at least twice the longest window "
                f"({show(self.windows[-1])}): lengthen the baseline or shorten the window"
            )
        return self


class RateDetector(_Windowed):
    """Fires when the share of bad events (failures, re-asks, schema failures, escalations) among an
    agent's recent calls is far above that agent's own baseline, and only with enough evidence: a
    beta-binomial test of the bad events in each recent window against the baseline rate (smoothed by
    a prior so that a new or quiet agent is not judged on three calls)."""

    windows: Annotated[list[Span(MINUTE, DAY)], AfterValidator(_windows_ok)] = Field(
        default=[5 * MINUTE, 15 * MINUTE, HOUR],
        min_length=1,
        max_length=6,
        description="recent windows, each tested against the baseline: a short one catches a storm fast, a "
        "long one a problem on an agent too quiet to judge in a few minutes",
    )
    baseline: Span(HOUR, 90 * DAY) = Field(
        default=7 * DAY, description="how far back the baseline rate is counted (before the longest window)"
    )
    min_calls: Count = Field(
        default=5, ge=1, le=1_000_000, description="a window with fewer calls than this is not judged"
    )
    min_bad: Count = Field(
        default=3, ge=1, le=1_000_000, description="fewer bad events than this in a window never fire"
    )
    min_ratio: Number = Field(
        default=2.0,
        ge=1.0,
        le=1000.0,
        description="the window's rate must be at least this times the baseline",
    )
    alpha: Number = Field(
        default=1e-5,
        gt=0.0,
        le=0.1,
        description="chance of the window's bad events (or more) at the baseline rate below which it fires; "
        "shared by the windows (each gets alpha / number of windows). About one false alarm per signal per "
        "100,000 evaluations of independent windows",
    )
    prior_rate: Number = Field(
        default=0.02, gt=0.0, lt=1.0, description="the rate assumed for an agent with no history"
    )
    prior_weight: Number = Field(
        default=50.0,
        gt=0.0,
        le=1_000_000.0,
        description="how many calls the prior rate weighs against the agent's own history",
    )


class RobustDetector(_Windowed):
    """Fires when a recent window's median (or another quantile) of a measurement is far above its
    baseline: a z-score of the window's quantile against the baseline's median and MAD, on a log scale
    (latency, tokens and cost are multiplicative), with a minimum ratio so that a statistically clear but
    harmless change does not page anyone. The baseline is the same time of day on previous days when there
    are enough of them (seasonality), else the whole baseline period."""

    windows: Annotated[list[Span(MINUTE, DAY)], AfterValidator(_windows_ok)] = Field(
        default=[5 * MINUTE, 15 * MINUTE],
        min_length=1,
        max_length=6,
        description="recent windows, each tested",
    )
    baseline: Span(HOUR, 90 * DAY) = Field(default=7 * DAY, description="how far back the baseline reaches")
    seasonal: bool = Field(
        default=True, description="compare with the same time of day on previous days (the daily cycle)"
    )
    seasonal_width: Span(MINUTE, 12 * HOUR) = Field(
        default=HOUR, description="the same time of day means within this much before or after it"
    )
    min_days: Count = Field(
        default=3, ge=1, le=90, description="previous days with points needed to use the seasonal baseline"
    )
    min_points: Count = Field(
        default=5, ge=1, le=1_000_000, description="a window with fewer points is not judged"
    )
    min_baseline: Count = Field(
        default=30, ge=3, le=1_000_000, description="a baseline of fewer points judges nothing"
    )
    quantile: Number = Field(
        default=0.5, ge=0.01, le=0.99, description="the statistic compared: 0.5 the median, 0.95 the p95"
    )
    direction: Literal["up", "down", "both"] = Field(default="up", description="which change is anomalous")
    z: Number = Field(
        default=5.0, gt=0.0, le=100.0, description="the z-score of the window's quantile at which it fires"
    )
    min_ratio: Number = Field(
        default=2.0,
        ge=1.0,
        le=1000.0,
        description="and the window's quantile must be this many times the baseline's",
    )
    floor: Number = Field(
        default=1e-6, gt=0.0, le=1e12, description="values below this count as this (zero has no logarithm)"
    )
    min_spread: Number = Field(
        default=0.05,
        gt=0.0,
        le=10.0,
        description="the least spread assumed, on the log scale (0.05 = 5 %): a constant baseline has a MAD of 0",
    )


class DriftDetector(Strict):
    """Slow degradation: a one-sided CUSUM of the per-bucket medians, each standardised against the same
    bucket of previous days (or, without enough days, the period before), fires when the sum of the
    excess over ``k`` reaches ``h`` and the level since the drift began is ``min_ratio`` times the
    reference. Catches a steady +30 % that the robust detector's ratio never reaches."""

    bucket: Span(MINUTE, DAY) = Field(default=10 * MINUTE, description="points are summarised per bucket")
    span: Span(HOUR, 30 * DAY) = Field(default=12 * HOUR, description="how far back the CUSUM runs")
    reference: Span(HOUR, 90 * DAY) = Field(
        default=7 * DAY, description="the history the buckets are compared with (before the span)"
    )
    min_days: Count = Field(
        default=3, ge=1, le=90, description="previous days needed for a seasonal reference"
    )
    min_points: Count = Field(
        default=3, ge=1, le=1_000_000, description="a bucket with fewer points is skipped"
    )
    k: Number = Field(
        default=0.5, ge=0.0, le=10.0, description="the allowance: excess (in spreads) that is ignored"
    )
    h: Number = Field(default=8.0, gt=0.0, le=1000.0, description="the CUSUM at which it fires")
    min_ratio: Number = Field(
        default=1.2, ge=1.0, le=1000.0, description="the level since the drift began, over the reference"
    )
    floor: Number = Field(default=1e-6, gt=0.0, le=1e12, description="values below this count as this")
    min_spread: Number = Field(
        default=0.05, gt=0.0, le=10.0, description="the least spread, on the log scale"
    )

    @model_validator(mode="after")
    def _shape(self) -> DriftDetector:
        if self.span < 3 * self.bucket:
            raise ValueError(
                f"the span ({show(self.span)}) must hold at least 3 buckets of {show(self.bucket)}: "
                "lengthen the span or shorten the bucket"
            )
        if self.span / self.bucket > 10_000:
            raise ValueError(
                f"the span ({show(self.span)}) holds over 10,000 buckets of {show(self.bucket)}: "
                "use larger buckets"
            )
        return self


class SilenceDetector(Strict):
    """Something that should keep happening stopped (a sensor finds no rows): fires when, at the rate seen
    before the last event and at the same time on previous days (the lower of the two), the events that
    did not come would have been ``expected`` with a chance of none below ``alpha``."""

    min_silence: Span(MINUTE, 30 * DAY) = Field(
        default=15 * MINUTE, description="a shorter silence never fires"
    )
    alpha: Number = Field(
        default=1e-5,
        gt=0.0,
        le=0.1,
        description="fires when the chance of no event in the silence is below this (1e-5: 11.5 expected)",
    )
    lookback: Span(MINUTE, 30 * DAY) = Field(
        default=HOUR, description="the rate before the silence is counted over this"
    )
    seasonal: bool = Field(default=True, description="also compare with the same hours of previous days")
    days: Count = Field(
        default=7, ge=1, le=90, description="previous days compared (those the history covers; their median)"
    )


class ScheduleDetector(Strict):
    """Runs that did not start: each time the schedule said a run should start, more than ``grace`` ago,
    with no run started within ``grace`` of it."""

    grace: Span(timedelta(0), DAY) = Field(default=10 * MINUTE, description="how late a run may start")
    lookback: Span(HOUR, 30 * DAY) = Field(
        default=DAY, description="scheduled times older than this are not checked"
    )
    min_missed: Count = Field(default=1, ge=1, le=10_000, description="missed runs needed to fire")


class CountSignal(Strict):
    enabled: bool = True
    rate: RateDetector | None = Field(default_factory=RateDetector, description="null turns it off")


class ValueSignal(Strict):
    enabled: bool = True
    robust: RobustDetector | None = Field(default_factory=RobustDetector, description="null turns it off")
    drift: DriftDetector | None = Field(default_factory=DriftDetector, description="null turns it off")


class EventSignal(Strict):
    enabled: bool = True
    silence: SilenceDetector | None = Field(default_factory=SilenceDetector, description="null turns it off")


class ScheduleSignal(Strict):
    enabled: bool = True
    schedule: ScheduleDetector | None = Field(
        default_factory=ScheduleDetector, description="null turns it off"
    )


class PlatformSignal(Strict):
    """Faults of the platform itself: the store's PostgreSQL restarted, Airflow's scheduler, triggerer or
    dag processor or a Celery worker died (it started again with no clean stop), the Celery broker (Redis)
    restarted. One incident per component while it lasts."""

    enabled: bool = True


# Per-signal defaults that differ from the detector's own (the rest is the detector's default).
_VALUE_FLOORS = {"latency": 0.05, "queue_wait": 1.0, "tokens": 10.0, "cost": 1e-5, "sensor_lag": 1.0}
_SIGNAL_DEFAULTS: dict[str, dict[str, Any]] = {
    "failure_rate": {"rate": {"prior_rate": 0.02}},
    "schema_failure_rate": {"rate": {"prior_rate": 0.02}},
    "reask_rate": {"rate": {"prior_rate": 0.05}},
    "escalation_rate": {"rate": {"prior_rate": 0.05}},
    **{
        kind: {"robust": {"floor": floor}, "drift": {"floor": floor}} for kind, floor in _VALUE_FLOORS.items()
    },
    "queue_wait": {"robust": {"floor": 1.0, "min_ratio": 3.0}, "drift": {"floor": 1.0, "min_ratio": 1.5}},
    "cost": {"robust": {"floor": 1e-5, "min_ratio": 2.0}, "drift": {"floor": 1e-5, "min_ratio": 1.3}},
    "sensor_silence": {},
    "runs_started": {},
}
_SIGNAL_MODELS: dict[str, type[BaseModel]] = {
    **dict.fromkeys(COUNT_SIGNALS, CountSignal),
    **dict.fromkeys(VALUE_SIGNALS, ValueSignal),
    **dict.fromkeys(EVENT_SIGNALS, EventSignal),
    **dict.fromkeys(SCHEDULE_SIGNALS, ScheduleSignal),
}


def _merge(default: Any, given: Any) -> Any:
    """``given`` over ``default``, key by key in mappings; anything else (a list, null) replaces."""
    if isinstance(default, dict) and isinstance(given, dict):
        return {**default, **{key: _merge(default.get(key), value) for key, value in given.items()}}
    return given


def _signal_default(kind: str) -> Any:
    return Field(
        default_factory=lambda: _SIGNAL_MODELS[kind].model_validate(_SIGNAL_DEFAULTS[kind]),
        description=(_SIGNAL_MODELS[kind].__doc__ or "").strip() or None,
    )


class Detectors(Strict):
    """The detectors of each signal kind (applied to every agent, step, workflow or sensor it is measured
    on). A key given here replaces that key of the signal's defaults; ``enabled: false`` turns a signal off."""

    failure_rate: CountSignal = _signal_default("failure_rate")
    schema_failure_rate: CountSignal = _signal_default("schema_failure_rate")
    reask_rate: CountSignal = _signal_default("reask_rate")
    escalation_rate: CountSignal = _signal_default("escalation_rate")
    latency: ValueSignal = _signal_default("latency")
    queue_wait: ValueSignal = _signal_default("queue_wait")
    tokens: ValueSignal = _signal_default("tokens")
    cost: ValueSignal = _signal_default("cost")
    sensor_lag: ValueSignal = _signal_default("sensor_lag")
    sensor_silence: EventSignal = _signal_default("sensor_silence")
    runs_started: ScheduleSignal = _signal_default("runs_started")
    platform: PlatformSignal = Field(default_factory=PlatformSignal, description=PlatformSignal.__doc__)

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {
            kind: _merge(_SIGNAL_DEFAULTS.get(kind), given) if kind in _SIGNAL_DEFAULTS else given
            for kind, given in value.items()
        }

    def of(self, kind: str) -> BaseModel:
        """The detectors of one signal kind."""
        return getattr(self, kind)
