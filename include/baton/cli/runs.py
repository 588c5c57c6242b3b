"""``baton runs``, ``baton replay`` and ``baton compensate``: a run's history, rebuilt from its events, and
its saga on purpose."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from baton.cli.common import add_command, dags_folder
from baton.context import ContextStore
from baton.coordination.saga import saga_for_run
from baton.errors import AgentError
from baton.events import projections, replay
from baton.events.store import EventStore
from baton.ops import retention_archive


def add(commands: Any) -> None:
    play = add_command(commands, "replay")
    play.add_argument("run_id")
    play.add_argument("--until", type=int, help="stop at this event sequence number")
    play.add_argument(
        "--rerun",
        action="store_true",
        help="re-execute the steps with the recorded model outputs; report any that diverge",
    )
    play.add_argument(
        "--full", action="store_true", help="nothing cut: each step's output whole, errors whole"
    )
    play.add_argument("--context", action="store_true", help="every version of every shared-context key")
    play.add_argument(
        "--archive",
        type=_archive,
        metavar="DIR",
        help="read the run from this archive of `baton db clean --archive` instead of the store",
    )
    play.set_defaults(run=_replay)
    listing = add_command(commands, "runs")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(run=lambda args: runs(args.limit))
    undo = add_command(commands, "compensate")
    undo.add_argument("run_id")
    undo.set_defaults(run=lambda args: compensate(args.run_id))


def _replay(args: Any) -> int:
    if args.archive is None:
        return replay_run(args.run_id, args.until, args.rerun, args.full, args.context)
    if args.rerun or args.full or args.context:
        print(
            "baton replay: --archive rebuilds the timeline and the state of an archived run; --rerun, --full "
            "and --context read what the store keeps beside its events (fix: leave them out)",
            file=sys.stderr,
        )
        return 2
    try:
        events = retention_archive.run_events(args.archive, args.run_id, args.until)
    except retention_archive.ArchiveError as error:
        print(
            f"baton replay: {error} (fix: restore the file from its copy, or move it out of the archive)",
            file=sys.stderr,
        )
        return 1
    if not events:
        print(f"no events for run '{args.run_id}' in the archive {args.archive}", file=sys.stderr)
        return 1
    return 1 if _print_replay(args.run_id, events, args.until).corrupt else 0


def replay_run(run_id: str, until: int | None, rerun: bool, full: bool = False, context: bool = False) -> int:
    """Print a run's timeline and the state its events add up to (at ``until``); 1 if unknown."""
    store = EventStore.from_airflow()
    if not store.has_run(run_id):
        print(
            f"no events for run '{run_id}' in {store.engine.url.render_as_string()}; "
            "list runs with `baton runs`",
            file=sys.stderr,
        )
        return 1
    events = list(store.read(run_id, until=until))
    state = _print_replay(run_id, events, until, full)
    if full:
        _print_outputs(store, state)
    if context:
        _print_context(store, run_id)
    status = 1 if state.corrupt else 0
    if rerun:
        from baton.rerun import rerun as rerun_run  # deferred: pydantic-ai loads for --rerun only

        verdicts = rerun_run(store, run_id, dags_folder())
        print("\nrerun with the recorded model outputs (no model is called):")
        for verdict in verdicts:
            print(f"  {verdict}")
        status = status or int(any(not v.same for v in verdicts))
    return status


def _print_replay(run_id: str, events: list[Any], until: int | None, full: bool = False) -> Any:
    """Print the timeline of ``events`` and the state they add up to (and the corrupt ones); the state."""
    for line in replay.timeline(events, full=full):
        print(line)
    state = replay.fold(run_id, events)
    at = f" at event {until}" if until is not None else ""
    print(f"\nrun {run_id} ({state.workflow} v{state.template_version}){at}: {state.state}")
    for (step, map_index), s in state.steps.items():
        name = step if map_index < 0 else f"{step}[{map_index}]"
        detail = f" agent {s.agent}" if s.agent else ""
        detail += f", {s.input_tokens}+{s.output_tokens} tokens" if s.model_calls else ""
        detail += ", answered by the OFFLINE MODEL (made-up data)" if s.offline_calls else ""
        detail += f", error {s.error}" if s.error else ""
        print(f"  {name:<28} {s.state:<13} try {s.try_number}{detail}")
    if state.saga:
        print(f"  saga: {state.saga}; undone newest first: {', '.join(state.compensated) or 'nothing'}")
    for corrupt in state.corrupt:
        print(f"  !! {corrupt}")
    return state


def _archive(text: str) -> Path:
    """``--archive``'s folder: one that ``baton db clean --archive`` wrote (it holds ``baton_events/``)."""
    path, shown = Path(text[:4096]), text[:80]
    if not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"'{shown}' is not a folder: name the folder of `baton db clean --archive`"
        )
    if not (path / "baton_events").is_dir():
        raise argparse.ArgumentTypeError(
            f"'{shown}' holds no baton_events/ folder: name the folder given to `baton db clean --archive`"
        )
    return path


def runs(limit: int) -> int:
    """The runs, one row each (the run projection, in Airflow's states), newest first."""
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
    store = EventStore.from_airflow()
    try:
        saga = saga_for_run(store, run_id, saga_id=f"cli.{_now()}", dags_folder=dags_folder())
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
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")


def _print_outputs(store: Any, state: Any) -> None:
    """Each step's output, whole (a large one from its blob), as indented JSON."""
    print("\noutputs:")
    for (step, map_index), s in state.steps.items():
        if s.output is None and s.output_ref is None:
            continue
        output = store.blob(s.output_ref) if s.output_ref else s.output
        name = step if map_index < 0 else f"{step}[{map_index}]"
        body = json.dumps(output, indent=2, sort_keys=True, default=str).replace("\n", "\n    ")
        print(f"  {name}:\n    {body}")


def _print_context(store: Any, run_id: str) -> None:
    """Every version of every shared-context key of the run: who wrote it, and its value."""
    versions = ContextStore(store).history(run_id)
    print("\ncontext:" + ("" if versions else " (no key written)"))
    for entry in versions:
        print(
            f"  {entry.key} v{entry.version} by {entry.writer}: {json.dumps(entry.value, sort_keys=True, default=str)}"
        )
