"""Each detector firing and not firing: the quiet agent's 1 failure in 3, a failure storm at the demo's
rates, latency x3, a cost spike, a slow drift, a sensor that stops, missed scheduled runs, where a change
began; a week of seasonal noise with injected faults (bench/detectors_sim.py's world) and its
false-positive share; bad input; the cost of one evaluation."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from baton.ops import detectors as det
from baton.ops.detectors import Counts, Events, Points, Schedule, SignalError
from baton.spec.monitoring import Monitoring
from tests.bench.test_smoke import load_bench
from tests.counting import python_lines

ROOT = Path(__file__).resolve().parents[2]
D = Monitoring().detectors
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
NOW = datetime(2026, 11, 24, 14, 0, tzinfo=UTC).timestamp()  # a Tuesday, 14:00 UTC


def json_ready(verdict: det.Verdict) -> dict:
    return json.loads(json.dumps(verdict.as_dict(), allow_nan=False))


def steady_calls(per_minute: int, every_nth_bad: int, days: float = 7, end: float = NOW) -> Counts:
    """``per_minute`` calls a minute for ``days`` before ``end``; one bad call in ``every_nth_bad``. Each
    minute is stamped at its end, as baton.ops.monitor.signals stamps its buckets."""
    start = np.arange(end - days * DAY, end, MINUTE) + MINUTE
    total = np.full(len(start), per_minute)
    bad = (np.cumsum(total) // every_nth_bad) - (np.cumsum(total) - total) // every_nth_bad
    return Counts(start, total, bad)


def with_recent(history: Counts, recent: list[tuple[int, int]], end: float = NOW) -> Counts:
    """``history`` with its last minutes replaced by ``recent`` (calls, bad) per minute."""
    start, total, bad = history.start.copy(), history.total.copy(), history.bad.copy()
    for back, (calls, failed) in enumerate(reversed(recent), start=1):
        i = int(np.searchsorted(start, end - (back - 1) * MINUTE))
        total[i], bad[i] = calls, failed
    return Counts(start, total, bad)


# --- the rate of bad events -----------------------------------------------------------------------


def test_one_failure_in_three_calls_on_a_quiet_agent_does_not_fire():
    quiet = Counts([NOW - 50 * MINUTE, NOW - 30 * MINUTE, NOW - 2 * MINUTE], [1, 1, 1], [0, 1, 0])
    verdict = det.rate(quiet, NOW, D.failure_rate.rate)
    assert not verdict.anomalous
    assert verdict.reason == "too few calls to judge: 3 in the last 1h (at least 5)"
    assert json_ready(verdict)["baseline"] == {
        "from": NOW - 7 * DAY,
        "to": NOW - HOUR,
        "calls": 0,
        "bad": 0,
        "rate": 0.02,
        "prior_rate": 0.02,
        "prior_weight": 50.0,
    }
    # with a week of history at one call an hour, 2 of 6 in the last hour is still no incident
    history = Counts(np.arange(NOW - 7 * DAY, NOW - HOUR, HOUR) + HOUR, np.ones(167, int), np.zeros(167, int))
    recent = Counts(
        np.r_[history.start, NOW - np.arange(6, 0, -1) * 9 * MINUTE],
        np.r_[history.total, np.ones(6, int)],
        np.r_[history.bad, [0, 1, 0, 0, 1, 0]],
    )
    verdict = det.rate(recent, NOW, D.failure_rate.rate)
    assert not verdict.anomalous
    assert verdict.reason.startswith(
        "2 of 6 calls bad in the last 1h is within a baseline of 0.5 % (0 of 167 calls)"
    )


def test_six_failures_in_twenty_calls_against_a_two_percent_baseline_fire():
    counts = with_recent(steady_calls(4, 50), [(4, 1), (4, 2), (4, 1), (4, 0), (4, 2)])
    verdict = det.rate(counts, NOW, D.failure_rate.rate)
    assert verdict.anomalous
    assert verdict.reason == (
        "6 of 20 calls bad in the last 5m (30.0 %) against a baseline of 2.0 % (801 of 40080 calls): "
        "p = 2e-06 <= 3.3e-06"
    )
    evidence = json_ready(verdict)
    assert evidence["statistic"] == {"window_s": 300.0, "p_value": pytest.approx(2.0e-06, rel=0.05)}
    assert [(w["window_s"], w["calls"], w["bad"], w["fired"]) for w in evidence["windows"]] == [
        (300.0, 20, 6, True),
        (900.0, 60, 7, False),  # 7 of 60 is p = 2e-4: not enough on its own
        (3600.0, 240, 11, False),
    ]
    assert evidence["threshold"] == {
        "alpha_per_window": pytest.approx(1e-5 / 3),
        "min_calls": 5,
        "min_bad": 3,
        "min_ratio": 2.0,
    }
    # 2 of 20 is bad luck, not an incident
    calm = with_recent(steady_calls(4, 50), [(4, 1), (4, 0), (4, 1), (4, 0), (4, 0)])
    assert not det.rate(calm, NOW, D.failure_rate.rate).anomalous


def _storm(
    per_minute: float, seed: int, before: float = 2 * HOUR, during: float = 2 * HOUR
) -> tuple[Counts, float]:
    """A week at ``per_minute`` calls (Poisson) failing 2 %, then 30 % from ``NOW``; the storm's start."""
    rng = np.random.default_rng(seed)
    start = np.arange(NOW - 7 * DAY, NOW + during, MINUTE)
    total = rng.poisson(per_minute, len(start))
    bad = rng.binomial(total, np.where(start >= NOW, 0.30, 0.02))
    return Counts(start, total, bad), before


