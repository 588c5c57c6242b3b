"""``baton db clean --older-than DURATION [--archive DIR] [--dry-run]``: archive, then delete, the store's
rows of the runs that finished before now minus DURATION (see :mod:`baton.ops.retention` for what is kept).

``--archive DIR`` must be an existing, writable folder: it is not created (a mistyped path would otherwise
receive the archive unnoticed). A refused option, or a clean already running, exits 2 as argparse does.

Here, not in ``baton.cli``: ``baton db``'s module (``baton.cli.admin``) adds it, and ``baton X`` loads X's
module of ``baton.cli`` only (tests/cli/test_commands.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from baton.events.store import EventStore
from baton.ops.retention import CleanBusy, Cleaned, clean
from baton.spec.common import duration_option

MAX_AGE = timedelta(days=3660)
NAMES = {"baton_events": "events", "baton_context": "context versions", "baton_task_state": "task states",
         "baton_agent_calls": "agent calls", "baton_budget_ledger": "budget ledger rows",
         "baton_run_summary": "run summaries"}  # fmt: skip


def _older_than(text: str) -> timedelta:
    """The duration of ``--older-than``: the CLI's one duration syntax (``baton verify --since``'s)."""
    return duration_option(text, MAX_AGE, "30d, 12h or 90m")


def _archive_dir(text: str) -> Path:
    """``--archive``'s folder: it exists, is a folder, and this user can create files in it."""
    path = Path(text[:4096])
    shown = text[:80]
    if not path.exists():
        raise argparse.ArgumentTypeError(f"'{shown}' does not exist: create the folder first (mkdir -p)")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"'{shown}' is a file, not a folder: name a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".baton-clean-probe-")
    except OSError as error:
        raise argparse.ArgumentTypeError(
            f"'{shown}' is not writable ({error.strerror}): name a folder this user can write to"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return path


def add(db_actions: Any) -> None:
    """``clean`` among the actions of ``baton db`` (argparse's subparsers)."""
    parser = db_actions.add_parser("clean", help="archive, then delete, the rows of runs that ended long ago")
    parser.add_argument("--older-than", type=_older_than, required=True, metavar="DURATION",
                        help="clean the runs that ended before now minus this (e.g. 90d)")  # fmt: skip
    parser.add_argument("--archive", metavar="DIR",
                        help="write the rows as DIR/<table>/<day>.jsonl.gz before deleting them")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="count what would go; change nothing")
    parser.set_defaults(run=_run, parser=parser)


def summary(done: Cleaned, dry_run: bool, archive: Path | None) -> str:
    rows = ", ".join(f"{done.rows[table]} {name}" for table, name in NAMES.items())
    where = f" (archived to {archive})" if archive is not None and not dry_run else ""
    verb = "would clean" if dry_run else "cleaned"
    return f"{verb} {done.runs} runs: {rows}{where}"


def _run(args: argparse.Namespace) -> int:
    if args.archive is not None:  # checked when run, not parsed: the docs' commands are parsed here
        try:
            args.archive = _archive_dir(args.archive)
        except argparse.ArgumentTypeError as refused:
            args.parser.error(f"argument --archive: {refused}")  # exits 2, as argparse does
    store = EventStore.from_airflow()
    cutoff = datetime.now(UTC) - args.older_than
    try:
        done = clean(store, cutoff, args.archive, args.dry_run)
    except CleanBusy as busy:
        print(f"baton db clean: error: {busy}", file=sys.stderr)
        return 2
    print(summary(done, args.dry_run, args.archive))
    return 0
