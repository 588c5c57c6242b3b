"""Baton's metrics, sent the way Airflow sends its own: through the task SDK's ``Stats`` and the
``[metrics]`` settings (StatsD, DogStatsD or OpenTelemetry), so a Grafana or Prometheus that already
reads Airflow's metrics reads these beside them (with Airflow's ``statsd_prefix``, ``airflow.`` by default).

====================================  ========  ==========================================================
metric                                kind      dimensions (tags; in the name too, see below)
====================================  ========  ==========================================================
``baton.step.duration``               timer ms  workflow, step: a try that succeeded or failed
``baton.step.failed``                 counter   workflow, step
``baton.model.cost``                  counter   workflow, step, agent, model (name: agent): at the roster's
                                                prices, in the currency of your bill
``baton.model.input_tokens``          counter   the same
``baton.model.output_tokens``         counter   the same
``baton.incidents.open``              gauge     the incidents not resolved (open or acknowledged)
``baton.incidents.open.<severity>``   gauge     the same, of one severity (info, warning, critical; 0 too)
====================================  ========  ==========================================================

As Airflow does with ``[metrics] legacy_names_on`` (its default), each dimensioned metric is also sent
under a name that carries its dimensions, for a StatsD without tags: ``baton.step.duration.<workflow>.
<step>``, ``baton.step.failed.<workflow>.<step>``, ``baton.model.cost.<agent>`` (and the tokens).

A dimension is a name from a template or the roster (workflow, step, agent, model, severity): never an
item, a run, a person or any text of a prompt. Each is cleaned for a metric name (letters, digits, ``_``
and ``-``; a dot becomes ``__`` as in Airflow's names) and cut to 60 characters. Sending a metric never
fails a step. A process sends them where Airflow set its ``Stats`` up to (a task process always, from
``[metrics]``); with metrics off, nowhere.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

SEVERITIES = ("info", "warning", "critical")  # the monitor's (baton.spec.monitoring.SEVERITIES)
MAX_PART = 60
MAX_COUNT = 2**63 - 1  # OTLP's int64; a StatsD line takes any integer, OpenTelemetry's export does not
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_UNSAFE_TAG = re.compile(r"[^A-Za-z0-9_.-]")


def _cut(text: str, clean: str) -> str:
    if len(clean) <= MAX_PART:
        return clean or "_"
    return clean[: MAX_PART - 9] + "_" + hashlib.sha256(text.encode()).hexdigest()[:8]


def part(value: Any) -> str:
    """``value`` as one part of a dotted metric name (no dot of its own; a long one keeps a hash)."""
    text = str(value)
    return _cut(text, _UNSAFE.sub("_", text.replace(".", "__")))


def tag(value: Any) -> str:
    """``value`` as a tag value: no ``,``, ``=``, ``:``, ``|`` or space (which StatsD's tag formats use)."""
    text = str(value)
    return _cut(text, _UNSAFE_TAG.sub("_", text))


def _count(value: Any) -> int:
    return max(0, min(int(value or 0), MAX_COUNT))


def _legacy_names() -> bool:
    """Airflow's ``[metrics] legacy_names_on``: read once per call of this module (a read takes ~15 µs)."""
    try:
        from airflow.sdk.configuration import conf

        return conf.getboolean("metrics", "legacy_names_on", fallback=True)
    except Exception:
        return True


def _send(
    kind: str, name: str, value: Any, tags: dict[str, Any], named_by: Iterable[Any] = (), legacy: bool = False
) -> None:
    """One metric through Airflow's ``Stats``; with ``legacy``, also under the name with its dimensions."""
    try:
        from airflow.sdk.observability.stats import Stats

        send = getattr(Stats, kind)
        send(name, value, tags={key: tag(v) for key, v in tags.items()})
        if legacy and (names := [part(v) for v in named_by]):
            send(".".join([name, *names]), value)
    except Exception:  # a metric never fails a step
        log.warning("Could not send the metric %s", name, exc_info=True)


def step_ended(workflow: str, step: str, seconds: float, *, failed: bool) -> None:
    """A step's try ended after ``seconds``: ``baton.step.duration``, and ``baton.step.failed`` if so."""
    dims, legacy = {"workflow": workflow, "step": step}, _legacy_names()
    _send("timing", "baton.step.duration", max(0.0, seconds) * 1000, dims, (workflow, step), legacy)
    if failed:
        _send("incr", "baton.step.failed", 1, dims, (workflow, step), legacy)


@contextmanager
def step_try(workflow: str, step: str) -> Iterator[None]:
    """Times a step's try: its duration once it succeeds or fails (Airflow's timeout and termination
    too), and the failure. Airflow's control flow (a skip, a reschedule, a deferral, a step parked for a
    person) is not an end of the work."""
    from airflow.sdk.exceptions import (
        AirflowRescheduleException,
        AirflowSkipException,
        AirflowTaskTerminated,
        AirflowTaskTimeout,
    )

    began = time.monotonic()
    try:
        yield
    except (AirflowSkipException, AirflowRescheduleException):
        raise
    except (Exception, AirflowTaskTimeout, AirflowTaskTerminated):
        step_ended(workflow, step, time.monotonic() - began, failed=True)
        raise
    step_ended(workflow, step, time.monotonic() - began, failed=False)


def model_called(
    workflow: str,
    step: str,
    agent: str,
    model: str | None,
    *,
    cost: float,
    input_tokens: int,
    output_tokens: int,
) -> None:
    """A model call's cost (at the roster's prices) and tokens."""
    dims = {"workflow": workflow, "step": step, "agent": agent, "model": model or "unknown"}
    legacy, cost = _legacy_names(), float(cost or 0)
    if math.isfinite(cost) and cost > 0:
        _send("incr", "baton.model.cost", cost, dims, (agent,), legacy)
    for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
        if count := _count(value):
            _send("incr", f"baton.model.{name}", count, dims, (agent,), legacy)


def open_incidents(severities: Iterable[str]) -> None:
    """Gauges of the incidents not resolved, one severity each (what the monitor's book holds after a
    tick): ``baton.incidents.open`` and one ``baton.incidents.open.<severity>`` per severity, 0 included
    (a gauge that is no longer sent keeps its last value)."""
    counts = dict.fromkeys(SEVERITIES, 0)
    for severity in severities:
        counts[severity] = counts.get(severity, 0) + 1
    _send("gauge", "baton.incidents.open", sum(counts.values()), {})
    for severity, count in counts.items():
        _send("gauge", f"baton.incidents.open.{part(severity)}", count, {})
