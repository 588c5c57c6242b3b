"""``baton diff OLD NEW``: the change from one version of a workflow template to the next, and its impact:
the inputs that break existing callers, the steps added and removed, the outputs other steps read, the
agents that come and go and the budgets that apply to them. Exit 0: nothing breaks; 1: something does;
2: a template cannot be read (its errors are printed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from baton.budgets.config import budgets_of
from baton.cli.common import add_command, dags_folder
from baton.errors import TemplateError
from baton.spec.diff import diff
from baton.spec.loading import Source
from baton.spec.models import Workflow


def add(commands: Any) -> None:
    parser = add_command(commands, "diff")
    parser.add_argument(
        "old", type=Path, help="the template as it is (e.g. `git show HEAD:dags/workflows/x.yaml > old.yaml`)"
    )
    parser.add_argument("new", type=Path, help="the template as it would be")
    parser.add_argument("--json", action="store_true", help="one JSON document")
    parser.set_defaults(run=lambda args: show(args.old, args.new, args.json))


def show(old_path: Path, new_path: Path, as_json: bool) -> int:
    workflows = []
    for path in (old_path, new_path):
        try:  # the template's own shape: not the roster's or the file name's checks (either may have moved on)
            source = Source(path)
            workflows.append(source.validate(Workflow, source.parse()))
        except (TemplateError, OSError) as error:
            print(f"baton diff: {path} cannot be read:\n{error}")
            return 2
    found = diff(*workflows)
    budgets = _budgets(found.new.workflow, found.agents_added)
    if as_json:
        print(json.dumps({**found.document(), "budgets": budgets}, indent=2, default=str))
        return 1 if found.breaking else 0
    print(f"{found.new.workflow}: {len(found.changes)} change(s), {len(found.breaking)} breaking")
    for change in found.changes:
        print(f"  {change.line()}")
    if found.agents_added or found.agents_removed:
        print(
            f"  agents: +{', +'.join(found.agents_added) or ' none'}; -{', -'.join(found.agents_removed) or ' none'}"
        )
    for line in budgets:
        print(f"  budget {line}")
    return 1 if found.breaking else 0


def _budgets(workflow: str, agents: list[str]) -> list[str]:
    """The budgets of the dags folder that apply to the workflow or to an agent it now calls."""
    try:
        budgets = budgets_of(dags_folder())
    except TemplateError as error:
        return [f"budgets.yaml cannot be read: {str(error)[:300]}"]
    scopes = {
        f"workflow:{workflow}": "this workflow",
        **{f"agent:{a}": f"agent {a}, new here" for a in agents},
    }
    return [f"{b.name} ({b.per}) applies to {scopes[b.scope]}" for b in budgets if b.scope in scopes]


__all__ = ["add", "show"]