def _first_firing(counts: Counts, since: float, until: float) -> float | None:
    for now in np.arange(since, until, MINUTE):
        if det.rate(counts, now, D.failure_rate.rate).anomalous:
            return now
    return None


@pytest.mark.parametrize(
    ("per_minute", "median_min", "within_min"), [(4.0, 6, 15), (2.0, 12, 35), (0.5, 40, 80)]
)
def test_a_30_percent_storm_is_detected_within_minutes_at_the_demos_rates(per_minute, median_min, within_min):
    """The rates of bench/detectors_sim.py's agents by day: 4, 2 and 0.5 calls a minute. Twelve seeds: no
    firing in the hour before; the storm found in a median of ``median_min`` minutes, all within
    ``within_min`` (measured: 5.5 and 12, 11 and 33, 37 and 73: evidence takes failures, and a quiet agent
    has few)."""
    delays = []
    for seed in range(12):
        counts, _ = _storm(per_minute, seed)
        assert _first_firing(counts, NOW - HOUR, NOW) is None
        fired = _first_firing(counts, NOW, NOW + 2 * HOUR)
        assert fired is not None
        delays.append((fired - NOW) / MINUTE)
    assert np.median(delays) <= median_min and max(delays) <= within_min, delays


def test_a_storm_that_ended_stops_firing_within_minutes():
    rng = np.random.default_rng(3)
    start = np.arange(NOW - 7 * DAY, NOW + HOUR, MINUTE)
    total = rng.poisson(4, len(start))
    storm = (start >= NOW - 45 * MINUTE) & (start < NOW)
    counts = Counts(start, total, rng.binomial(total, np.where(storm, 0.3, 0.02)))
    assert det.rate(counts, NOW, D.failure_rate.rate).anomalous
    quiet_from = next(
        now
        for now in np.arange(NOW, NOW + HOUR, MINUTE)
        if not det.rate(counts, now, D.failure_rate.rate).anomalous
    )
    assert quiet_from - NOW <= 10 * MINUTE
    later = det.rate(counts, NOW + 20 * MINUTE, D.failure_rate.rate)
    assert not later.anomalous and later.reason.startswith("healthy again: ")
    assert all(
        not det.rate(counts, now, D.failure_rate.rate).anomalous
        for now in np.arange(NOW + 15 * MINUTE, NOW + HOUR, MINUTE)
    )


# --- latency and cost: median/MAD against the same time of day --------------------------------------


