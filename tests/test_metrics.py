"""baton.metrics through Airflow's own metrics path, to a real StatsD listener (a UDP socket on
127.0.0.1) with Airflow's ``[metrics]`` StatsD settings: the exact lines, with and without InfluxDB-style
tags and legacy names; names cleaned of odd characters; huge counts; a metric never fails a step."""

from __future__ import annotations

import re
import socket

import pytest
from airflow.sdk.exceptions import AirflowSkipException, AirflowTaskTimeout
from airflow.sdk.observability.metrics import stats_utils
from airflow.sdk.observability.stats import Stats

from baton import metrics


class Listener:
    """A StatsD server's first job: every datagram it is sent, one metric line each."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def lines(self, quiet: float = 0.3) -> list[str]:
        """What arrived until nothing more does for ``quiet`` seconds."""
        got = []
        self.sock.settimeout(quiet)
        try:
            while True:
                got.extend(self.sock.recv(65536).decode().splitlines())
        except TimeoutError:
            return got


@pytest.fixture
def statsd(monkeypatch):
    """Airflow's StatsD settings pointing at a listener, and Airflow's Stats set up from them as the task
    runner sets it up in a task process; put back to no metrics after the test."""
    listener = Listener()
    for name, value in {
        "STATSD_ON": "True",
        "STATSD_HOST": "127.0.0.1",
        "STATSD_PORT": str(listener.port),
        "STATSD_PREFIX": "airflow",
        "LEGACY_NAMES_ON": "True",
    }.items():
        monkeypatch.setenv(f"AIRFLOW__METRICS__{name}", value)

    def start(**settings: str) -> Listener:
        for name, value in settings.items():
            monkeypatch.setenv(f"AIRFLOW__METRICS__{name.upper()}", value)
        Stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=True)
        return listener

    yield start
    from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger

    Stats.initialize(factory=NoStatsLogger, export_legacy_names=True)
    listener.sock.close()


def test_a_failed_try_and_a_model_call_send_these_lines(statsd):
    listener = statsd()
    metrics.step_ended("lead_check", "assess", 1.5, failed=True)
    metrics.model_called(
        "lead_check", "assess", "assessor", "gpt-5-mini", cost=0.07, input_tokens=52, output_tokens=9
    )
    assert listener.lines() == [
        "airflow.baton.step.duration:1500.000000|ms",
        "airflow.baton.step.duration.lead_check.assess:1500.000000|ms",
        "airflow.baton.step.failed:1|c",
        "airflow.baton.step.failed.lead_check.assess:1|c",
        "airflow.baton.model.cost:0.07|c",
        "airflow.baton.model.cost.assessor:0.07|c",
        "airflow.baton.model.input_tokens:52|c",
        "airflow.baton.model.input_tokens.assessor:52|c",
        "airflow.baton.model.output_tokens:9|c",
        "airflow.baton.model.output_tokens.assessor:9|c",
    ]


def test_with_influxdb_tags_the_dimensions_ride_as_tags_cleaned_of_odd_characters(statsd):
    listener = statsd(statsd_influxdb_enabled="True", legacy_names_on="False")
    metrics.model_called(
        "lead_check",
        "assess",
        "Ops Team/EU.west:1,x=y",
        "openai:gpt-4.1",
        cost=0,
        input_tokens=3,
        output_tokens=0,
    )
    metrics.step_ended("lead_check", "assess", 0.25, failed=False)
    assert listener.lines() == [
        "airflow.baton.model.input_tokens,workflow=lead_check,step=assess,agent=Ops_Team_EU.west_1_x_y,"
        "model=openai_gpt-4.1:3|c",
        "airflow.baton.step.duration,workflow=lead_check,step=assess:250.000000|ms",
    ]


def test_odd_long_and_huge_values_make_valid_names_and_counts(statsd):
    listener = statsd()
    long_agent = "a" * 300
    metrics.model_called(
        "w", "s", "Ops Team/EU.west:1", None, cost=float("inf"), input_tokens=10**30, output_tokens=-5
    )
    metrics.model_called("w", "s", long_agent, "m", cost=0, input_tokens=1, output_tokens=0)
    lines = listener.lines()
    assert lines[:2] == [
        "airflow.baton.model.input_tokens:9223372036854775807|c",
        "airflow.baton.model.input_tokens.Ops_Team_EU__west_1:9223372036854775807|c",
    ]
    hashed = metrics.part(long_agent)
    assert len(hashed) == metrics.MAX_PART and re.fullmatch(r"a{51}_[0-9a-f]{8}", hashed)
    assert lines[2:] == [
        "airflow.baton.model.input_tokens:1|c",
        f"airflow.baton.model.input_tokens.{hashed}:1|c",
    ]


def test_the_open_incidents_gauges_count_each_severity_zero_included(statsd):
    listener = statsd()
    metrics.open_incidents(["critical", "warning", "critical"])
    metrics.open_incidents([])
    assert listener.lines() == [
        "airflow.baton.incidents.open:3|g",
        "airflow.baton.incidents.open.info:0|g",
        "airflow.baton.incidents.open.warning:1|g",
        "airflow.baton.incidents.open.critical:2|g",
        "airflow.baton.incidents.open:0|g",
        "airflow.baton.incidents.open.info:0|g",
        "airflow.baton.incidents.open.warning:0|g",
        "airflow.baton.incidents.open.critical:0|g",
    ]


def test_a_try_is_timed_when_it_succeeds_or_fails_and_not_when_airflow_skips_it(statsd):
    listener = statsd(legacy_names_on="False")
    with metrics.step_try("w", "ok"):
        pass
    with pytest.raises(ValueError, match="broken"), metrics.step_try("w", "bad"):
        raise ValueError("broken")
    with pytest.raises(AirflowSkipException), metrics.step_try("w", "skipped"):
        raise AirflowSkipException("its condition is false")
    with pytest.raises(AirflowTaskTimeout), metrics.step_try("w", "slow"):  # no Exception, a failure
        raise AirflowTaskTimeout("Timeout, PID: 1")
    lines = listener.lines()
    assert [line.split(":")[0] for line in lines] == [
        "airflow.baton.step.duration",
        "airflow.baton.step.duration",
        "airflow.baton.step.failed",
        "airflow.baton.step.duration",
        "airflow.baton.step.failed",
    ]
    assert all(re.fullmatch(r"[a-z.]+:(\d+\.\d{6}\|ms|1\|c)", line) for line in lines), lines


def test_a_metric_that_cannot_be_sent_never_fails_the_step(statsd, monkeypatch, caplog):
    statsd()

    def broken(*args, **kwargs):
        raise RuntimeError("the metrics backend is down")

    monkeypatch.setattr(Stats, "timing", broken)
    with metrics.step_try("w", "s"):
        pass
    assert "Could not send the metric baton.step.duration" in caplog.text


def test_the_monitors_tick_sends_the_open_incidents_of_its_book(statsd, tmp_path):
    """A real tick on a store where an agent fails 40 % of 60 calls: one critical incident opens, and
    the gauges say so; the same tick without anything open sends zeros."""
    from datetime import UTC, datetime, timedelta

    from baton.events.migrations import upgrade
    from baton.events.store import EventStore, engine_for
    from baton.ops.monitor import loop
    from baton.spec.monitoring import Monitoring
    from tests.ops.test_monitor import _calls

    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(engine_for(url))
    store = EventStore(engine_for(url))
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    listener = statsd()
    assert loop.tick(store, Monitoring(), now).transitions == []
    store.append(_calls("alpha", now - timedelta(minutes=10), 10, 6, 0.4, 3))
    assert [t.type for t in loop.tick(store, Monitoring(), now).transitions][:1] == ["incident.opened"]
    gauges = [line for line in listener.lines() if ".incidents." in line]
    assert gauges == [
        "airflow.baton.incidents.open:0|g",
        "airflow.baton.incidents.open.info:0|g",
        "airflow.baton.incidents.open.warning:0|g",
        "airflow.baton.incidents.open.critical:0|g",
        "airflow.baton.incidents.open:1|g",
        "airflow.baton.incidents.open.info:0|g",
        "airflow.baton.incidents.open.warning:0|g",
        "airflow.baton.incidents.open.critical:1|g",
    ]
