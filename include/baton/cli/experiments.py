"""``baton experiments``: each step's experiment (``variants``): its arms, their runs and outcomes, and its
decision, or the one it proposes to a person (``approve: true``), who settles it here or on the Management
page: ``--approve WORKFLOW.STEP`` applies it, ``--keep-control WORKFLOW.STEP`` keeps the control."""

from __future__ import annotations

import json
from typing import Any

from baton.cli.common import add_command, dags_folder
from baton.coordination import variants
from baton.events.store import EventStore
from baton.ops.reports.experiments import report


def add(commands: Any) -> None:
    parser = add_command(commands, "experiments")
    parser.add_argument("--workflow", help="only this workflow's experiments")
    parser.add_argument("--json", action="store_true", help="one JSON document")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--approve", metavar="WORKFLOW.STEP", help="apply the decision it proposes")
    which.add_argument(
        "--keep-control", metavar="WORKFLOW.STEP", help="decline it: every run takes the control"
    )
    parser.add_argument("--by", default="", help="who settles it (recorded)")
    parser.set_defaults(run=_run)


def _run(args: Any) -> int:
    if args.approve or args.keep_control:
        return settle(args.approve or args.keep_control, accept=bool(args.approve), by=args.by)
    return show(args.workflow, args.json)


def settle(name: str, accept: bool, by: str) -> int:
    workflow, _, step = name.partition(".")
    if not workflow or not step or not by.strip():
        print(f"give the experiment as WORKFLOW.STEP (got {name[:100]!r}) and who you are with --by")
        return 2
    try:
        decision = variants.settle(EventStore.from_airflow(), workflow, step, by.strip(), accept)
    except LookupError as error:
        print(error)
        return 1
    print(f"{name}: {decision['status']} {decision['variant']} (by {decision.get('by') or 'the test'})")
    return 0


def show(workflow: str | None, as_json: bool) -> int:
    found = report(EventStore.from_airflow(), dags_folder(), workflow)
    if as_json:
        print(json.dumps({"experiments": found}))
        return 0
    if not found:
        print("No experiment: no step declares 'variants'")
        return 0
    for x in found:
        winner = f" -> {x['winner']}" if x["winner"] else ""
        waiting = (
            f" (proposed: {x['proposal']['status']} {x['proposal']['variant']})" if x["proposal"] else ""
        )
        print(f"{x['experiment']}: {x['status']}{winner}{waiting}")
        for arm, counts in x["counts"].items():
            rate = "-" if counts["success_rate"] is None else f"{counts['success_rate']:.1%}"
            print(
                f"  {arm}{' (control)' if arm == x['control'] else ''}: {counts['runs']} run(s), success {rate}"
            )
        print(f"  {x['reason']}")
    return 0


__all__ = ["add", "settle", "show"]
