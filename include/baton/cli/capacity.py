"""``baton capacity``: each agent's calls per hour forecast from the event history, and the concurrency,
pool and Celery workers that keep its queue wait under a target (:mod:`baton.ops.capacity`)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from baton.cli.common import add_command
from baton.events import schema
from baton.events.store import EventStore
from baton.ops.capacity import CapacityError, forecast, hourly, recommend

CALLS = ("step.succeeded", "step.failed", "subtask.succeeded", "subtask.failed")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text[:40]}' is not a number of seconds") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text[:40]} is not between 0.1 and 3600 seconds")
    return value


def add(commands: Any) -> None:
    capacity = add_command(commands, "capacity")
    capacity.add_argument("--days", type=int, default=28, choices=range(1, 367), metavar="1..366",
                          help="history to read (default 28: four weeks, for the weekly season)")  # fmt: skip
    capacity.add_argument("--target-wait", type=_seconds, default=5.0, metavar="SECONDS",
                          help="the mean queue wait to keep under at the busy hour (default 5)")  # fmt: skip
    capacity.add_argument("--horizon", type=int, default=168, choices=range(1, 2161), metavar="1..2160",
                          help="hours to forecast (default 168: a week)")  # fmt: skip
    capacity.add_argument("--json", action="store_true", help="one JSON document instead of the lines")
    capacity.set_defaults(run=lambda args: show(args.days, args.target_wait, args.horizon, args.json))


def records(store: Any, since: datetime, until: datetime) -> list[tuple[datetime, str, float]]:
    """(start, agent, seconds) of every agent call (a step's or a fan-out item's) in ``[since, until)``."""
    e = schema.events.c
    query = (
        select(e.ts, e.agent, e.payload)
        .where(e.type.in_(CALLS), e.agent.is_not(None), e.ts >= since, e.ts < until)
        .execution_options(yield_per=5000)
    )
    found = []
    with store.engine.connect() as conn:
        for ts, agent, payload in conn.execute(query):
            payload = payload or {}
            seconds = payload.get("duration_s", payload.get("latency_s")) or 0.0
            found.append((ts, agent, max(0.0, float(seconds))))
    return found


def show(days: int, target_wait: float, horizon: int, as_json: bool) -> int:
    until = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    since = until - timedelta(days=days)
    try:
        demand = hourly(records(EventStore.from_airflow(), since, until), start=since, end=until)
        forecasts = {agent: forecast(demand.counts[agent], horizon) for agent in demand.counts.columns}
        plan = recommend(forecasts, demand.service, target_wait_s=target_wait)
    except CapacityError as error:
        print(f"no capacity plan: {error}")
        return 1
    if as_json:
        document = plan.to_dict() | {"forecasts": {a: f.to_dict() for a, f in forecasts.items()}}
        print(json.dumps(document, indent=2, default=str))
        return 0
    print(
        f"agent calls from {since:%Y-%m-%d %H:00} to {until:%Y-%m-%d %H:00} UTC, forecast {horizon} h ahead:"
    )
    for agent, sized in sorted(plan.agents.items()):
        test = forecasts[agent].backtest
        error = (
            f"MAPE {test.mape:.1f} % on held-back hours" if test and test.mape is not None else "no backtest"
        )
        print(
            f"  {agent:<32} max_concurrency {sized.max_concurrency:>3} (busy hour {sized.peak_calls_per_hour:.1f} "
            f"calls, {sized.service_mean_s:.2f} s each: wait {sized.predicted_wait_s:.2f} s); "
            f"{forecasts[agent].method}, {error}"
        )
    print(f"Celery workers: {plan.celery_workers} ({plan.reason})")
    return 0
