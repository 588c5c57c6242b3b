"""``baton verify``: the event store reconciled with Airflow's metadata (see :mod:`baton.ops.verify`)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from baton.cli.common import add_command
from baton.events.store import EventStore
from baton.ops.verify import verify
from baton.spec.common import duration_option

MAX_SINCE = timedelta(days=366)


def _since(text: str) -> timedelta:
    return duration_option(text, MAX_SINCE, "30m, 12h or 7d")


def add(commands: Any) -> None:
    check = add_command(commands, "verify")
    check.add_argument("--since", type=_since, default=timedelta(days=7), help="how far back (default 7d)")
    check.add_argument("--dry-run", action="store_true", help="report only: append no repair")
    check.add_argument("--format", choices=["text", "json"], default="text")
    check.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    store = EventStore.from_airflow()
    findings = verify(store, datetime.now(UTC) - args.since, repair=not args.dry_run)
    repaired = sum(1 for f in findings if f.repair is not None and not args.dry_run)
    left = [f for f in findings if f.repair is None or args.dry_run]
    if args.format == "json":
        for finding in findings:
            print(
                json.dumps({**finding.as_dict(), "repaired": finding.repair is not None and not args.dry_run})
            )
    else:
        for f in findings:
            done = "repaired" if f.repair is not None and not args.dry_run else "REPORTED"
            where = f"{f.run_id}" + (f" {f.step}" if f.step else "")
            print(f"{done:9} {f.kind:18} {f.workflow}  {where}: {f.detail}")
    summary = f"{len(findings)} finding(s): {repaired} repaired, {len(left)} left for a person"
    print(summary if args.format == "text" else json.dumps({"summary": summary}))
    return 1 if left else 0
