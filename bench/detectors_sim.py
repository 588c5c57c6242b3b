"""Benchmark (offline): Baton's detectors and incident machine on a labelled, synthetic week (issue 18).

A stepping stone for the real-Airflow campaign: no Airflow, no store, only ``baton.ops``'s pure cores
with the default ``monitoring:`` configuration, fed minute by minute as the monitor will feed them.

The world (seeded, synthetic; nothing here is measured from a real deployment):

- Four agents named after the roster, at 6, 3, 2 and 0.5 calls per minute at the daily peak (14:00
  UTC), a quarter of that at night, all of it at 40 % at the weekend. Per call: a failure with chance 2 %,
  a re-ask with chance 5 %, a latency drawn log-normally (sigma 0.35) around a median that rises 30 %
  with the day's load, 1 % of calls five times slower, a cost log-normal (sigma 0.4) around the agent's
  price. Nuisances the detectors must ignore: per agent about one provider blip a day (2 to 3 calls
  failing in the same minute), the daily and weekly cycles.
- Two sensors that find rows as a Poisson process, 1 and 0.4 per minute at the peak, 5 % of that at
  night (with the weekend factor); a workflow scheduled every 5 minutes, its runs starting 2 to 60 s late.
- A week of history (warm-up, not scored), then the labelled week, in which faults are injected at
  known times: 30 % failures (a busy agent by day and by night, a mid agent, the quiet agent), latency
  x3, cost x4 (a blown-up prompt), a sensor that stops (by day and by night), the scheduler that stops
  starting the 5-minute workflow, and a slow latency drift (+60 % over 6 hours, held 6 hours).

Each minute every detector of the default configuration runs on every series (the drift detector once
per completed bucket, its verdict holding in between), the anomalies go through
``baton.ops.incidents.evaluate``, and each incident opened is an alert. An alert is a true positive
when a fault on the same signal and scope was active when it opened (or ended at most 30 minutes
before); any other alert is a false positive. Detection delay: the first true alert minus the fault's
start. A fault never alerted is a miss, listed as such and left out of the MTTD.

Run from the repository root::

    .venv/bin/python bench/detectors_sim.py [--seed 7] [--scale 1.0]

It prints a line per fault, the alerts, and last ``MTTD N s, false positives N of M alerts (P %)``.
``--scale`` shortens the labelled week (its faults keep their durations, their starts are compressed);
the test suite runs it at a small scale so that it cannot rot.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from cli_types import SEED_MAX, bounded_int, fraction

from baton.ops import detectors as det
from baton.ops.incidents import Anomaly, Book, evaluate
from baton.spec.monitoring import Monitoring

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
START = datetime(2026, 11, 16, tzinfo=UTC).timestamp()  # a Monday: the warm-up week, then the labelled one
SCORED = START + 7 * DAY
ATTRIBUTION = 30 * MINUTE  # an alert up to this long after a fault ended still belongs to it


@dataclass(frozen=True)
class Agent:
    name: str
    peak: float  # calls per minute at the daily peak
    latency: float  # median seconds at night
    cost: float  # median cost of a call


AGENTS = (
    Agent("marketing_lead_generator", 6.0, 0.8, 0.0004),
    Agent("backend_specialist", 3.0, 6.0, 0.004),
    Agent("finance_revenue_tracker", 2.0, 1.5, 0.0008),
    Agent("strategy_strategic_planner", 0.5, 9.0, 0.006),
)
SENSORS = (("lead_qualification__sensor", 1.0), ("compliance_monitoring__sensor", 0.4))
SCHEDULED = "workflow:market_research"  # every 5 minutes


@dataclass(frozen=True)
class Fault:
    name: str
    kinds: tuple[str, ...]  # the signals that should alert
    where: str
    offset: float  # seconds after the labelled week's start, at --scale 1
    duration: float
    factor: float = 1.0


FAULTS = (
    Fault(
        "30 % failures, busy agent",
        ("failure_rate",),
        "agent:marketing_lead_generator",
        1 * DAY + 10 * HOUR,
        45 * MINUTE,
    ),
    Fault(
        "30 % failures, mid agent",
        ("failure_rate",),
        "agent:finance_revenue_tracker",
        2 * DAY + 15 * HOUR,
        60 * MINUTE,
    ),
    Fault(
        "30 % failures, quiet agent",
        ("failure_rate",),
        "agent:strategy_strategic_planner",
        3 * DAY + 11 * HOUR,
        3 * HOUR,
    ),
    Fault(
        "30 % failures, busy agent, 02:00",
        ("failure_rate",),
        "agent:marketing_lead_generator",
        4 * DAY + 2 * HOUR,
        60 * MINUTE,
    ),
    Fault("latency x3", ("latency",), "agent:backend_specialist", 1 * DAY + 14 * HOUR, 30 * MINUTE, 3.0),
    Fault(
        "latency x3, Saturday",
        ("latency",),
        "agent:marketing_lead_generator",
        5 * DAY + 12 * HOUR,
        30 * MINUTE,
        3.0,
    ),
    Fault("cost x4", ("cost",), "agent:backend_specialist", 2 * DAY + 10 * HOUR, 60 * MINUTE, 4.0),
    Fault(
        "cost x4, quiet agent",
        ("cost",),
        "agent:strategy_strategic_planner",
        4 * DAY + 16 * HOUR,
        2 * HOUR,
        4.0,
    ),
    Fault(
        "sensor stops",
        ("sensor_silence",),
        "sensor:lead_qualification__sensor",
        0 * DAY + 11 * HOUR,
        3 * HOUR,
    ),
    Fault(
        "sensor stops, 01:00",
        ("sensor_silence",),
        "sensor:compliance_monitoring__sensor",
        3 * DAY + 1 * HOUR,
        4 * HOUR,
    ),
    Fault("scheduler stops", ("runs_started",), SCHEDULED, 6 * DAY + 9 * HOUR, 40 * MINUTE),
    Fault(
        "latency drift +60 %",
        ("latency",),
        "agent:finance_revenue_tracker",
        1 * DAY + 8 * HOUR,
        12 * HOUR,
        1.6,
    ),
)


def business(t: np.ndarray) -> np.ndarray:
    """Office activity at times ``t``: a bump centred on 14:00 UTC, 40 % of it on Saturdays and Sundays."""
    hour = (t % DAY) / HOUR
    weekday = ((t // DAY).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday: 0 = Monday
    return np.exp(-0.5 * ((hour - 14) / 3.5) ** 2) * np.where(weekday >= 5, 0.4, 1.0)


def load(t: np.ndarray) -> np.ndarray:
    """An agent's share of its daily peak: a night floor of 25 %, the office's bump above it."""
    weekend = np.where(((t // DAY).astype(np.int64) + 3) % 7 >= 5, 0.4, 1.0)
    return 0.25 * weekend + 0.75 * business(t)


def _active(fault: Fault, start: float, t: np.ndarray) -> np.ndarray:
    return (t >= start) & (t < start + fault.duration)


class World:
    """The synthetic series of the fortnight, built once; detectors read them up to ``now``."""

    def __init__(self, seed: int, scale: float, only: set[str] | None = None):
        self.seed = seed
        self.span = 7 * DAY * scale
        self.end = SCORED + self.span
        self.starts = {f.name: SCORED + f.offset * scale for f in FAULTS}
        self.minutes = np.arange(START, self.end, MINUTE)
        self.counts: dict[tuple[str, str], det.Counts] = {}
        self.points: dict[tuple[str, str], det.Points] = {}
        self.events: dict[str, det.Events] = {}
        for agent in AGENTS:  # every series draws from its own stream: a subset is the same world
            if only is None or f"agent:{agent.name}" in only:
                self._agent(agent)
        for name, peak in SENSORS:
            if only is None or f"sensor:{name}" in only:
                self._sensor(name, peak)
        self._schedule()

    def _faults(self, where: str, kind: str) -> list[tuple[Fault, float]]:
        return [(f, self.starts[f.name]) for f in FAULTS if f.where == where and kind in f.kinds]

    def _rng(self, where: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, *where.encode()])

    def _agent(self, agent: Agent) -> None:
        where, minutes = f"agent:{agent.name}", self.minutes
        rng = self._rng(where)
        level = load(minutes)
        calls = rng.poisson(agent.peak * level)
        p_fail = np.full(len(minutes), 0.02)
        for fault, start in self._faults(where, "failure_rate"):
            p_fail[_active(fault, start, minutes)] = 0.30
        failed = rng.binomial(calls, p_fail)
        blips = rng.random(len(minutes)) < 1 / (24 * 60)  # about one provider blip a day
        failed = np.where(blips, np.minimum(calls, failed + rng.integers(2, 4, len(minutes))), failed)
        reasked = rng.binomial(calls, 0.05)
        self.counts[("failure_rate", where)] = det.Counts(minutes, calls, failed)
        self.counts[("reask_rate", where)] = det.Counts(minutes, calls, reasked)

        times = np.repeat(minutes, calls) + rng.uniform(0, MINUTE, calls.sum())
        times.sort()
        busy = load(times)
        latency = agent.latency * (1 + 0.3 * busy / 0.8) * rng.lognormal(0, 0.35, len(times))
        latency *= np.where(rng.random(len(times)) < 0.01, 5.0, 1.0)
        for fault, start in self._faults(where, "latency"):
            on = _active(fault, start, times)
            if fault.name.startswith("latency drift"):  # ramps up over half its time, then holds
                ramp = np.clip((times[on] - start) / (fault.duration / 2), 0, 1)
                latency[on] *= 1 + (fault.factor - 1) * ramp
            else:
                latency[on] *= fault.factor
        cost = agent.cost * rng.lognormal(0, 0.4, len(times))
        for fault, start in self._faults(where, "cost"):
            cost[_active(fault, start, times)] *= fault.factor
        self.points[("latency", where)] = det.Points(times, latency)
        self.points[("cost", where)] = det.Points(times, cost)

    def _sensor(self, name: str, peak: float) -> None:
        where, minutes = f"sensor:{name}", self.minutes
        rng = self._rng(where)
        found = rng.poisson(peak * np.maximum(business(minutes), 0.05))
        for fault, start in self._faults(where, "sensor_silence"):
            found[_active(fault, start, minutes)] = 0
        times = np.repeat(minutes, found) + rng.uniform(0, MINUTE, found.sum())
        self.events[where] = det.Events(np.sort(times), since=START)

    def _schedule(self) -> None:
        expected = np.arange(START, self.end, 5 * MINUTE)
        started = expected + self._rng(SCHEDULED).uniform(2, 60, len(expected))
        keep = np.ones(len(expected), bool)
        for fault, start in self._faults(SCHEDULED, "runs_started"):
            keep &= ~_active(fault, start, expected)
        self.schedule = det.Schedule(expected, started[keep])


@dataclass
class Alert:
    id: str
    kind: str
    where: str
    opened: float
    resolved: float | None = None
    fault: str | None = None


def _trials(book: Book, now: float, starts: dict[str, float], luck: Any) -> dict[str, str]:
    """The trial call of each circuit a runbook half-opened: the agent's next call, which fails as the
    world's calls do (2 %, or 30 % while a failure fault of the agent is on)."""
    seen = {}
    for incident in book.incidents.values():
        if incident.trial != "half_open":
            continue
        agent = incident.where.removeprefix("agent:")
        faulty = any(
            fault.where == incident.where
            and "failure_rate" in fault.kinds
            and starts[fault.name] <= now < starts[fault.name] + fault.duration
            for fault in FAULTS
        )
        seen[agent] = "failed" if luck.random() < (0.30 if faulty else 0.02) else "passed"
    return seen


