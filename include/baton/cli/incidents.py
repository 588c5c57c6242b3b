"""``baton incidents``, ``baton incident show ID`` and ``baton monitor tick``: what the monitor found and did."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from baton.cli.common import add_command, dags_folder
from baton.events.store import EventStore
from baton.ops.incidents import IncidentError
from baton.ops.monitor import loop, record
from baton.ops.monitor.postmortem import postmortem
from baton.spec.monitoring import load_config

ID = r"^inc-[0-9a-f]{12}$"


def _incident_id(text: str) -> str:
    if not re.fullmatch(ID, text):
        raise argparse.ArgumentTypeError(
            f"'{text[:40]}' is not an incident id: they look like inc-1cd07b4561be"
        )
    return text


def add(commands: Any) -> None:
    listing = add_command(commands, "incidents")
    listing.add_argument("--limit", type=int, default=20, choices=range(1, 1001), metavar="1..1000")
    listing.set_defaults(run=lambda args: incidents(args.limit))
    one = add_command(commands, "incident")
    verbs = one.add_subparsers(dest="verb", required=True)
    show = verbs.add_parser("show", help="the incident's timeline, from the first anomaly to its resolution")
    show.add_argument("incident_id", type=_incident_id)
    for verb, what in (
        ("ack", "you are on it: it stops notifying and its escalations are skipped"),
        ("stop", "halt its runbook: no further action, no undoing at resolution (you take over)"),
    ):
        acting = verbs.add_parser(verb, help=what)
        acting.add_argument("incident_id", type=_incident_id)
        acting.add_argument("--by", required=True, help="who (a person's or a group's handle)")
        acting.set_defaults(run=lambda args, verb=verb: person_acts(args.incident_id, verb, args.by))
    show.set_defaults(run=lambda args: show_incident(args.incident_id))
    by_hand = add_command(commands, "monitor")
    mverbs = by_hand.add_subparsers(dest="verb", required=True)
    tick = mverbs.add_parser(
        "tick", help="one minute of monitoring now: signals, detectors, incidents, runbooks"
    )
    tick.set_defaults(run=lambda args: tick_now())


def incidents(limit: int) -> int:
    rows = record.incidents(EventStore.from_airflow(), limit)
    if not rows:
        print("no incidents")
    for r in rows:
        print(
            f"{r['id']}  {r['status']:<12} {r['severity'] or '-':<9} {r['kind']:<20} {r['where']:<30} "
            f"x{r['count']}  opened {r['opened_at']:%Y-%m-%d %H:%M}  last {r['updated_at']:%H:%M}"
        )
    return 0


def show_incident(incident_id: str) -> int:
    events = record.timeline(EventStore.from_airflow(), incident_id)
    if not events:
        print(f"no incident {incident_id}: `baton incidents` lists them")
        return 1
    _summary(incident_id)
    first = events[0].ts
    for e in events:
        p = e.payload
        what = p.get("detail", {}).get("do") or p.get("kind", "")
        print(
            f"{e.ts:%Y-%m-%d %H:%M:%S}  +{(e.ts - first).total_seconds():>6.0f}s  {e.type:<22} {what:<18} "
            f"{p.get('where', p.get('step', '')) or ''}  {json.dumps(p.get('detail') or {}, default=str)[:160]}"
        )
    return 0


def person_acts(incident_id: str, verb: str, by: str) -> int:
    try:
        changed = record.person_acts(EventStore.from_airflow(), incident_id, verb, by)
    except IncidentError as error:
        print(f"baton incident {verb}: {error}", file=sys.stderr)
        return 1
    done = {"ack": "acknowledged", "stop": "runbook stopped"}[verb]
    print(f"{incident_id}: {done} by {by}" if changed else f"{incident_id}: already {done}; nothing changed")
    return 0


def _summary(incident_id: str) -> None:
    report = postmortem(EventStore.from_airflow(), incident_id)
    if report is None:
        return

    def took(seconds: float | None, what: str) -> str:
        return f"{what} {seconds:.0f} s" if seconds is not None else f"{what} n/a"

    first = f"{report.first_anomalous:%Y-%m-%d %H:%M:%S}" if report.first_anomalous else "n/a"
    print(
        f"{report.kind} at {report.where}: first anomalous event {first}, opened {report.opened:%Y-%m-%d %H:%M:%S}, "
        + (f"resolved {report.resolved:%Y-%m-%d %H:%M:%S}" if report.resolved else "still open")
    )
    print(f"  {took(report.mttd_s, 'time to detect')}, {took(report.mttr_s, 'time to recover')}")
    runs = report.affected_runs
    print(
        f"  affected: {len(runs)} run(s)"
        + (f" ({', '.join(runs[:5])}{', ...' if len(runs) > 5 else ''})" if runs else "")
        + (f"; agents {', '.join(report.affected_agents)}" if report.affected_agents else "")
    )
    print(f"  actions: {'; '.join(report.actions) or 'none'}")


def tick_now() -> int:
    report = loop.tick(EventStore.from_airflow(), load_config(dags_folder()), dags=dags_folder())
    print(
        f"{report.folded} event(s) folded; {len(report.anomalies)} anomaly(ies); "
        f"{len(report.transitions)} transition(s); {len(report.actions)} action(s); {report.notified} message(s)"
    )
    for t in report.transitions:
        print(f"  {t.type:<22} {t.kind:<20} {t.where}")
    for action, outcome in report.actions:
        print(f"  action {action.do:<16} {action.target}: {outcome}")
    return 0
