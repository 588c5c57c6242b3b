"""Capacity planning (issue 19): hourly bucketing, the seasonal forecast and its fallbacks, Erlang C, the
recommendation checked against a simulation, hostile input, and the benchmark's smoke run."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from baton.errors import BatonError
from baton.ops import capacity
from baton.ops.capacity import CapacityError, Service
from tests.counting import BATON, python_lines

ROOT = Path(__file__).resolve().parents[2]
NAIVE_FIX = (
    "has no time zone: Baton counts hours in UTC and will not guess a zone (fix: give an aware datetime, "
    "an ISO 8601 string with an offset such as +00:00, or epoch seconds)"
)


def refused(call, *args, **kwargs) -> str:
    with pytest.raises(CapacityError) as caught:
        call(*args, **kwargs)
    assert isinstance(caught.value, BatonError)
    return str(caught.value)


def at(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


# --- hourly bucketing ---------------------------------------------------------------------------------


def test_hourly_zero_fills_the_gaps_and_books_each_record_to_the_utc_hour_it_started_in():
    records = [
        (datetime(2024, 1, 1, 10, 5, tzinfo=UTC), "writer", 3.0),
        (datetime(2024, 1, 1, 10, 59, 59, tzinfo=UTC), "writer", 5.0),
        ("2024-01-01T12:30:00+02:00", "lead_qualification", 120.0),  # 10:30 UTC
        (datetime(2024, 1, 1, 13, 0, tzinfo=UTC).timestamp(), "writer", 2.0),  # epoch seconds
    ]
    demand = capacity.hourly(records)
    hours = pd.date_range(at("2024-01-01 10:00"), periods=4, freq="h")
    expected = pd.DataFrame({"lead_qualification": [1, 0, 0, 0], "writer": [2, 0, 0, 1]}, index=hours)
    pd.testing.assert_frame_equal(demand.counts, expected, check_names=False)
    busy = pd.DataFrame({"lead_qualification": [120.0, 0, 0, 0], "writer": [8.0, 0, 0, 2.0]}, index=hours)
    pd.testing.assert_frame_equal(demand.busy, busy, check_names=False)
    assert demand.counts.index.tz is not None and str(demand.counts.index.tz) == "UTC"
    assert demand.service == {
        "lead_qualification": Service(calls=1, mean_s=120.0, cv=0.0),
        "writer": Service(calls=3, mean_s=10 / 3, cv=pytest.approx(np.std([3, 5, 2], ddof=1) / (10 / 3))),
    }


def test_hourly_buckets_by_the_instant_whatever_the_zone_half_hour_offsets_and_a_dst_change_included():
    berlin, kolkata = ZoneInfo("Europe/Berlin"), ZoneInfo("Asia/Kolkata")
    records = [
        (datetime(2024, 3, 31, 1, 30, tzinfo=berlin), "a", 1.0),  # CET, +01: 00:30 UTC
        (
            datetime(2024, 3, 31, 3, 30, tzinfo=berlin),
            "a",
            1.0,
        ),  # CEST, +02 (02:00 never happened): 01:30 UTC
        (datetime(2024, 3, 31, 6, 45, tzinfo=kolkata), "a", 1.0),  # +05:30: 01:15 UTC
        (datetime(2024, 3, 30, 20, 59, tzinfo=timezone(timedelta(hours=-4))), "a", 1.0),  # 00:59 UTC
        ("2024-03-31T02:00:00Z", "a", 1.0),
    ]
    counts = capacity.hourly(records).counts["a"]
    assert counts.to_dict() == {
        at("2024-03-31 00:00"): 2,
        at("2024-03-31 01:00"): 2,
        at("2024-03-31 02:00"): 1,
    }


def test_hourly_takes_a_dataframe_and_a_window_zero_filled_from_start_to_end():
    frame = pd.DataFrame(
        {
            "timestamp": [at("2024-01-01 08:10"), at("2024-01-01 09:20"), at("2024-01-01 12:00")],
            "key": ["a", "a", "a"],
            "duration_s": [1.0, 2.0, 4.0],
            "ignored": ["x", "y", "z"],
        }
    )
    demand = capacity.hourly(
        frame, start=datetime(2024, 1, 1, 9, tzinfo=UTC), end=datetime(2024, 1, 1, 14, tzinfo=UTC)
    )
    assert demand.counts["a"].tolist() == [1, 0, 0, 1, 0]  # 09:00 to 13:00; 08:10 is before the window
    assert demand.counts.index[0] == at("2024-01-01 09:00") and demand.counts.index[-1] == at(
        "2024-01-01 13:00"
    )
    assert demand.dropped == 1


def test_hourly_refuses_what_it_cannot_bucket_naming_the_record_the_field_and_the_fix():
    ok = datetime(2024, 1, 1, tzinfo=UTC)
    cases = [
        ([], "no records: the history is empty (fix: record runs first, or widen the window)"),
        (
            [(ok, "a", 1.0), (ok, "a", float("nan"))],
            "records[1] (key 'a'): duration_s is nan: a duration is a finite number of seconds >= 0 "
            "(fix: drop the record or record its real duration)",
        ),
        (
            [(ok, "a", -2.5)],
            "records[0] (key 'a'): duration_s is -2.5: a duration is a finite number of seconds >= 0 "
            "(fix: drop the record or record its real duration)",
        ),
        (
            [(ok, "a", 1), (ok, "b", "slow")],
            "records[1] (key 'b'): duration_s is 'slow': a duration is a finite number of seconds >= 0 "
            "(fix: drop the record or record its real duration)",
        ),
        (
            [(ok, "a", float("inf"))],
            "records[0] (key 'a'): duration_s is inf: a duration is a finite number of seconds >= 0 "
            "(fix: drop the record or record its real duration)",
        ),
        (
            [(datetime(2024, 1, 1, 10), "a", 1.0)],
            f"records[0] (key 'a'): timestamp '2024-01-01T10:00:00' {NAIVE_FIX}",
        ),
        (
            [(ok, "a", 1.0), (datetime(2024, 1, 1, 10), "b", 1.0)],
            f"records[1] (key 'b'): timestamp '2024-01-01T10:00:00' {NAIVE_FIX}",
        ),
        (
            [("2024-01-01T10:00:00+02:00", "a", 1.0), ("2024-01-01T11:00:00", "a", 1.0)],
            f"records[1] (key 'a'): timestamp '2024-01-01T11:00:00' {NAIVE_FIX}",
        ),
        (
            [("2024-01-01T10:00:00Z", "a", 1.0), ("next tuesday", "a", 1.0)],
            "records[1] (key 'a'): timestamp 'next tuesday' is not a date and time (fix: give an aware "
            "datetime, an ISO 8601 string with an offset, or epoch seconds)",
        ),
        (
            [(1.7e9, "a", 1.0), (float("nan"), "a", 1.0)],
            "records[1] (key 'a'): timestamp nan is not a time in epoch seconds (fix: give seconds since "
            "1970-01-01 UTC, or an aware datetime)",
        ),
        (
            [(ok, None, 1.0)],
            "records[0]: key is None, not a name (fix: give the workflow's or the agent's name as a string)",
        ),
        (
            [(ok, "a", 1.0), (ok, 7, 1.0)],
            "records[1]: key is 7, not a name (fix: give the workflow's or the agent's name as a string)",
        ),
        (
            [(ok, "a", 1.0), (ok, "  ", 1.0)],
            "records[1]: key is empty (fix: give the workflow's or the agent's name)",
        ),
        (
            [(ok, "a", 1.0), (ok, "a")],
            "records[1] has 2 fields, not 3 (fix: give (timestamp, key, duration_s) for each record)",
        ),
        (
            [(ok, "a", 1.0), "abc"],
            "records[1] is 'abc', not a (timestamp, key, duration_s) triple (fix: give a tuple or list of three "
            "fields for each record)",
        ),
        (
            None,
            "records is None, not a sequence of (timestamp, key, duration_s) (fix: give a list of triples or a "
            "DataFrame)",
        ),
        (
            pd.DataFrame({"timestamp": [ok], "key": ["a"]}),
            "records lack the column(s) duration_s (fix: give a DataFrame with the columns timestamp, key, "
            "duration_s)",
        ),
    ]
    for records, message in cases:
        assert refused(capacity.hourly, records) == message, records
    huge = refused(capacity.hourly, [(0, "a", 1.0), (4.2e9, "a", 1.0)], max_cells=1_000_000)  # 1970 and 2103
    assert huge == (
        "the history spans 1,166,667 hours x 1 keys = 1,166,667 cells, more than max_cells=1,000,000 "
        "(fix: pass start= to keep recent history, or fewer keys per call)"
    )
    window = (datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC))
    assert refused(capacity.hourly, [(ok, "a", 1.0)], start=window[0], end=window[1]) == (
        "no records in the window [2024-01-02 00:00:00+00:00, 2024-01-03 00:00:00+00:00): all 1 are outside it "
        "(fix: widen the window)"
    )
    assert refused(capacity.hourly, [(ok, "a", 1.0)], start=datetime(2024, 1, 1)) == (
        f"start=2024-01-01 00:00:00 {NAIVE_FIX}"
    )


def test_hourly_of_one_record_is_one_hour():
    demand = capacity.hourly([(datetime(2024, 5, 1, 7, 42, tzinfo=UTC), "a", 9.0)])
    assert demand.counts.shape == (1, 1) and demand.counts.index[0] == at("2024-05-01 07:00")
    assert demand.busy.iloc[0, 0] == 9.0 and demand.service["a"] == Service(calls=1, mean_s=9.0, cv=0.0)


def _records(n: int) -> tuple[np.ndarray, np.ndarray, Any]:
    """``n`` records over eight weeks, as an iterable (not a list): their times, durations and the records."""
    rng = np.random.default_rng(1)
    seconds = 1.7e9 + rng.uniform(0, 8 * 7 * 86400, n)
    keys = rng.choice(np.array(["researcher", "writer", "lead_qualification"], dtype=object), n)
    durations = rng.exponential(30.0, n)
    return seconds, durations, zip(seconds.tolist(), keys.tolist(), durations.tolist(), strict=True)


def test_hourly_buckets_records_in_numpy_not_in_a_python_loop():
    """Baton's part of bucketing runs the same Python lines for a thousand records as for a hundred
    thousand (counted, not timed: what made a million records take about 1.5 s here on an idle machine)."""
    few, many = _records(1_000)[2], _records(100_000)[2]
    lines = python_lines(lambda: capacity.hourly(few), BATON)
    assert 0 < lines == python_lines(lambda: capacity.hourly(many), BATON)


def test_hourly_buckets_a_million_records():
    n = 1_000_000
    seconds, durations, records = _records(n)
    demand = capacity.hourly(records)
    assert int(demand.counts.to_numpy().sum()) == n
    assert demand.busy.to_numpy().sum() == pytest.approx(durations.sum())
    assert demand.counts.shape == (int(seconds.max()) // 3600 - int(seconds.min()) // 3600 + 1, 3)
    assert demand.service["writer"].mean_s == pytest.approx(30.0, rel=0.02)
    assert demand.service["writer"].cv == pytest.approx(1.0, rel=0.02)  # exponential


# --- forecast -----------------------------------------------------------------------------------------


def seasonal(weeks: int, seed: int, noise: float = 0.05) -> tuple[pd.Series, np.ndarray]:
    """Hourly runs: two daily peaks (10:00, 16:00), a quieter Friday, weekends at 30 %, a slow decline, and
    noise (each hour's rate times a lognormal factor, then Poisson counts). Not bench/capacity.py's shape."""
    rng = np.random.default_rng(seed)
    hour = np.arange(weeks * capacity.WEEK)
    of_day, day = hour % 24, (hour // 24) % 7
    daily = 0.2 + np.exp(-0.5 * ((of_day - 10) / 2.0) ** 2) + 0.8 * np.exp(-0.5 * ((of_day - 16) / 2.5) ** 2)
    weekly = np.select([day == 4, day >= 5], [0.8, 0.3], 1.0)
    rate = 500.0 * daily * weekly * (1 - 0.002 * hour / 24)
    counts = rng.poisson(rate * rng.lognormal(-(noise**2) / 2, noise, rate.size)).astype(float)
    index = pd.date_range(at("2025-01-06"), periods=rate.size, freq="h")
    return pd.Series(counts, index=index, name="runs"), rate


def mape(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(100 * np.mean(np.abs(actual - predicted) / actual))


@pytest.mark.parametrize("seed", [3, 11])
def test_forecast_of_a_seasonal_series_beats_the_seasonal_naive_and_has_mape_under_15(seed):
    series, _ = seasonal(weeks=8, seed=seed)
    past, actual = series.iloc[: -capacity.WEEK], series.iloc[-capacity.WEEK :].to_numpy()
    fc = capacity.forecast(past, capacity.WEEK)
    naive = past.to_numpy()[-capacity.WEEK :]
    assert fc.method == "mstl(24,168)+ets" and fc.note == ""
    assert (fc.index == series.index[-capacity.WEEK :]).all()
    error = mape(actual, fc.mean)
    assert error < 15 and error < mape(actual, naive), (error, mape(actual, naive))
    bt = fc.backtest
    assert bt.hours == capacity.WEEK and bt.mase < bt.naive_mase and bt.mape < 15 and bt.headline == "mase"
    held = np.mean((actual >= fc.lower) & (actual <= fc.upper))
    assert held >= 0.8, held  # a 90 % interval
    assert (fc.lower <= fc.mean).all() and (fc.mean <= fc.upper).all()


def test_forecast_falls_back_with_short_history_and_says_so():
    series, rate = seasonal(weeks=2, seed=5)
    ten_days = capacity.forecast(series.iloc[:240], 48)
    assert ten_days.method == "weekly mean" and ten_days.note == (
        "two weeks of history or less (240 h): each hour of the week is the mean of the last 1 week(s) at that "
        "hour, no trend"
    )
    four_days = capacity.forecast(series.iloc[:96], 24)
    assert four_days.method == "mstl(24)+ets"
    assert four_days.note == "less than a week of history (96 h): daily seasonality only, no weekly"
    assert np.corrcoef(four_days.mean, rate[96:120])[0, 1] > 0.9  # it keeps the daily shape
    assert four_days.backtest.method == "seasonal naive(24)" and four_days.backtest.hours == 48  # 48 h left
    one_day = capacity.forecast(series.iloc[:30], 24)
    assert one_day.method == "seasonal naive(24)"
    assert (
        one_day.note
        == "two days of history or less (30 h): the last day repeated, no trend, no weekly season"
    )
    assert one_day.mean.tolist() == series.iloc[6:30].tolist()
    hours = capacity.forecast(series.iloc[:5], 3)
    assert hours.method == "mean" and hours.mean.tolist() == [series.iloc[:5].mean()] * 3
    assert hours.note == "less than a day of history (5 h): the mean of every hour, no seasonality"


def test_forecast_of_one_point_has_no_backtest_and_says_the_interval_is_unknown():
    fc = capacity.forecast(pd.Series([7.0], index=[at("2024-01-01 10:00")]), 2)
    assert fc.mean.tolist() == [7.0, 7.0] and fc.backtest is None and np.isnan(fc.lower).all()
    assert fc.interval == "none: no hour of history could be held back to measure the error"
    assert list(fc.index) == [at("2024-01-01 11:00"), at("2024-01-01 12:00")]
    assert json.loads(json.dumps(fc.to_dict(), allow_nan=False))["hours"][0] == {
        "hour": "2024-01-01T11:00:00+00:00",
        "mean": 7.0,
        "lower": None,
        "upper": None,
    }


def test_forecast_of_an_all_zero_series_is_zero_without_a_crash():
    fc = capacity.forecast(pd.Series(np.zeros(3 * capacity.WEEK)), 48)
    assert fc.method == "constant" and fc.note == "the history is constant (0 every hour)"
    assert (
        fc.mean.tolist() == [0.0] * 48 and fc.lower.tolist() == [0.0] * 48 and fc.upper.tolist() == [0.0] * 48
    )
    bt = fc.backtest
    assert (bt.mape, bt.mape_hours, bt.smape, bt.mase) == (None, 0, 0.0, None)
    json.dumps(fc.to_dict(), allow_nan=False)


def test_forecast_of_a_sparse_series_stays_finite_and_non_negative():
    rng = np.random.default_rng(2)
    sparse = (rng.random(4 * capacity.WEEK) < 0.03).astype(float)  # a workflow run now and then
    fc = capacity.forecast(sparse, capacity.WEEK)
    assert fc.method == "mstl(24,168)+ets"
    assert np.isfinite(fc.mean).all() and (fc.mean >= 0).all() and (fc.lower >= 0).all()
    assert fc.backtest.mase is not None and fc.backtest.mape_hours == int(sparse[-capacity.WEEK :].sum())


def test_forecast_reads_only_the_recent_history_and_says_so():
    series, _ = seasonal(weeks=4, seed=1)
    fc = capacity.forecast(series, 24, max_history_hours=3 * capacity.WEEK)
    assert fc.history_hours == 3 * capacity.WEEK
    assert fc.note == "read the last 504 of 672 hours (max_history_hours)"


def test_forecast_refuses_bad_series_and_arguments():
    hours = pd.date_range(at("2024-01-01"), periods=4, freq="h")
    assert refused(capacity.forecast, pd.Series([1.0, np.nan, 2.0, 3.0], index=hours, name="writer"), 24) == (
        "writer[2024-01-01T01:00:00+00:00] is nan: an hourly count or busy time is a finite number >= 0 "
        "(fix: bucket the records with hourly(), which zero-fills missing hours)"
    )
    assert refused(capacity.forecast, [1.0, -1.0], 24) == (
        "series[1] is -1.0: an hourly count or busy time is a finite number >= 0 (fix: bucket the records "
        "with hourly(), which zero-fills missing hours)"
    )
    gappy = pd.Series([1.0, 2.0, 3.0], index=hours[[0, 1, 3]], name="writer")
    assert refused(capacity.forecast, gappy, 24) == (
        "writer's index is not one row per hour without gaps (fix: bucket the records with hourly())"
    )
    assert refused(capacity.forecast, np.zeros((3, 2)), 24) == (
        "the series has 2 dimensions, not 1 (fix: forecast one column of hourly(...).counts at a time)"
    )
    assert refused(capacity.forecast, [], 24) == (
        "series is empty: there is no history to forecast (fix: record runs first)"
    )
    for horizon in (0, 10**9, True, 2.5):
        assert refused(capacity.forecast, [1.0, 2.0], horizon) == (
            f"horizon_hours={horizon!r} is not a whole number from 1 to 1,344 (fix: give one)"
        )
    assert refused(capacity.forecast, [1.0, 2.0], 3, level=1.5) == (
        "level=1.5 is not a probability (fix: give one between 0 and 1, like 0.9)"
    )


# --- queueing -----------------------------------------------------------------------------------------


def test_erlang_c_matches_textbook_values():
    # M/M/3 at 2 erlangs: P0 = 1/9, P(wait) = (2^3/3!) (1 / (1 - 2/3)) P0 = 4/9
    assert capacity.erlang_c(3, 2.0) == pytest.approx(4 / 9, rel=1e-12)
    # M/M/2 with lambda = mu = 1: P(wait) = 1/3, Wq = P(wait) / (c mu - lambda) = 1/3
    assert capacity.erlang_c(2, 1.0) == pytest.approx(1 / 3, rel=1e-12)
    assert capacity.mean_wait(2, 1.0, 1.0) == pytest.approx(1 / 3, rel=1e-12)
    # the call-centre table: 10 erlangs on 11 agents waits 68.2 % of the time, on 12 agents 44.9 %
    assert round(capacity.erlang_c(11, 10.0), 4) == 0.6821 and round(capacity.erlang_c(12, 10.0), 4) == 0.4494
    assert capacity.erlang_c(200, 180.0) == pytest.approx(_erlang_c_by_sums(200, 180.0), rel=1e-9)
    assert capacity.erlang_c(5, 5.0) == 1.0 and capacity.mean_wait(5, 1.0, 5.0) == math.inf
    assert capacity.erlang_c(1, 0.0) == 0.0 and capacity.mean_wait(1, 0.0, 30.0) == 0.0


def _erlang_c_by_sums(c: int, load: float) -> float:
    """Erlang C by its textbook sums, in logs (an independent computation)."""
    logs = [k * math.log(load) - math.lgamma(k + 1) for k in range(c)]
    last = c * math.log(load) - math.lgamma(c + 1) + math.log(c / (c - load))
    top = max([*logs, last])
    waiting = math.exp(last - top)
    return waiting / (sum(math.exp(x - top) for x in logs) + waiting)


def test_the_correction_for_non_exponential_service_is_pollaczek_khinchine_on_one_slot():
    rate, mean = 0.02, 30.0  # 60 % busy
    rho = rate * mean
    for cv in (0.0, 0.5, 1.0, 2.0):
        khinchine = rho * mean * (1 + cv**2) / (2 * (1 - rho))  # M/G/1's exact mean wait
        assert capacity.mean_wait(1, rate, mean, cv) == pytest.approx(khinchine, rel=1e-12)


def test_simulate_serves_first_come_first_served_and_returns_waits_in_the_input_order():
    waits = capacity.simulate([1.0, 0.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0], 2)
    # in arrival order 1, 2, 3 (t=0, kept in input order) and 0 (t=1): calls 1 and 2 take the two slots,
    # 3 takes the first freed (t=2, waits 2 s), and 0 the second, also freed at t=2 (waits 1 s)
    assert waits.tolist() == [1.0, 0.0, 0.0, 2.0]
    assert capacity.simulate([0.0, 1.0, 2.0], [5.0, 1.0, 1.0], 1).tolist() == [0.0, 4.0, 4.0]
    assert capacity.simulate([], [], 3).tolist() == []
    assert capacity.simulate([0.0, 0.0], [1.0, 1.0], 10**9).tolist() == [0.0, 0.0]  # no billion-slot heap


def test_simulate_of_an_mm1_queue_agrees_with_theory():
    rng = np.random.default_rng(4)
    rate, mean = 0.5, 1.5  # 75 % busy: Wq = rho / (mu - lambda) = 0.75 / (1/1.5 - 0.5) = 4.5 s
    arrivals = np.cumsum(rng.exponential(1 / rate, 200_000))
    waits = capacity.simulate(arrivals, rng.exponential(mean, arrivals.size), 1)
    assert waits.mean() == pytest.approx(capacity.mean_wait(1, rate, mean), rel=0.1)


def test_simulate_refuses_bad_input():
    assert refused(capacity.simulate, [0.0, 1.0], [1.0], 1) == (
        "arrivals (2,) and service_times (1,) differ (fix: give one service time per arrival)"
    )
    assert (
        refused(capacity.simulate, [0.0, np.nan], [1.0, 1.0], 1)
        == "arrivals[1] is nan (fix: give finite seconds)"
    )
    assert refused(capacity.simulate, [0.0, 1.0], [1.0, -1.0], 1) == (
        "service_times[1] is -1.0 (fix: give finite seconds, >= 0)"
    )
    assert (
        refused(capacity.simulate, [0.0], [1.0], 0)
        == "c=0 is not a whole number from 1 to 1,000,000,000 (fix: give one)"
    )


# --- recommendation -----------------------------------------------------------------------------------


def _constant_forecast(calls_per_hour: float) -> capacity.Forecast:
    return capacity.forecast(pd.Series([calls_per_hour] * 48, name="agent"), 24)


def _service_times(rng: np.random.Generator, mean: float, cv: float, n: int) -> np.ndarray:
    if cv == 1.0:
        return rng.exponential(mean, n)
    if cv < 1.0:
        shape = 1 / cv**2
        return rng.gamma(shape, mean / shape, n)
    sigma = math.sqrt(math.log1p(cv**2))
    return rng.lognormal(math.log(mean) - sigma**2 / 2, sigma, n)


@pytest.mark.parametrize(
    ("seed", "calls_per_hour", "mean_s", "cv", "target_s"),
    [
        (1, 600.0, 30.0, 1.0, 5.0),  # exponential: Erlang C exactly
        (2, 900.0, 20.0, 0.5, 2.0),  # less variable than exponential (gamma)
        (3, 300.0, 60.0, 1.5, 10.0),  # more variable (lognormal): the correction matters
        (4, 2000.0, 10.0, 2.0, 1.0),  # much more variable, many short calls
    ],
)
def test_recommendation_is_within_one_of_the_smallest_c_meeting_the_target_in_simulation(
    seed, calls_per_hour, mean_s, cv, target_s
):
    rng = np.random.default_rng(seed)
    plan = capacity.recommend(
        {"agent": _constant_forecast(calls_per_hour)},
        {"agent": Service(1000, mean_s, cv)},
        target_wait_s=target_s,
    ).agents["agent"]
    rate = calls_per_hour / 3600
    arrivals = np.cumsum(rng.exponential(1 / rate, 60_000))
    service = _service_times(rng, mean_s, cv, arrivals.size)
    c = math.floor(rate * mean_s) + 1
    while capacity.simulate(arrivals, service, c).mean() > target_s:
        c += 1
    assert abs(plan.max_concurrency - c) <= 1, (plan.max_concurrency, c)
    assert plan.predicted_wait_s <= target_s < plan.predicted_wait_below_s


def test_recommendation_gives_its_reasoning_pools_and_celery_workers():
    forecasts = {
        "researcher": _constant_forecast(600.0),
        "writer": _constant_forecast(1800.0),
        "idle": _constant_forecast(0.0),
    }
    service = {
        "researcher": Service(50, 30.0, 1.0),
        "writer": Service(80, 20.0, 0.5),
        "idle": Service(0, 0.0, 0.0),
    }
    result = capacity.recommend(forecasts, service, target_wait_s=5.0, worker_concurrency=4, headroom=0.25)
    researcher = result.agents["researcher"]
    assert researcher.max_concurrency == researcher.pool_slots == 7
    assert researcher.offered_load == pytest.approx(5.0) and researcher.peak_calls_per_hour == pytest.approx(
        600.0
    )
    assert researcher.predicted_wait_s == pytest.approx(capacity.mean_wait(7, 600 / 3600, 30.0))
    assert researcher.predicted_wait_below_s == pytest.approx(capacity.mean_wait(6, 600 / 3600, 30.0))
    assert researcher.reason == (
        "busy hour (q0.95 of 24 forecast hours): 600.0 calls/h x 30.00 s (cv 1.00) = 5.00 erlangs; with 6 "
        f"slot(s) calls wait {researcher.predicted_wait_below_s:.2f} s on average, with 7 "
        f"{researcher.predicted_wait_s:.2f} s <= target 5 s"
    )
    assert researcher.model == "M/M/c (Erlang C)"
    assert result.agents["idle"].max_concurrency == 1
    assert result.agents["idle"].reason == "no calls forecast in the busy hour (q0.95): 1 slot"
    slots = sum(plan.max_concurrency for plan in result.agents.values())
    assert result.slots == slots and result.celery_workers == math.ceil(slots * 1.25 / 4)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["agents"]["idle"]["predicted_wait_below_s"] is None
    assert data["agents"]["writer"]["max_concurrency"] == result.agents["writer"].max_concurrency
    assert data["forecast_errors"]["researcher"]["headline"] == "mase"


def test_recommendation_uses_a_high_quantile_of_the_forecast_hours_not_the_mean():
    series, _ = seasonal(weeks=3, seed=8)
    fc = capacity.forecast(series, capacity.WEEK)
    plan = capacity.recommend({"a": fc}, {"a": Service(10, 10.0, 1.0)}, target_wait_s=1.0).agents["a"]
    assert plan.peak_calls_per_hour == pytest.approx(np.quantile(fc.mean, 0.95))
    assert plan.peak_calls_per_hour > 1.5 * fc.mean.mean()


def test_recommend_refuses_bad_arguments():
    fc = {"a": _constant_forecast(10.0)}
    svc = {"a": Service(1, 1.0, 1.0)}
    assert refused(capacity.recommend, fc, svc, target_wait_s=0) == (
        "target_wait_s=0 is not a number of seconds > 0 (fix: give one, like 5)"
    )
    assert refused(capacity.recommend, fc, svc, target_wait_s=float("nan")) == (
        "target_wait_s=nan is not a number of seconds > 0 (fix: give one, like 5)"
    )
    assert refused(capacity.recommend, fc, svc, target_wait_s=5, quantile=0) == (
        "quantile=0 is not in (0, 1] (fix: give the busy hour's quantile, like 0.95)"
    )
    assert refused(capacity.recommend, fc, svc, target_wait_s=5, worker_concurrency=0) == (
        "worker_concurrency=0 is not a whole number from 1 to 10,000 (fix: give one)"
    )
    assert refused(capacity.recommend, fc, {}, target_wait_s=5) == (
        "agent 'a' has a forecast but no service times (fix: pass its Service, from hourly(...).service of "
        "its calls)"
    )
    assert refused(capacity.recommend, {}, svc, target_wait_s=5) == (
        "no agent to size: forecasts is empty (fix: forecast each agent's calls per hour)"
    )
    huge = {"a": _constant_forecast(1e6)}
    assert refused(capacity.recommend, huge, {"a": Service(1, 3600.0, 1.0)}, target_wait_s=5) == (
        "more than 1,024 slots are needed: the offered load is 1,000,000.0 erlangs (1,000,000 calls/h x "
        "3,600.0 s, service times' cv 1) (fix: check that durations are in seconds, or split the agent across "
        "several roster entries)"
    )
    # a finite but huge variability: (1 + cv**2) raised OverflowError; no number of slots meets the target
    wild = {"a": Service(1, 1.0, 1e200)}
    assert refused(capacity.recommend, fc, wild, target_wait_s=5) == (
        "more than 1,024 slots are needed: the offered load is 0.0 erlangs (10 calls/h x 1.0 s, service times' "
        "cv 1e+200) (fix: check that durations are in seconds, or split the agent across several roster entries)"
    )
    assert capacity.mean_wait(2, 0.1, 1.0, cv=1e200) == math.inf


# --- the benchmark ------------------------------------------------------------------------------------


def test_bench_capacity_smoke_run_prints_each_day_and_its_headline():
    done = subprocess.run(
        [sys.executable, "bench/capacity.py", "--weeks", "3", "--scale", "0.2", "--seed", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert re.fullmatch(
        r"forecast MAPE \d+\.\d %; recommended concurrency \d+ vs \d+ needed in simulation", lines[-1]
    )
    days = [line for line in lines if re.match(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d\d-\d\d ", line)]
    assert len(days) == 7, done.stdout
