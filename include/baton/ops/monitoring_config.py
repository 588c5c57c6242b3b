"""The ``monitoring:`` document: which detector watches each signal, how anomalies become incidents,
when nobody should be paged (maintenance), and what Baton does about an incident by itself (runbooks).

It is declared in ``dags/monitoring.yaml`` (a mapping with one key, ``monitoring:``) or as the roster's
``monitoring:`` section. Every key has a default that suits workflows running every few minutes to
daily, so an empty ``monitoring: {}`` is a complete configuration; a key given for one signal replaces
only that key of the signal's defaults. Unknown keys, impossible numbers and absurd windows are refused
with the key's path and the fix (``load_monitoring``, or the loader's ``Source.validate``).

Where an anomaly is, is a *scope*: ``agent:<name>``, ``workflow:<id>``, ``step:<workflow>.<step>`` or
``sensor:<dag id>``.
"""

# long: the whole monitoring: document, one model per section, with its messages

from __future__ import annotations

import difflib
import re
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from baton.errors import Issue, TemplateError

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
]
Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
_SCOPE = re.compile(r"^(agent|workflow|step|sensor):[A-Za-z0-9_.\-]{1,200}$")


def _scope(value: str) -> str:
    if not _SCOPE.match(value):
        raise PydanticCustomError(
            "scope",
            "'{value}' is not a scope: use 'agent:<name>', 'workflow:<id>', 'step:<workflow>.<step>' or "
            "'sensor:<dag id>'",
            {"value": value[:100]},
        )
    return value


Scope = Annotated[str, Field(max_length=210), AfterValidator(_scope)]

FILE = "monitoring.yaml"  # in the dags folder

# --- durations ------------------------------------------------------------------------------------

_DURATION = re.compile(
    r"^(?P<neg>-)?(?:(?P<d>\d{1,6})d)?(?:(?P<h>\d{1,7})h)?(?:(?P<m>\d{1,9})m)?(?:(?P<s>\d{1,10})s)?$"
)
_DURATION_FIX = "seconds (300) or a duration like '90s', '5m', '1h30m', '7d'"


def _parse_duration(value: Any) -> Any:
    """Seconds as a number, '90s' / '5m' / '1h30m' / '7d', or anything pydantic reads as a timedelta."""
    if isinstance(value, bool):
        raise PydanticCustomError("duration_type", "expected a duration, got a boolean: use " + _DURATION_FIX)
    match = _DURATION.match(value.strip()) if isinstance(value, str) else None
    if match and any(match[unit] for unit in "dhms"):
        parts = {key: int(text) for key, text in match.groupdict().items() if text and key != "neg"}
        span = timedelta(
            days=parts.get("d", 0),
            hours=parts.get("h", 0),
            minutes=parts.get("m", 0),
            seconds=parts.get("s", 0),
        )
        return -span if match["neg"] else span
    if isinstance(value, str) and not value.strip().upper().startswith(("P", "-P")):  # ISO 8601: pydantic's
        raise PydanticCustomError(
            "duration_text", "'{value}' is not a duration: use " + _DURATION_FIX, {"value": value[:40]}
        )
    return value


def show(span: timedelta) -> str:
    """``timedelta(hours=1, minutes=30)`` -> ``'1h30m'`` (how a duration is written in this file)."""
    seconds = int(span.total_seconds())
    if seconds < 0:
        return "-" + show(-span)
    if seconds == 0:
        return f"{span.total_seconds():g}s"
    text = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            text += f"{seconds // size}{unit}"
            seconds %= size
    return text


def _within(low: timedelta, high: timedelta):
    def check(value: timedelta) -> timedelta:
        if not low <= value <= high:
            raise PydanticCustomError(
                "duration_out_of_range",
                "{got} is out of range: use a duration from {low} to {high}",
                {"got": show(value), "low": show(low), "high": show(high)},
            )
        return value

    return AfterValidator(check)


def Span(low: timedelta, high: timedelta) -> Any:
    """A duration field bounded to [low, high]; written as seconds or '5m', '1h30m', '7d'."""
    return Annotated[
        timedelta,
        BeforeValidator(_parse_duration),
        _within(low, high),
        Field(json_schema_extra={"examples": ["90s", "5m", "1h30m", "7d", 300]}),
    ]


MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
# the monitor's tick: under 10 s its own task run (a few seconds) would be most of it; over an hour, detection
# would wait longer than the incidents it is for last. An incident's quiet time and a circuit's probe may be as
# short as the shortest tick (a window may not: signals are counted per minute)
TICK_BOUNDS = (timedelta(seconds=10), HOUR)

Count = Annotated[int, Field(strict=True)]
Number = Annotated[float, Field(strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _windows_ok(windows: list[timedelta]) -> list[timedelta]:
    if len(set(windows)) != len(windows):
        raise PydanticCustomError(
            "duplicate_window", "a window is listed twice: list each length once, e.g. ['5m', '15m', '1h']"
        )
    return sorted(windows)


# --- detectors ------------------------------------------------------------------------------------


class _Windowed(_Strict):
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


class DriftDetector(_Strict):
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


class SilenceDetector(_Strict):
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


class ScheduleDetector(_Strict):
    """Runs that did not start: each time the schedule said a run should start, more than ``grace`` ago,
    with no run started within ``grace`` of it."""

    grace: Span(timedelta(0), DAY) = Field(default=10 * MINUTE, description="how late a run may start")
    lookback: Span(HOUR, 30 * DAY) = Field(
        default=DAY, description="scheduled times older than this are not checked"
    )
    min_missed: Count = Field(default=1, ge=1, le=10_000, description="missed runs needed to fire")


class CountSignal(_Strict):
    enabled: bool = True
    rate: RateDetector | None = Field(default_factory=RateDetector, description="null turns it off")


class ValueSignal(_Strict):
    enabled: bool = True
    robust: RobustDetector | None = Field(default_factory=RobustDetector, description="null turns it off")
    drift: DriftDetector | None = Field(default_factory=DriftDetector, description="null turns it off")


class EventSignal(_Strict):
    enabled: bool = True
    silence: SilenceDetector | None = Field(default_factory=SilenceDetector, description="null turns it off")


class ScheduleSignal(_Strict):
    enabled: bool = True
    schedule: ScheduleDetector | None = Field(
        default_factory=ScheduleDetector, description="null turns it off"
    )


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


class Detectors(_Strict):
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


# --- incidents ------------------------------------------------------------------------------------

_DEFAULT_SEVERITY: dict[str, Severity] = {
    "failure_rate": "critical",
    "schema_failure_rate": "warning",
    "reask_rate": "warning",
    "escalation_rate": "warning",
    "latency": "warning",
    "queue_wait": "warning",
    "tokens": "info",
    "cost": "warning",
    "sensor_lag": "warning",
    "sensor_silence": "critical",
    "runs_started": "critical",
}


class Incidents(_Strict):
    """How anomalies become incidents: one per fingerprint (signal kind and scope) while it lasts."""

    resolve_after: Span(TICK_BOUNDS[0], 7 * DAY) = Field(
        default=10 * MINUTE,
        description="an incident resolves once its signal has been healthy this long (no anomaly)",
    )
    escalate_after: Span(MINUTE, 30 * DAY) | None = Field(
        default=30 * MINUTE,
        description="an open, unacknowledged incident goes one severity up after this long; null: never",
    )
    escalate_count: Count | None = Field(
        default=None, ge=2, le=10**9, description="or once it counts this many anomalies; null: never"
    )
    severity: dict[SignalKind, Severity] = Field(
        default_factory=lambda: dict(_DEFAULT_SEVERITY),
        description="the severity an incident opens with, per signal kind (the others keep their default)",
    )

    @field_validator("severity", mode="before")
    @classmethod
    def _over_default_severity(cls, value: Any) -> Any:
        return {**_DEFAULT_SEVERITY, **value} if isinstance(value, dict) else value


# --- maintenance ----------------------------------------------------------------------------------

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise PydanticCustomError(
            "naive_datetime",
            "a time without a timezone is ambiguous: write it in UTC, e.g. '2026-12-01T22:00:00Z'",
        )
    return value.astimezone(UTC)


AwareTime = Annotated[datetime, AfterValidator(_aware)]


class MaintenanceWindow(_Strict):
    """A time when anomalies open no incident and runbooks do nothing: either every week on ``days`` at
    ``at`` (UTC) for ``duration``, or once from ``start`` to ``end`` (UTC)."""

    name: str = Field(default="maintenance", min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    days: list[Weekday] | None = Field(
        default=None, min_length=1, max_length=7, description="recurring: the weekdays it starts on (UTC)"
    )
    at: str | None = Field(default=None, description="recurring: the time it starts, 'HH:MM' in UTC")
    duration: Span(MINUTE, DAY - MINUTE) | None = Field(
        default=None, description="recurring: how long it lasts (less than a day)"
    )
    start: AwareTime | None = Field(default=None, description="once: when it starts (with a timezone)")
    end: AwareTime | None = Field(default=None, description="once: when it ends")
    scope: list[Scope] = Field(
        default_factory=list,
        max_length=1000,
        description="what it covers ('agent:x', 'workflow:y' which includes its steps, 'sensor:z'); "
        "empty: everything",
    )

    @field_validator("at")
    @classmethod
    def _clock(cls, value: str | None) -> str | None:
        if value is not None and not _HHMM.match(value):
            raise PydanticCustomError(
                "clock_time",
                "'{value}' is not a time of day: use 'HH:MM' in UTC, e.g. '02:30'",
                {"value": value},
            )
        return value

    @model_validator(mode="after")
    def _one_form(self) -> MaintenanceWindow:
        recurring = any(x is not None for x in (self.days, self.at, self.duration))
        once = self.start is not None or self.end is not None
        if recurring and once:
            raise ValueError(
                "a window is either recurring (days, at, duration) or once (start, end), not both: "
                "split it into two windows"
            )
        if once:
            if self.start is None or self.end is None:
                raise ValueError("a one-off window needs both 'start' and 'end' (UTC times)")
            if self.end <= self.start:
                raise ValueError(
                    f"'end' ({self.end.isoformat()}) is not after 'start' ({self.start.isoformat()})"
                )
            if self.end - self.start > 30 * DAY:
                raise ValueError(
                    f"a window of {show(self.end - self.start)} is longer than 30 days: turn the detectors "
                    "off ('enabled: false') instead of hiding every incident"
                )
        elif self.at is None or self.duration is None:
            raise ValueError("a recurring window needs 'at' ('HH:MM' UTC) and 'duration' (e.g. '30m')")
        return self

    def covers(self, now: datetime, where: str | None = None) -> bool:
        """Whether ``now`` (aware) is inside this window, for an anomaly at ``where`` (None: anything)."""
        if where is not None and self.scope and not any(_in_scope(where, scope) for scope in self.scope):
            return False
        now = now.astimezone(UTC)
        if self.start is not None and self.end is not None:
            return self.start <= now < self.end
        assert self.at is not None and self.duration is not None
        clock = time(int(self.at[:2]), int(self.at[3:]), tzinfo=UTC)
        days = self.days or list(WEEKDAYS)
        for back in (0, 1):  # a window may start yesterday and run past midnight
            day = (now - back * DAY).date()
            begin = datetime.combine(day, clock)
            if WEEKDAYS[day.weekday()] in days and begin <= now < begin + self.duration:
                return True
        return False


def _in_scope(where: str, scope: str) -> bool:
    """``workflow:w`` covers itself and its steps (``step:w.*``); any other scope covers only itself."""
    if where == scope:
        return True
    return scope.startswith("workflow:") and where.startswith("step:" + scope.removeprefix("workflow:") + ".")


# --- runbooks -------------------------------------------------------------------------------------

Person = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
_AFTER = Field(
    default=timedelta(0), description="how long after the incident opened (and is still open) it runs"
)


class OpenCircuit(_Strict):
    """Open the agent's circuit: routing leaves it out and reroutes its work to agents with the same
    capabilities. After ``probe_after`` the circuit goes half-open: the agent's next call is a trial. A
    failed trial holds the circuit open again (another trial ``probe_after`` later); a passed one closes
    it, and only then may the incident resolve: an agent that gets no work cannot show it recovered by
    being quiet. ``probe_after: null`` holds the circuit until the incident resolves, then closes it."""

    do: Literal["open_circuit"]
    after: Span(timedelta(0), 7 * DAY) = _AFTER
    probe_after: Span(TICK_BOUNDS[0], 7 * DAY) | None = Field(
        default=5 * MINUTE,
        description="how long the circuit is held open before a trial call may try the agent (half-open); "
        "null: no trial, the circuit closes when the incident resolves",
    )
    probe_for: Span(MINUTE, 7 * DAY) = Field(
        default=15 * MINUTE,
        description="how long a half-open circuit waits for its trial call; when none came, the incident "
        "may resolve with the circuit left half-open (its next failure opens it, a success closes it)",
    )


class LowerConcurrency(_Strict):
    """Lower the agent's concurrency (its pool's slots) to ``to``; restored when the incident resolves."""

    do: Literal["lower_concurrency"]
    to: Count = Field(ge=1, le=1024, description="the slots the agent keeps")
    after: Span(timedelta(0), 7 * DAY) = _AFTER


class PauseWorkflow(_Strict):
    """Pause the workflow (its DAG): no new runs; resumed when the incident resolves."""

    do: Literal["pause_workflow"]
    after: Span(timedelta(0), 7 * DAY) = _AFTER


class RetryFailedRuns(_Strict):
    """Once the incident resolves (the cause is gone), retry the runs that failed while it was open."""

    do: Literal["retry_failed_runs"]
    max_runs: Count = Field(
        default=20, ge=1, le=1000, description="retry at most this many runs, newest first"
    )


class Escalate(_Strict):
    """Hand the incident, with its evidence, to a person (or a group) who must act on it."""

    do: Literal["escalate"]
    to: Person = Field(description="who: a person's or a group's handle, as the alert channel knows it")
    after: Span(timedelta(0), 7 * DAY) = _AFTER


RunbookAction = Annotated[
    OpenCircuit | LowerConcurrency | PauseWorkflow | RetryFailedRuns | Escalate, Field(discriminator="do")
]
ACTIONS = ("open_circuit", "lower_concurrency", "pause_workflow", "retry_failed_runs", "escalate")
REVERSIBLE = {
    "open_circuit": "close_circuit",
    "lower_concurrency": "restore_concurrency",
    "pause_workflow": "resume_workflow",
}
"""The action that undoes each reversible one when its incident resolves."""


def _unknown_action(value: Any) -> PydanticCustomError:
    text = str(value)[:100]
    close = difflib.get_close_matches(text, ACTIONS, n=1)
    return PydanticCustomError(
        "unknown_action",
        "unknown action '{value}'{hint}: use one of {actions}",
        {
            "value": text,
            "hint": f" (did you mean '{close[0]}'?)" if close else "",
            "actions": ", ".join(ACTIONS),
        },
    )


def _shorthand(value: Any) -> Any:
    """``- open_circuit`` is ``- {do: open_circuit}``; an unknown action is named with the known ones."""
    if isinstance(value, str):
        if value not in ACTIONS:
            raise _unknown_action(value)
        return {"do": value}
    if isinstance(value, dict):
        if "do" not in value:
            raise PydanticCustomError(
                "action_without_do",
                "an action needs 'do', one of {actions}, e.g. {do: lower_concurrency, to: 1}",
                {"actions": ", ".join(ACTIONS)},
            )
        if value["do"] not in ACTIONS:
            raise _unknown_action(value["do"])
    return value


Runbook = Annotated[list[Annotated[RunbookAction, BeforeValidator(_shorthand)]], Field(max_length=20)]

_DEFAULT_RUNBOOKS: dict[str, list[dict[str, Any]]] = {
    "failure_rate": [
        {"do": "open_circuit"},
        {"do": "escalate", "to": "on-call", "after": 15 * MINUTE},
        {"do": "retry_failed_runs"},
    ],
    "schema_failure_rate": [{"do": "escalate", "to": "on-call", "after": 15 * MINUTE}],
    "reask_rate": [{"do": "escalate", "to": "on-call", "after": 30 * MINUTE}],
    "escalation_rate": [{"do": "escalate", "to": "on-call"}],
    "latency": [{"do": "escalate", "to": "on-call", "after": 15 * MINUTE}],
    "queue_wait": [{"do": "escalate", "to": "on-call", "after": 30 * MINUTE}],
    "cost": [{"do": "escalate", "to": "on-call"}],
    "sensor_lag": [{"do": "escalate", "to": "on-call", "after": 15 * MINUTE}],
    "sensor_silence": [{"do": "escalate", "to": "on-call"}],
    "runs_started": [{"do": "escalate", "to": "on-call"}, {"do": "retry_failed_runs"}],
}


# --- the document ---------------------------------------------------------------------------------


class Monitoring(_Strict):
    """What Baton watches in what it runs, and what it does about it by itself."""

    tick: Span(TICK_BOUNDS[0], TICK_BOUNDS[1]) = Field(
        default=MINUTE,
        description="how often the baton_monitor DAG runs (read when Airflow parses it): an anomaly waits up "
        "to one tick to be seen, and every tick is a task run",
    )
    detectors: Detectors = Field(default_factory=Detectors)
    incidents: Incidents = Field(default_factory=Incidents)
    maintenance: list[MaintenanceWindow] = Field(
        default_factory=list, max_length=1000, description="when no incident opens and no runbook acts"
    )
    runbooks: dict[SignalKind, Runbook] = Field(
        default_factory=lambda: {kind: list(actions) for kind, actions in _DEFAULT_RUNBOOKS.items()},
        validate_default=True,
        description="per incident type (its signal kind), the actions Baton takes in order; a kind given "
        "here replaces its default runbook, [] turns it off",
    )

    @field_validator("runbooks", mode="before")
    @classmethod
    def _over_default_runbooks(cls, value: Any) -> Any:
        return {**_DEFAULT_RUNBOOKS, **value} if isinstance(value, dict) else value

    def maintenance_at(self, now: datetime, where: str | None = None) -> MaintenanceWindow | None:
        """The maintenance window covering ``where`` at ``now``, if any."""
        return next((window for window in self.maintenance if window.covers(now, where)), None)


class MonitoringDocument(_Strict):
    """``dags/monitoring.yaml``: one key, ``monitoring``."""

    monitoring: Monitoring = Field(default_factory=Monitoring)


# --- reading --------------------------------------------------------------------------------------

_FIXES = {
    "extra_forbidden": "remove or rename this key",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than": "use a smaller value",
    "less_than_equal": "use a smaller value",
    "int_type": "use a whole number",
    "float_type": "use a number",
    "finite_number": "use a finite number",
    "literal_error": "use one of the allowed values",
    "missing": "add this key",
    "too_long": "use fewer entries",
    "too_short": "add at least one entry",
    "time_delta_parsing": "use " + _DURATION_FIX,
    "time_delta_type": "use " + _DURATION_FIX,
    "dict_type": "use a mapping of key: value",
    "model_type": "use a mapping of key: value",
    "list_type": "use a list",
}


def _known_keys() -> list[str]:
    keys: set[str] = set()
    schema = MonitoringDocument.model_json_schema()
    for sub in (*schema.get("$defs", {}).values(), schema):
        keys |= set(sub.get("properties", {}))
    return sorted(keys)


def _data_path(data: Any, loc: tuple[Any, ...]) -> str:
    """The key path in the file of a pydantic ``loc``: its parts that are keys or indexes of ``data`` (not
    the union member or validator pydantic names), then the missing or unknown key, e.g.
    ``monitoring.runbooks.cost[1].to``."""
    kept: list[Any] = []
    node = data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            node = node[part]
            kept.append(part)
        elif isinstance(node, dict) and isinstance(part, str) and part not in ACTIONS and "[" not in part:
            kept.append(part)  # a key the data lacks (missing) or should not have: name it and stop
            break
    text = ""
    for part in kept:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load_config(dags: Path) -> Monitoring:
    """``dags/monitoring.yaml`` (read within Baton's limits), or the defaults when there is none."""
    path = dags / FILE
    if not path.exists():
        return Monitoring()
    from baton.spec.loading import Source

    data = Source(path, dags).parse()  # bounded in size, depth and aliases, duplicate keys refused
    return load_monitoring(data, str(path))


def load_monitoring(data: Any, file: str = "dags/monitoring.yaml") -> Monitoring:
    """The ``monitoring:`` section of ``data`` (a parsed YAML document), or ``TemplateError`` listing
    every problem with its key path and fix."""
    if not isinstance(data, dict):
        raise TemplateError(
            [
                Issue(
                    file,
                    "",
                    f"expected a mapping at the top, got {type(data).__name__}",
                    "start with 'monitoring:'",
                )
            ]
        )
    try:
        return MonitoringDocument.model_validate(data).monitoring
    except ValidationError as error:
        issues = []
        for err in error.errors():
            loc = tuple(err["loc"])
            message, fix = err["msg"].removeprefix("Value error, "), _FIXES.get(err["type"], "")
            if err["type"] == "extra_forbidden":
                message = f"unknown key '{loc[-1]}'"
                close = difflib.get_close_matches(str(loc[-1]), _known_keys(), n=1)
                if close and close[0] != loc[-1]:
                    fix = f"did you mean '{close[0]}'?"
                elif close:
                    fix = "remove it: it is a key elsewhere, not here"
            elif err["type"] == "missing":
                message = f"missing required key '{loc[-1]}'"
            issues.append(Issue(file, _data_path(data, loc), message, fix))
        raise TemplateError(issues) from None
