"""``baton errors``: the failures of the last hours grouped by normalised message, step, agent and error
class, most frequent first, with which are new, rising or quiet in the last hour."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from baton.cli.common import add_command
from baton.events.store import EventStore
from baton.ops.reports.errors import patterns


def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number of hours") from None
    if not math.isfinite(value) or not 0 < value <= 24 * 366:
        raise argparse.ArgumentTypeError(f"{text[:40]} hours: give more than 0 and at most a year (8784)")
    return value


def add(commands: Any) -> None:
    errors = add_command(commands, "errors")
    errors.add_argument("--hours", type=_hours, default=24.0, help="the window (default 24)")
    errors.add_argument("--recent", type=_hours, default=1.0, help="what counts as recent (default 1)")
    errors.add_argument("--workflow", help="only this workflow's failures")
    errors.add_argument("--json", action="store_true", help="one JSON document")
    errors.set_defaults(run=lambda args: show(args.hours, args.recent, args.workflow, args.json))


def show(hours: float, recent: float, workflow: str | None, as_json: bool) -> int:
    found = patterns(EventStore.from_airflow(), hours, recent, workflow)
    if as_json:
        print(json.dumps({"hours": hours, "recent_hours": recent, "patterns": [p.document() for p in found]}))
        return 0
    total = sum(p.count for p in found)
    print(
        f"{total:,} failure(s) in the last {hours:g} h in {len(found)} pattern(s); recent: the last {recent:g} h"
    )
    for p in found:
        print(
            f"  {p.count:>6,} ({p.recent:,} recent, {p.change}) {p.workflow}.{p.step}"
            f"{f' [{p.agent}]' if p.agent else ''} {p.error_class}: {p.message}"
        )
    return 0


__all__ = ["add", "show"]
