"""The ``baton`` command: validate | schema | show | pools | db | demo | replay | runs | compensate | alerts."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

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
    loaded = {}
    for path in files:
        if not path.exists():
            problems.append(f"{path}: no such file (fix: name a template file or a folder of them)")
            broken += 1
            continue
        try:
            loaded[path] = load_workflow(path, roster)
        except TemplateError as error:
            broken += 1
            problems += [str(issue) for issue in error.issues]
    for line in problems:
        print(line)
    found_warnings = warnings(loaded)
    for line in found_warnings:
        print(line)
    print(
        f"{len(files)} template(s) checked, {broken} with errors, {len(problems)} error(s) in all"
        + (f", {len(found_warnings)} warning(s)" if found_warnings else "")
        + ("" if roster is not None else "; the roster has errors")
    )
    return 1 if problems else 0


def warnings(workflows: dict[Path, Any]) -> list[str]:
    """What is valid but probably wrong across the templates: an asset no workflow emits (its
    workflow never runs by itself), a sensor whose database connection is not defined here."""
    emitted = sorted({emit.asset for w in workflows.values() for step in w.steps for emit in step.emits})
    found = []
    for path, workflow in workflows.items():
        trigger = workflow.trigger
        for index, name in enumerate((trigger.asset or []) if trigger else []):
            if name not in emitted:
                found.append(
                    f"{path}: trigger.asset[{index}]: warning: no workflow here emits asset '{name}', so "
                    f"'{workflow.workflow}' runs only when triggered by hand (fix: add `emits: {name}` to a "
                    f"step of the workflow that produces it; emitted here: {', '.join(emitted) or 'none'})"
                )
        if (
            trigger is not None
            and trigger.sensor is not None
            and not _connection_defined(trigger.sensor.spec.conn_id)
        ):
            conn_id = trigger.sensor.spec.conn_id
            found.append(
                f"{path}: trigger.sensor.{trigger.sensor.kind}.conn_id: warning: connection '{conn_id}' is "
                f"not defined here, so the sensor will fail (fix: create it in Admin > Connections or set "
                f"AIRFLOW_CONN_{conn_id.upper()} to the business database's URI)"
            )
    return found


def _connection_defined(conn_id: str) -> bool:
    """Whether Airflow can resolve the connection from this process (environment, secrets backend or
    metadata database); a lookup that cannot even be tried counts as defined (no false warning)."""
    if os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}"):
        return True
    try:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            return False
    except Exception:
        return True
    return True


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


def db_upgrade() -> int:
    """Create or migrate Baton's store (the Airflow connection baton_store)."""
    from baton.events.migrations import upgrade
    from baton.events.store import EventStore

    store = EventStore.from_airflow()
    applied = upgrade(store.engine)
    where = store.engine.url.render_as_string()
    print(f"{where}: " + ("applied " + "; ".join(applied) if applied else "up to date"))
    return 0


def replay_run(run_id: str, until: int | None, rerun: bool) -> int:
    """Print a run's timeline and the state its events add up to (at ``until``); 1 if unknown."""
    from baton.events import replay
    from baton.events.store import EventStore

    store = EventStore.from_airflow()
    if not store.has_run(run_id):
        print(
            f"no events for run '{run_id}' in {store.engine.url.render_as_string()}; "
            "list runs with `baton runs`",
            file=sys.stderr,
        )
        return 1
    events = list(store.read(run_id, until=until))
    for line in replay.timeline(events):
        print(line)
    state = replay.fold(run_id, events)
    at = f" at event {until}" if until is not None else ""
    print(f"\nrun {run_id} ({state.workflow} v{state.template_version}){at}: {state.state}")
    for (step, map_index), s in state.steps.items():
        name = step if map_index < 0 else f"{step}[{map_index}]"
        detail = f" agent {s.agent}" if s.agent else ""
        detail += f", {s.input_tokens}+{s.output_tokens} tokens" if s.model_calls else ""
        detail += f", error {s.error}" if s.error else ""
        print(f"  {name:<28} {s.state:<13} try {s.try_number}{detail}")
    if state.saga:
        print(f"  saga: {state.saga}; undone newest first: {', '.join(state.compensated) or 'nothing'}")
    for corrupt in state.corrupt:
        print(f"  !! {corrupt}")
    status = 1 if state.corrupt else 0
    if rerun:
        from baton.agents.rerun import rerun as rerun_run

        verdicts = rerun_run(store, run_id, _dags_folder())
        print("\nrerun with the recorded model outputs (no model is called):")
        for verdict in verdicts:
            print(f"  {verdict}")
        status = status or int(any(not v.same for v in verdicts))
    return status


