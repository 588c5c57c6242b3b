"""``baton schema`` (the JSON Schemas, generated from the models) and ``baton show`` (a workflow's plan)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import baton.skills  # noqa: F401  (registers Baton's own skills, which templates and the roster may name)
from baton.cli.common import add_command, dags_folder
from baton.errors import TemplateError
from baton.plan import connections, describe, plan_workflow
from baton.spec import schema as schemas
from baton.spec.loading import load_named

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "spec" / "schemas"


def add(commands: Any) -> None:
    schema = add_command(commands, "schema")
    schema.add_argument("--out", type=Path, default=SCHEMA_DIR)
    schema.set_defaults(run=lambda args: write_schemas(args.out))
    plan = add_command(commands, "show")
    plan.add_argument("workflow")
    plan.add_argument("--dags", type=Path, default=None)
    plan.set_defaults(run=lambda args: show(args.workflow, args.dags or dags_folder()))


def write_schemas(out: Path) -> int:
    for path in schemas.write_schemas(out):
        print(path)
    return 0


def show(workflow: str, dags: Path) -> int:
    """Print the compiled plan of one workflow: its tasks, what each runs, needs and pool."""
    try:
        spec, roster = load_named(dags, workflow)
    except TemplateError as error:
        print(error, file=sys.stderr)
        return 1
    plan = plan_workflow(spec, roster)
    spec = plan.workflow
    print(
        f"{spec.workflow} v{spec.version} ({spec.category}, owner {spec.owner}); "
        f"schedule: {spec.schedule.cron or 'none'} {spec.schedule.timezone}"
    )
    rows = describe(plan)
    widths = {key: max(len(key), *(len(str(row[key])) for row in rows)) for key in rows[0]}
    print("  ".join(key.ljust(width) for key, width in widths.items()))
    for row in rows:
        print("  ".join(str(row[key]).ljust(width) for key, width in widths.items()))
    for pool, slots in sorted(plan.pools.items()):
        print(f"pool {pool}: {slots} slot(s)")
    for line in connections(plan):
        print(line)
    return 0