def _latency_week(
    seed: int, factor_from: float | None = None, factor: float = 3.0, per_minute: float = 3.0
) -> Points:
    """A fortnight of calls whose median latency follows the day (2 s at night, 3 s at 14:00), log-normal
    (sigma 0.35) with 1 % five times slower; times ``factor`` from ``factor_from``."""
    rng = np.random.default_rng(seed)
    minutes = np.arange(NOW - 14 * DAY, NOW + 2 * HOUR, MINUTE)
    calls = rng.poisson(per_minute, len(minutes))
    time_ = np.repeat(minutes, calls) + rng.uniform(0, MINUTE, calls.sum())
    time_.sort()
    hour = (time_ % DAY) / HOUR
    value = 2.0 * (1 + 0.5 * np.exp(-0.5 * ((hour - 14) / 3.5) ** 2)) * rng.lognormal(0, 0.35, len(time_))
    value *= np.where(rng.random(len(time_)) < 0.01, 5.0, 1.0)
    if factor_from is not None:
        value[time_ >= factor_from] *= factor
    return Points(time_, value)


def test_latency_times_three_fires_within_minutes_and_names_its_baseline():
    for seed in (1, 2, 3):
        points = _latency_week(seed, factor_from=NOW)
        assert not det.robust(points, NOW, D.latency.robust).anomalous
        fired = next(
            t for t in np.arange(NOW, NOW + HOUR, MINUTE) if det.robust(points, t, D.latency.robust).anomalous
        )
        assert fired - NOW <= 6 * MINUTE  # 3 calls a minute: the 5-minute median turns after half of it
    verdict = det.robust(points, NOW + 10 * MINUTE, D.latency.robust)
    assert verdict.anomalous
    assert "x the baseline's" in verdict.reason
    assert "(the same time of day (+/- 1h) on 7 previous days): z = " in verdict.reason
    evidence = json_ready(verdict)
    assert evidence["statistic"] == "median" and evidence["baseline"]["points"] > 1000
    assert 2.5 <= evidence["windows"][0]["ratio"] <= 3.6


def test_a_week_of_seasonal_latency_noise_never_fires():
    points = _latency_week(2)
    fired = [
        now
        for now in np.arange(NOW - 7 * DAY, NOW, 7 * MINUTE)
        if det.robust(points, now, D.latency.robust).anomalous
    ]
    assert fired == []


def test_a_cost_spike_fires_and_a_constant_cost_uses_the_least_spread():
    spike = _latency_week(4, factor_from=NOW, factor=4.0, per_minute=2.0)
    assert det.robust(spike, NOW + 15 * MINUTE, D.cost.robust).anomalous
    constant = Points(np.arange(NOW - 7 * DAY, NOW + HOUR, MINUTE), np.full(7 * 1440 + 60, 0.002))
    up3 = Points(constant.time, np.where(constant.time >= NOW, 0.00206, 0.002))  # +3 %: MAD 0, no alarm
    verdict = det.robust(up3, NOW + 30 * MINUTE, D.cost.robust)
    assert not verdict.anomalous and json_ready(verdict)["baseline"]["spread_log"] == 0.05
    tripled = Points(constant.time, np.where(constant.time >= NOW, 0.006, 0.002))
    assert det.robust(tripled, NOW + 5 * MINUTE, D.cost.robust).anomalous


def test_the_largest_finite_measurements_over_values_at_the_floor_fire_with_a_bounded_ratio():
    # log(1.7e308) - log(0.05), latency's floor, is 713: its exp raised OverflowError in both detectors (and the tick)
    week = np.arange(NOW - 7 * DAY, NOW + HOUR, MINUTE)
    huge = Points(week, np.where(week >= NOW, 1.7e308, 1e-9))
    robust = det.robust(huge, NOW + 30 * MINUTE, D.latency.robust)
    drift = det.drift(huge, NOW + 30 * MINUTE, D.latency.drift)
    assert robust.anomalous and drift.anomalous
    assert max(row["ratio"] for row in json_ready(robust)["windows"]) == math.exp(700.0)
    assert json_ready(drift)["level_ratio"] == math.exp(700.0)
    assert "1.7e+308 over the last" in robust.reason and drift.reason.startswith("crept up for 30m: ")
    # the capped ratio reads 1.01e+304x, not the 300 digits of .2f
    assert "is 1.01e+304x the baseline's" in robust.reason and len(robust.reason) < 300, robust.reason
    assert ": 1.01e+304x the reference" in drift.reason and len(drift.reason) < 300, drift.reason


def test_robust_needs_history_and_points():
    few = Points([NOW - 60, NOW - 30], [1.0, 2.0])
    verdict = det.robust(few, NOW, D.latency.robust)
    assert (verdict.anomalous, verdict.reason) == (
        False,
        "too little history to judge: 0 baseline points (at least 30)",
    )


