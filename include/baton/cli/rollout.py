"""``baton rollout``: where each rollout of the dags folder's templates stands: the new version's share and
stage, each version's runs (ended, failed, in flight), what the guardrails say, and the decisions so far."""

from __future__ import annotations

import json
from typing import Any

from baton.cli.common import add_command, dags_folder
from baton.events.store import EventStore
from baton.ops.reports.rollouts import report


def add(commands: Any) -> None:
    rollout = add_command(commands, "rollout")
    rollout.add_argument("--workflow", help="only this workflow's rollout")
    rollout.add_argument("--json", action="store_true", help="one JSON document")
    rollout.set_defaults(run=lambda args: show(args.workflow, args.json))


def show(workflow: str | None, as_json: bool) -> int:
    found = report(EventStore.from_airflow(), dags_folder(), workflow)
    if as_json:
        print(json.dumps({"rollouts": found}))
        return 0
    if not found:
        print("No rollout" + (f" of {workflow}" if workflow else "") + ": no template declares 'rollout' (or its "
              "new version is broken: baton validate)")  # fmt: skip
        return 0
    for r in found:
        print(f"{r['workflow']}: v{r['from_version']} -> v{r['to_version']} ({r['file']}): {r['status']}, "
              f"{r['share']:g} % of new runs on v{r['to_version']} (stage {r['stage']})")  # fmt: skip
        for arm, version in (("stable", r["from_version"]), ("canary", r["to_version"])):
            n = r["runs"][arm]
            rate = "-" if n["failure_rate"] is None else f"{n['failure_rate']:.1%}"
            print(f"  v{version}: {n['runs']} run(s) ended, failures {rate}, {r['in_flight'][arm]} in flight")
        if r.get("gated"):  # its new version has not passed the workflow's dataset (baton eval --record)
            print(f"  gated: {r['gated']}")
        print(f"  guardrails: {r['guardrails']}")
        for d in r["decisions"][-5:]:
            print(
                f"  {d['at']} {d['type']} -> {d['share']:g} %{': ' + d['reason'] if d.get('reason') else ''}"
            )
    return 0


__all__ = ["add", "show"]