def run(
    seed: int, scale: float, every: int = 1, only: set[str] | None = None
) -> tuple[World, list[Alert], float, int]:
    """Every ``every`` minutes of the labelled span, every detector on every series (of the scopes in
    ``only``, if given) and the incident machine; the alerts, each matched to its fault if it has one."""
    config = Monitoring()
    world = World(seed, scale, only)
    d = config.detectors
    held: dict[tuple[str, str], det.Verdict] = {}
    book, alerts, calls = Book(), {}, 0
    luck = np.random.default_rng(seed + 1)  # the trials of half-open circuits (apart from the world's draws)

    def watched(where: str) -> bool:
        return only is None or where in only

    began = time.perf_counter()
    for now in np.arange(SCORED + every * MINUTE, world.end + MINUTE, every * MINUTE):
        verdicts: list[tuple[str, str, det.Verdict]] = []
        for (kind, where), counts in world.counts.items():
            if watched(where):
                verdicts.append((kind, where, det.rate(counts, now, d.of(kind).rate)))
        for (kind, where), points in world.points.items():
            if not watched(where):
                continue
            signal = d.of(kind)
            verdicts.append((kind, where, det.robust(points, now, signal.robust)))
            bucket = signal.drift.bucket.total_seconds()
            if (kind, where) not in held or now % bucket < every * MINUTE:  # a bucket completed
                held[(kind, where)] = det.drift(points, now, signal.drift)
                calls += 1
            verdicts.append((kind, where, held[(kind, where)]))
        for where, events in world.events.items():
            if watched(where):
                verdicts.append(("sensor_silence", where, det.silence(events, now, d.sensor_silence.silence)))
        if watched(SCHEDULED):
            verdicts.append(
                ("runs_started", SCHEDULED, det.schedule(world.schedule, now, d.runs_started.schedule))
            )
        calls += sum(v.detector != "drift" for _, _, v in verdicts)
        anomalies = [
            Anomaly(kind=kind, where=where, evidence=v.as_dict())
            for kind, where, v in verdicts
            if v.anomalous
        ]
        trials = _trials(book, now, world.starts, luck)
        outcome = evaluate(book, anomalies, datetime.fromtimestamp(now, UTC), config, trials)
        book = outcome.book
        for transition in outcome.transitions:
            if transition.type == "incident.opened":
                alerts[transition.incident_id] = Alert(
                    transition.incident_id, transition.kind, transition.where, now
                )
            elif transition.type == "incident.resolved":
                alerts[transition.incident_id].resolved = now
    elapsed = time.perf_counter() - began
    for alert in alerts.values():
        for fault in FAULTS:
            start = world.starts[fault.name]
            if (
                alert.where == fault.where
                and alert.kind in fault.kinds
                and start <= alert.opened <= start + fault.duration + ATTRIBUTION
            ):
                alert.fault = fault.name
                break
    return world, list(alerts.values()), elapsed, calls


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%a %H:%M")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=7)
    parser.add_argument(
        "--scale", type=fraction(1.0), default=1.0, help="share of the labelled week simulated"
    )
    parser.add_argument(
        "--every", type=bounded_int(1, 60), default=1, help="minutes between evaluations (the monitor: 1)"
    )
    args = parser.parse_args(argv)

    world, alerts, elapsed, calls = run(args.seed, args.scale, args.every)
    print(
        f"{len(AGENTS)} agents, {len(SENSORS)} sensors, 1 scheduled workflow; {world.span / DAY:.2f} labelled days "
        f"after 7 days of history; {calls:,} detector runs in {elapsed:.1f} s "
        f"({1000 * elapsed / max(calls, 1):.2f} ms each, the incident machine included)"
    )
    delays, sudden, after_end = [], [], []
    for fault in FAULTS:
        start = world.starts[fault.name]
        if start >= world.end:
            continue
        mine = sorted((a for a in alerts if a.fault == fault.name), key=lambda a: a.opened)
        end = min(start + fault.duration, world.end)
        if mine:
            delay = mine[0].opened - start
            delays.append(delay)
            if not fault.name.startswith("latency drift"):
                sudden.append(delay)
            after = mine[-1].resolved - end if mine[-1].resolved is not None else math.nan
            if math.isfinite(after):
                after_end.append(after)
            if not math.isfinite(after):
                resolved = "still open at the end"
            elif after >= 0:
                resolved = f"resolved {after:.0f} s after it ended"
            else:  # the last incident resolved while the fault went on: the detector lost it
                resolved = f"resolved {-after:.0f} s BEFORE it ended"
            print(
                f"  {fault.name:<34} {_clock(start)} {fault.duration / 60:>4.0f} min  detected in {delay:>5.0f} s  "
                f"({len(mine)} incident{'s' if len(mine) > 1 else ''}, {resolved})"
            )
        else:
            print(f"  {fault.name:<34} {_clock(start)} {fault.duration / 60:>4.0f} min  MISSED")
    false = [a for a in alerts if a.fault is None]
    for alert in false:
        print(f"  false positive: {alert.kind} on {alert.where} at {_clock(alert.opened)}")
    faults = sum(world.starts[f.name] < world.end for f in FAULTS)
    print(f"detected {len(delays)} of {faults} faults; {len(alerts)} alerts")
    if sudden:
        print(
            f"the {len(sudden)} sudden faults detected (all but the slow drift): "
            f"MTTD {sum(sudden) / len(sudden):.0f} s, median {float(np.median(sudden)):.0f} s"
        )
    if after_end:
        print(f"auto-resolved a median of {float(np.median(after_end)):.0f} s after the fault ended")
    mttd = sum(delays) / len(delays) if delays else math.nan
    share = 100 * len(false) / len(alerts) if alerts else 0.0
    print(f"MTTD {mttd:.0f} s, false positives {len(false)} of {len(alerts)} alerts ({share:.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