def test_the_drift_detector_catches_a_slow_creep_and_forgets_it_once_it_is_over():
    rng = np.random.default_rng(5)
    time_ = np.sort(rng.uniform(NOW - 10 * DAY, NOW + 12 * HOUR, 200_000))
    hour = (time_ % DAY) / HOUR
    value = (1 + 0.4 * np.exp(-0.5 * ((hour - 14) / 3.5) ** 2)) * rng.lognormal(0, 0.35, len(time_))
    creep = np.clip((time_ - (NOW - 6 * HOUR)) / (6 * HOUR), 0, 1) * (time_ < NOW + 4 * HOUR)
    points = Points(time_, value * (1 + 0.5 * creep))  # +50 % over 6 hours, held 4 hours, then gone
    cfg = D.latency.drift
    quiet = [
        now
        for now in np.arange(NOW - 4 * DAY, NOW - 6 * HOUR, 30 * MINUTE)
        if det.drift(points, now, cfg).anomalous
    ]
    assert quiet == []
    fired = next(
        now
        for now in np.arange(NOW - 6 * HOUR, NOW + 4 * HOUR, 10 * MINUTE)
        if det.drift(points, now, cfg).anomalous
    )
    assert fired <= NOW + HOUR
    verdict = det.drift(points, NOW + 2 * HOUR, cfg)
    assert verdict.anomalous and verdict.reason.startswith("crept up for ")
    assert json_ready(verdict)["level_ratio"] >= 1.2
    assert not det.drift(points, NOW + 5 * HOUR, cfg).anomalous  # an hour after it ended


# --- silence and schedule -------------------------------------------------------------------------


def _sensor(seed: int, stop_at: float | None) -> Events:
    """A sensor finding rows about once a minute by day, 5 % of that at night, for 8 days."""
    rng = np.random.default_rng(seed)
    minutes = np.arange(NOW - 8 * DAY, NOW + 4 * HOUR, MINUTE)
    hour = (minutes % DAY) / HOUR
    found = rng.poisson(np.maximum(np.exp(-0.5 * ((hour - 14) / 3.5) ** 2), 0.05))
    if stop_at is not None:
        found[minutes >= stop_at] = 0
    return Events(np.repeat(minutes, found) + rng.uniform(0, MINUTE, found.sum()), since=NOW - 8 * DAY)


def test_a_sensor_that_stops_finding_rows_fires_and_a_quiet_night_does_not():
    events = _sensor(6, stop_at=NOW)
    fired = next(
        now
        for now in np.arange(NOW, NOW + 2 * HOUR, MINUTE)
        if det.silence(events, now, D.sensor_silence.silence).anomalous
    )
    assert fired - NOW <= 25 * MINUTE
    assert json_ready(det.silence(events, fired, D.sensor_silence.silence))["silence_s"] >= 15 * MINUTE
    verdict = det.silence(events, NOW + HOUR, D.sensor_silence.silence)
    assert verdict.reason.startswith("no event for 1h") and "were expected" in verdict.reason
    healthy = _sensor(7, stop_at=None)
    nights = [
        now
        for now in np.arange(NOW - 7 * DAY, NOW, 5 * MINUTE)
        if det.silence(healthy, now, D.sensor_silence.silence).anomalous
    ]
    assert nights == []
    assert det.silence(Events([]), NOW, D.sensor_silence.silence).reason == (
        "no event yet: nothing to compare the silence with"
    )


def test_missed_scheduled_runs_fire_until_runs_start_again():
    expected = np.arange(NOW - DAY, NOW + 2 * HOUR, 5 * MINUTE)
    started = expected + 20
    gap = (expected >= NOW) & (expected < NOW + 30 * MINUTE)
    runs = Schedule(expected, started[~gap])
    cfg = D.runs_started.schedule
    assert not det.schedule(runs, NOW + 9 * MINUTE, cfg).anomalous
    verdict = det.schedule(runs, NOW + 10 * MINUTE, cfg)
    assert verdict.anomalous
    assert (
        verdict.reason
        == "the last 1 scheduled run(s) did not start within 10m (since 2026-11-24T14:00:00+00:00)"
    )
    assert not det.schedule(runs, NOW + 40 * MINUTE, cfg).anomalous  # the 14:30 run started
    assert json_ready(det.schedule(runs, NOW + 40 * MINUTE, cfg))["missed_count"] == 6
    early = Schedule(expected, expected - 45)  # clocks 45 s apart: still on time
    assert det.schedule(early, NOW, cfg).reason.startswith("all ")