def runs(limit: int) -> int:
    """Seed 002's workflow_executions, newest first."""
    from baton.events import projections
    from baton.events.store import EventStore

    for row in projections.executions(EventStore.from_airflow(), limit=limit):
        print(
            f"{row['timestamp']}  {row['trigger_id']:<24} {row['execution_status']:<10} "
            f"{row['workflow_id']}  agents: {', '.join(row['agents_involved']) or '-'}"
        )
    return 0


def compensate(run_id: str) -> int:
    """Undo a past run's completed steps, newest first (what an earlier saga undid is skipped).

    0 when everything is undone; 1 when a compensation keeps failing (the saga stops there: fix the
    cause and run this again, it goes on where it stopped) or the run is unknown.
    """
    from baton.coordination.saga import saga_for_run
    from baton.errors import AgentError
    from baton.events.store import EventStore

    store = EventStore.from_airflow()
    try:
        saga = saga_for_run(store, run_id, saga_id=f"cli.{_now()}", dags_folder=_dags_folder())
    except AgentError as error:
        print(error, file=sys.stderr)
        return 1
    outcome = saga.run()
    saga.finish(outcome)
    for name in outcome.already:
        print(f"  {name:<32} already compensated")
    for name in outcome.compensated:
        print(f"  {name:<32} compensated")
    if outcome.stuck is not None:
        saga.alert_stuck(outcome, "baton compensate stopped:")
        print(f"  {outcome.stuck.name:<32} FAILED: {outcome.error}")
        for name in outcome.left:
            print(f"  {name:<32} not attempted (older than the one that failed)")
        print(f"run {run_id}: compensation stopped; fix the cause and run `baton compensate {run_id}` again")
        return 1
    print(f"run {run_id} ({saga.workflow}): {outcome.state}")
    return 0


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")


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
    db = commands.add_parser("db", help="create or migrate Baton's store")
    db.add_argument("action", choices=["upgrade"])
    play = commands.add_parser("replay", help="a run's timeline and state, rebuilt from its events")
    play.add_argument("run_id")
    play.add_argument("--until", type=int, help="stop at this event sequence number")
    play.add_argument(
        "--rerun",
        action="store_true",
        help="re-execute the steps with the recorded model outputs; report any that diverge",
    )
    listing = commands.add_parser("runs", help="recent runs (seed 002's workflow_executions)")
    listing.add_argument("--limit", type=int, default=20)
    undo = commands.add_parser(
        "compensate", help="undo a past run's completed steps, newest first (the saga, on purpose)"
    )
    undo.add_argument("run_id")
    demo = commands.add_parser("demo", help="create and seed the demo business database the sensors watch")
    demo.add_argument("action", choices=["db"])
    demo.add_argument(
        "--conn", default="baton_business", help="its Airflow connection (default baton_business)"
    )
    alerts = commands.add_parser("alerts", help="alerts that did not reach Slack; --resend tries them again")
    alerts.add_argument("--resend", action="store_true")
    args = parser.parse_args(argv)

    if args.command == "db":
        return db_upgrade()
    if args.command == "replay":
        return replay_run(args.run_id, args.until, args.rerun)
    if args.command == "runs":
        return runs(args.limit)
    if args.command == "compensate":
        return compensate(args.run_id)
    if args.command == "demo":
        from demo.business import create

        from baton.errors import ConnectionNotDefined
        from baton.events.store import database_url

        try:
            url = database_url(args.conn, "the demo business database")
        except (ConnectionNotDefined, ValueError) as error:
            print(f"baton demo db: {error}", file=sys.stderr)
            return 1
        create(url)
        print(f"demo business database ready (connection {args.conn})")
        return 0
    if args.command == "alerts":
        from baton.alerts import cli as alerts_cli

        return alerts_cli(args.resend)

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
