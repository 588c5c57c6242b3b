"""Benchmark: capacity planning (issue 19) on synthetic history: forecast the last week, size an agent.

A seeded synthetic history of ``--weeks`` weeks (default 8), hour by hour from a Monday 00:00 UTC: the
runs of one workflow (``lead_qualification``) arrive at a rate with a daily shape (quiet nights, a
morning bump, an afternoon peak), a weekly one (weekends at 45 %), a slow trend (+0.3 % a day) and
noise (each hour's rate times a lognormal factor of sigma ``NOISE``, then Poisson counts). Each run
calls the agent ``researcher`` ``CALLS_PER_RUN`` times on average (Poisson), at independent moments of
its hour, each call taking a lognormal time (mean ``SERVICE_MEAN_S``, coefficient of variation
``SERVICE_CV``). Every run and call is a raw record ``(timestamp, key, duration_s)``, bucketed by
``baton.ops.capacity.hourly``.

The last week is held back. ``forecast`` forecasts it from the weeks before (and reports its own error
on the week before that); the bench prints the error of each day, the hourly MAPE over the week, beside
the error of repeating the previous week (seasonal naive) and of the true rate itself (the noise
floor: no forecast can beat the noise), and how many hours the 90 % interval held. Then ``recommend``
sizes ``researcher`` for a mean queue wait of at most ``TARGET_WAIT_S`` in the busy hour (the 95th
percentile of the forecast hours), and ``simulate`` replays the held-back week's real calls (their
arrival times and durations) with c slots, for each c: the smallest c that keeps the mean wait within
the target in at least 95 % of the week's hours is the concurrency the simulation needs.

Run from the repository root::

    .venv/bin/python bench/capacity.py [--seed 19] [--weeks 8] [--scale 1.0]

``--scale`` multiplies the volume (the test suite smoke-runs ``--weeks 3 --scale 0.2``). Goal: MAPE
< 15 %, and the recommendation within one of the simulation's. The last line is::

    forecast MAPE N.N %; recommended concurrency N vs N needed in simulation

This is a benchmark, not a test: it exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from cli_types import SEED_MAX, bounded_int, fraction

from baton.ops import capacity

WORKFLOW, AGENT = "lead_qualification", "researcher"
START = pd.Timestamp("2025-01-06", tz="UTC")  # a Monday
BASE_RUNS_PER_HOUR = 400.0  # at the afternoon peak of a weekday, before the trend
NOISE = 0.05  # sigma of each hour's lognormal rate factor
TREND_PER_DAY = 0.003
CALLS_PER_RUN = 2
SERVICE_MEAN_S, SERVICE_CV = 45.0, 1.2
RUN_MEAN_S = 180.0
TARGET_WAIT_S = 10.0
QUANTILE = 0.95  # the busy hour: the target must hold in this share of hours
LEVEL = 0.9


@dataclass(frozen=True)
class History:
    """The synthetic history: the true hourly rate of runs, and the raw records of runs and calls."""

    rate: np.ndarray
    runs: pd.DataFrame  # timestamp (epoch s), key, duration_s
    calls: pd.DataFrame


def true_rate(weeks: int, scale: float) -> np.ndarray:
    """The expected runs of each hour: daily shape x weekly shape x trend."""
    hour = np.arange(weeks * capacity.WEEK)
    of_day, day = hour % 24, hour // 24
    daily = (
        0.15
        + 0.85 * np.exp(-0.5 * ((of_day - 14) / 3.5) ** 2)
        + 0.2 * np.exp(-0.5 * ((of_day - 9) / 1.5) ** 2)
    )
    weekly = np.where(day % 7 >= 5, 0.45, 1.0) * (1 + 0.08 * np.cos(2 * np.pi * (day % 7) / 7))
    return BASE_RUNS_PER_HOUR * scale * daily * weekly * (1 + TREND_PER_DAY * day)


def _lognormal(rng: np.random.Generator, mean: float, cv: float, size: int) -> np.ndarray:
    sigma = np.sqrt(np.log1p(cv**2))
    return rng.lognormal(np.log(mean) - sigma**2 / 2, sigma, size)


def _records(rng: np.random.Generator, counts: np.ndarray, key: str, mean: float, cv: float) -> pd.DataFrame:
    """One record per event: a uniform moment of its hour (Poisson arrivals given the count)."""
    hour = np.repeat(np.arange(counts.size), counts)
    seconds = START.timestamp() + hour * capacity.HOUR_S + rng.uniform(0, capacity.HOUR_S, hour.size)
    order = np.argsort(seconds)
    return pd.DataFrame(
        {"timestamp": seconds[order], "key": key, "duration_s": _lognormal(rng, mean, cv, hour.size)}
    )


def history(weeks: int, seed: int, scale: float) -> History:
    rng = np.random.default_rng(seed)
    rate = true_rate(weeks, scale)
    runs = rng.poisson(rate * rng.lognormal(-(NOISE**2) / 2, NOISE, rate.size))
    return History(
        rate=rate,
        runs=_records(rng, runs, WORKFLOW, RUN_MEAN_S, 1.0),
        calls=_records(rng, rng.poisson(CALLS_PER_RUN * runs), AGENT, SERVICE_MEAN_S, SERVICE_CV),
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} %"


def report_forecast(fc: capacity.Forecast, actual: pd.Series, rate: np.ndarray, naive: np.ndarray) -> float:
    """Print the forecast's own backtest, each day's error and the week's; return the week's MAPE."""
    bt = fc.backtest
    print(f"method: {fc.method}{' (' + fc.note + ')' if fc.note else ''}; interval: {fc.interval}")
    if bt is not None:
        print(
            f"its own backtest ({bt.hours} h held back, {bt.method}): MASE {bt.mase:.2f} (seasonal naive "
            f"{bt.naive_mase:.2f}), MAPE {_pct(bt.mape)} (naive {_pct(bt.naive_mape)}), sMAPE {bt.smape:.1f} %"
        )
    a, f = actual.to_numpy(), fc.mean
    print(f"{'day':<12} {'actual runs':>11} {'forecast':>9} {'day error':>9} {'hourly MAPE':>11}")
    for day in range(a.size // 24):
        hours = slice(day * 24, day * 24 + 24)
        total, predicted = a[hours].sum(), f[hours].sum()
        label = actual.index[day * 24].strftime("%a %m-%d")
        print(
            f"{label:<12} {total:>11,.0f} {predicted:>9,.0f} {100 * (predicted - total) / total:>+8.1f} % "
            f"{_mape(a[hours], f[hours]):>9.1f} %"
        )
    mape = _mape(a, f)
    covered = np.mean((a >= fc.lower) & (a <= fc.upper))
    print(
        f"week: MAPE {mape:.1f} % (seasonal naive {_mape(a, naive):.1f} %, the true rate {_mape(a, rate):.1f} % "
        f"= the noise floor), sMAPE {_smape(a, f):.1f} %, {LEVEL:.0%} interval held {covered:.0%} of hours"
    )
    return mape


def _mape(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Mean absolute percentage error over the hours with runs (%)."""
    busy = actual > 0
    return float(100 * np.mean(np.abs(actual[busy] - predicted[busy]) / actual[busy]))