# --- when did it start ----------------------------------------------------------------------------


def test_change_points_locate_when_an_incident_started():
    rng = np.random.default_rng(8)
    time_ = np.arange(NOW - 6 * HOUR, NOW, 20.0)
    value = rng.lognormal(0, 0.3, len(time_)) * np.where(time_ >= NOW - 90 * MINUTE, 3.0, 1.0)
    report = det.when_started(Points(time_, value), NOW - 80 * MINUTE, log=True)
    assert abs(report["started_at"] - (NOW - 90 * MINUTE)) <= 2 * MINUTE
    assert report["after"] / report["before"] == pytest.approx(3.0, rel=0.15)
    json.dumps(report, allow_nan=False)
    counts, _ = _storm(4.0, 9)
    shares = det.rates(counts, 5 * MINUTE)
    window = shares.time >= NOW - 6 * HOUR
    started = det.when_started(Points(shares.time[window], shares.value[window]), NOW + 30 * MINUTE)
    assert abs(started["started_at"] - NOW) <= 10 * MINUTE
    assert det.change_points(Points([1.0, 2.0], [1.0, 1.0]))["changes"] == []


# --- the whole: a labelled week -------------------------------------------------------------------


def test_a_seasonal_week_with_injected_faults_has_at_most_one_false_alert_and_catches_every_fault():
    """bench/detectors_sim.py's world (another seed than the bench's), its busy and quiet agents, a
    sensor and the scheduled workflow, evaluated every 10 minutes (the bench runs every minute).

    A week here holds about ten alerts, so one false alert is 9 to 11 % of them: the test allows one
    (this seed has one: the busy agent, after its fault's 30 minutes of attribution) and never more
    than 10 %. Six seeds of this setting gave 1 false alert of 53 in all; the bench, every minute and
    every scope, 0 of 13."""
    sim = load_bench("detectors_sim")
    scopes = {
        "agent:marketing_lead_generator",
        "agent:strategy_strategic_planner",
        "sensor:lead_qualification__sensor",
        sim.SCHEDULED,
    }
    _, alerts, _, _ = sim.run(seed=11, scale=1.0, every=10, only=scopes)
    false = [alert for alert in alerts if alert.fault is None]
    caught = {alert.fault for alert in alerts} - {None}
    expected = {fault.name for fault in sim.FAULTS if fault.where in scopes}
    assert len(false) <= 1 and len(false) / len(alerts) <= 0.10, (false, len(alerts))
    assert caught == expected


# --- input, dispatch, cost ------------------------------------------------------------------------


def test_bad_series_are_refused_with_their_fix():
    with pytest.raises(SignalError, match=r"^the second series has 2 entries but the times have 3$"):
        Counts([1, 2, 3], [1, 1], [0, 0])
    with pytest.raises(SignalError, match=r"^bucket 1 has 3 bad of 2 calls: 'bad' is part of 'total'$"):
        Counts([1, 2], [1, 2], [0, 3])
    with pytest.raises(SignalError, match=r"^'value'\[1\] is nan: drop it or replace it by a number$"):
        Points([1, 2], [1.0, float("nan")])
    with pytest.raises(SignalError, match=r"^'time' must be one-dimensional, got shape \(1, 2\)$"):
        Points([[1, 2]], [[1, 2]])
    with pytest.raises(
        SignalError, match=r"has no timezone: pass an aware datetime \(UTC\) or epoch seconds$"
    ):
        det.rate(Counts([], [], []), datetime(2026, 1, 1), D.failure_rate.rate)
    with pytest.raises(SignalError, match=r"^'total' and 'bad' count events: they cannot be negative$"):
        Counts([1], [-1], [0])
    shuffled = Points([3.0, 1.0, 2.0], [30.0, 10.0, 20.0])
    assert shuffled.time.tolist() == [1.0, 2.0, 3.0] and shuffled.value.tolist() == [10.0, 20.0, 30.0]


