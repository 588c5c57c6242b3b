"""``dags/monitoring.yaml``: which detector watches each signal, how anomalies become incidents, when
nobody should be paged (maintenance), and what Baton does about an incident by itself (runbooks).

The file is a mapping with one key, ``monitoring:``. Every key has a default that suits workflows running
every few minutes to daily, so an empty ``monitoring: {}`` (or no file) is a complete configuration; a key
given for one signal replaces only that key of the signal's defaults. It is read like every file a user
writes (:class:`baton.spec.loading.Source`: bounded, UTF-8, no duplicate keys), and unknown keys,
impossible numbers and absurd windows are refused with the file's line, the key's path and the fix.

Where an anomaly is, is a *scope*: ``agent:<name>``, ``workflow:<id>``, ``step:<workflow>.<step>`` or
``sensor:<dag id>``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from baton.spec.common import Span, Strict, show
from baton.spec.detectors import DAY, MINUTE, TICK_BOUNDS, Count, Detectors, SignalKind
from baton.spec.loading import Source
from baton.spec.located import Located
from baton.spec.runbooks import ACTIONS, DEFAULT_RUNBOOKS, Runbook

FILE = "monitoring.yaml"  # in the dags folder

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
    "platform": "critical",
}


class Incidents(Strict):
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


class MaintenanceWindow(Strict):
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


# --- the document ---------------------------------------------------------------------------------


class Monitoring(Strict):
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
        default_factory=lambda: {kind: list(actions) for kind, actions in DEFAULT_RUNBOOKS.items()},
        validate_default=True,
        description="per incident type (its signal kind), the actions Baton takes in order; a kind given "
        "here replaces its default runbook, [] turns it off",
    )

    @field_validator("runbooks", mode="before")
    @classmethod
    def _over_default_runbooks(cls, value: Any) -> Any:
        return {**DEFAULT_RUNBOOKS, **value} if isinstance(value, dict) else value

    def maintenance_at(self, now: datetime, where: str | None = None) -> MaintenanceWindow | None:
        """The maintenance window covering ``where`` at ``now``, if any."""
        return next((window for window in self.maintenance if window.covers(now, where)), None)


class MonitoringDocument(Strict):
    """``dags/monitoring.yaml``: one key, ``monitoring``."""

    TOP_FIX: ClassVar[str] = "start with 'monitoring:'"
    LOC_TAGS: ClassVar[frozenset[str]] = frozenset(ACTIONS)  # the runbook action pydantic tried

    monitoring: Monitoring = Field(default_factory=Monitoring)


# --- reading --------------------------------------------------------------------------------------


def load_config(dags: Path) -> Monitoring:
    """``dags/monitoring.yaml`` (its problems named relative to ``dags``), or the defaults when there is
    none."""
    path = dags / FILE
    return read_monitoring(path, dags) if path.exists() else Monitoring()


def read_monitoring(path: Path, root: Path | None = None) -> Monitoring:
    """A monitoring file, read like a template (bounded, UTF-8, no duplicate keys), or ``TemplateError``
    listing every problem at its line, key path and fix."""
    source = Source(path, root)
    return source.validate(MonitoringDocument, source.parse()).monitoring


def load_monitoring(data: Any, file: str = "dags/monitoring.yaml") -> Monitoring:
    """The ``monitoring:`` section of ``data`` (a parsed YAML document), or ``TemplateError`` listing
    every problem with its key path and fix (no line: the data is not read from a file here)."""
    return Located(file).validate(MonitoringDocument, data).monitoring