def _smape(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Symmetric MAPE (%, 0-200)."""
    total = np.abs(actual) + np.abs(predicted)
    return float(
        100
        * np.mean(np.divide(2 * np.abs(actual - predicted), total, where=total > 0, out=np.zeros_like(total)))
    )


def needed_in_simulation(calls: pd.DataFrame, around: int) -> tuple[int, list[str]]:
    """The smallest c whose replay of ``calls`` keeps the mean wait within the target in QUANTILE of the
    hours; the lines describing each c tried."""
    at = calls["timestamp"].to_numpy()
    hold = calls["duration_s"].to_numpy()
    hour = ((at - at.min()) // capacity.HOUR_S).astype(int)
    per_hour = np.bincount(hour)
    lines, found, c = [], None, max(1, around - 3)
    while found is None or c <= max(found, around) + 1:
        waits = capacity.simulate(at, hold, c)
        mean = np.bincount(hour, weights=waits, minlength=per_hour.size) / np.maximum(per_hour, 1)
        share = np.mean(mean <= TARGET_WAIT_S)
        lines.append(
            f"c={c:>3}: mean wait {waits.mean():7.2f} s, busiest hour {mean.max():8.2f} s, "
            f"hours within {TARGET_WAIT_S:g} s: {share:6.1%}"
        )
        if share >= QUANTILE and found is None:
            found = c
        if found is None and c > around + 50:
            break
        c += 1
    return (found if found is not None else c), lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=19)
    parser.add_argument(
        "--weeks", type=bounded_int(2, 520), default=8, help="weeks of history, the last one held back (>= 2)"
    )
    parser.add_argument(
        "--scale", type=fraction(1000.0), default=1.0, help="multiply the volume (the suite's smoke run)"
    )
    args = parser.parse_args(argv)
    began = time.perf_counter()
    data = history(args.weeks, args.seed, args.scale)
    print(
        f"# bench/capacity.py --seed {args.seed} --weeks {args.weeks} --scale {args.scale:g}: "
        f"{len(data.runs):,} runs, {len(data.calls):,} agent calls"
    )
    tick = time.perf_counter()
    runs = capacity.hourly(data.runs)
    calls = capacity.hourly(data.calls)
    print(f"bucketed {len(data.runs) + len(data.calls):,} records in {time.perf_counter() - tick:.2f} s")
    cut = runs.counts.index[-capacity.WEEK]
    past, held = runs.counts[WORKFLOW].iloc[: -capacity.WEEK], runs.counts[WORKFLOW].iloc[-capacity.WEEK :]
    tick = time.perf_counter()
    fc = capacity.forecast(past, capacity.WEEK, level=LEVEL)
    print(f"\n## runs of {WORKFLOW} per hour, forecast of the last week ({time.perf_counter() - tick:.2f} s)")
    naive = past.to_numpy()[-capacity.WEEK :]
    mape = report_forecast(fc, held, data.rate[-capacity.WEEK :], naive)

    agent_past = calls.counts[AGENT].iloc[: -capacity.WEEK]
    agent_fc = capacity.forecast(agent_past, capacity.WEEK, level=LEVEL)
    agent_held = calls.counts[AGENT].iloc[-capacity.WEEK :].to_numpy()
    print(
        f"\n## calls of {AGENT} per hour: forecast MAPE {_mape(agent_held, agent_fc.mean):.1f} % "
        f"(seasonal naive {_mape(agent_held, agent_past.to_numpy()[-capacity.WEEK :]):.1f} %)"
    )
    before = data.calls[data.calls["timestamp"] < cut.timestamp()]
    service = capacity.hourly(before).service
    plan = capacity.recommend({AGENT: agent_fc}, service, target_wait_s=TARGET_WAIT_S, quantile=QUANTILE)
    agent = plan.agents[AGENT]
    print(f"recommendation: {agent.reason}")
    print(f"model: {agent.model}; {plan.reason}")

    week = data.calls[data.calls["timestamp"] >= cut.timestamp()]
    print(f"\n## replay of the held-back week's {len(week):,} calls (first come, first served)")
    needed, lines = needed_in_simulation(week, agent.max_concurrency)
    print("\n".join(lines))
    print(f"\ntook {time.perf_counter() - began:.1f} s")
    print(
        f"forecast MAPE {mape:.1f} %; recommended concurrency {agent.max_concurrency} vs {needed} needed in simulation"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