def test_detect_runs_a_signals_detectors_and_checks_its_input():
    monitoring = Monitoring.model_validate(
        {"detectors": {"cost": {"drift": None}, "tokens": {"enabled": False}}}
    )
    points = _latency_week(9)
    assert [v.detector for v in det.detect("latency", points, NOW, monitoring.detectors)] == [
        "robust",
        "drift",
    ]
    assert [v.detector for v in det.detect("cost", points, NOW, monitoring.detectors)] == ["robust"]
    assert det.detect("tokens", points, NOW, monitoring.detectors) == []
    with pytest.raises(SignalError, match=r"^the signal 'failure_rate' is measured as Counts, got Points$"):
        det.detect("failure_rate", points, NOW, monitoring.detectors)


def _with_older_history(data: Counts | Points | Events | Schedule, copies: int):
    """``data`` with ``copies`` more of its history before it: copies shifted back by whole weeks (the time
    of day and the weekday keep their pattern), so that what a detector's windows look at is the same."""

    def back(times: np.ndarray, period: float) -> np.ndarray:
        return np.concatenate([times - k * period for k in range(copies, -1, -1)])

    def again(values: np.ndarray) -> np.ndarray:
        return np.tile(values, copies + 1)

    def weeks(*times: np.ndarray) -> float:
        every = np.concatenate(times)
        return math.ceil((float(every.max() - every.min()) + 1) / (7 * DAY)) * 7 * DAY

    if isinstance(data, Counts):
        period = weeks(data.start)
        return Counts(back(data.start, period), again(data.total), again(data.bad))
    if isinstance(data, Points):
        period = weeks(data.time)
        return Points(back(data.time, period), again(data.value))
    if isinstance(data, Events):
        period = weeks(data.time)
        since = None if data.since is None else data.since - copies * period
        return Events(back(data.time, period), since=since)
    period = weeks(data.expected, data.started)
    return Schedule(back(data.expected, period), back(data.started, period))


def test_a_detectors_work_does_not_grow_with_the_history_it_is_given():
    """What made each evaluation cost milliseconds on a week of history, counted instead of timed: each
    detector finds its windows by binary search and computes over them in numpy, so the Python lines it runs
    (its own and numpy's and scipy's, the same count on a busy machine as on an idle one) are the same for
    a week of history and for that week with eight more weeks before it. A detector that looped over the
    points in Python would run one line or more per point: the counter sees such a loop grow."""
    counts = steady_calls(4, 50)
    points = _latency_week(10)  # ~60,000 points over a fortnight
    events, runs = (
        _sensor(11, None),
        Schedule(np.arange(NOW - DAY, NOW, 60.0), np.arange(NOW - DAY, NOW, 60.0) + 5),
    )
    cases = [
        (det.rate, counts, D.failure_rate.rate),
        (det.robust, points, D.latency.robust),
        (det.drift, points, D.latency.drift),
        (det.silence, events, D.sensor_silence.silence),
        (det.schedule, runs, D.runs_started.schedule),
    ]
    for detector, data, cfg in cases:
        longer = _with_older_history(data, 8)
        for at in (NOW, NOW - MINUTE, NOW - 2 * MINUTE):
            week = python_lines(partial(detector, data, at, cfg))
            weeks = python_lines(partial(detector, longer, at, cfg))
            assert 0 < week == weeks, (detector.__name__, week, weeks)
    per_point = [python_lines(lambda n=n: [float(v) for v in points.value[:n]]) for n in (1000, 2000)]
    assert per_point[1] - per_point[0] >= 1000  # a loop over the points is seen: one line a point at least


def test_the_simulation_bench_runs_and_ends_with_its_figures():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "detectors_sim.py"), "--scale", "0.02"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert re.fullmatch(r"MTTD (\d+|nan) s, false positives \d+ of \d+ alerts \(\d+\.\d %\)", lines[-1]), (
        lines[-1]
    )
    assert lines[0].startswith(
        "4 agents, 2 sensors, 1 scheduled workflow; 0.14 labelled days after 7 days of history"
    )
    refused = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "detectors_sim.py"), "--scale", "2"],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "argument --scale: 2.0 is not above 0 and at most 1" in refused.stderr
