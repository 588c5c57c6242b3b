"""The ``baton`` command: validate | schema | show | pools."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from baton.errors import TemplateError

SCHEMA_DIR = Path(__file__).resolve().parent / "spec" / "schemas"


def _dags_folder() -> Path:
    return Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or "dags")


def _template_paths(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for pattern in ("*.yaml", "*.yml") for p in path.glob(pattern))
        else:
            files.append(path)
    return files


def validate(paths: list[str], agents: Path) -> int:
    """Print every problem of every template (and of the roster); 1 if there is any."""
    from baton.spec.loading import load_roster, load_workflow
    from baton.spec.roster import Roster

    problems: list[str] = []
    roster: Roster | None = Roster()
    if agents.exists():
        try:
            roster = load_roster(agents)
        except TemplateError as error:
            roster = None
            problems += [str(issue) for issue in error.issues]
    files = _template_paths(paths)
    broken = 0
    for path in files:
        if not path.exists():
            problems.append(f"{path}: no such file (fix: name a template file or a folder of them)")
            broken += 1
            continue
        try:
            load_workflow(path, roster)
        except TemplateError as error:
            broken += 1
            problems += [str(issue) for issue in error.issues]
    for line in problems:
        print(line)
    print(
        f"{len(files)} template(s) checked, {broken} with errors, {len(problems)} error(s) in all"
        + ("" if roster is not None else "; the roster has errors")
    )
    return 1 if problems else 0


def show(workflow: str, dags: Path) -> int:
    """Print the compiled plan of one workflow: its tasks, what each runs, needs and pool."""
    from baton.compile.plan import describe, plan_workflow
    from baton.spec.loading import load_roster, load_workflow

    path = dags / "workflows" / f"{workflow}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (dags / "workflows").glob("*.yaml"))
        print(f"no workflow '{workflow}' in {dags / 'workflows'}; known: {', '.join(known)}", file=sys.stderr)
        return 1
    roster = load_roster(dags / "agents.yaml")
    plan = plan_workflow(load_workflow(path, roster), roster)
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
    return 0


def sync_pools(dags: Path) -> int:
    """Create or resize one Airflow pool per roster agent (needs the Airflow metadata database)."""
    from airflow.models.pool import Pool

    from baton.spec.loading import load_roster

    for agent in load_roster(dags / "agents.yaml").agents:
        Pool.create_or_update_pool(
            agent.pool,
            agent.max_concurrency,
            f"Baton agent {agent.name}: at most {agent.max_concurrency} concurrent steps",
            include_deferred=False,
        )
        print(f"pool {agent.pool}: {agent.max_concurrency} slot(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="baton", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("validate", help="check templates; list every error; exit 1 on any")
    check.add_argument(
        "paths", nargs="*", help="template files or folders (default: the dags folder's workflows)"
    )
    check.add_argument("--agents", type=Path, help="the roster (default: agents.yaml of the dags folder)")
    schema = commands.add_parser("schema", help="write the JSON Schemas generated from the models")
    schema.add_argument("--out", type=Path, default=SCHEMA_DIR)
    plan = commands.add_parser("show", help="print the compiled plan of a workflow")
    plan.add_argument("workflow")
    plan.add_argument("--dags", type=Path, default=None)
    pools = commands.add_parser("pools", help="create one Airflow pool per agent of the roster")
    pools.add_argument("action", choices=["sync"])
    pools.add_argument("--dags", type=Path, default=None)
    args = parser.parse_args(argv)

    if args.command == "validate":
        paths = args.paths or [str(_dags_folder() / "workflows")]
        return validate(paths, args.agents or _dags_folder() / "agents.yaml")
    if args.command == "schema":
        from baton.spec.schema import write_schemas

        for path in write_schemas(args.out):
            print(path)
        return 0
    if args.command == "show":
        return show(args.workflow, args.dags or _dags_folder())
    return sync_pools(args.dags or _dags_folder())


if __name__ == "__main__":
    sys.exit(main())
