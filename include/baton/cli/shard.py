"""``baton shard N``: split the dags folder's templates over N DAG files, so that each file's parse stays well
within Airflow's ``[core] dagbag_import_timeout``; ``baton shard 1`` goes back to ``baton_workflows.py`` alone.

It writes ``baton_workflows_<k>_of_<N>.py`` for k = 1 .. N (Baton's loader, the same line as
``baton_workflows.py``: the file's name says which templates it loads, ``baton.compile.shards.Loaders``), then
removes the shard files of any other count, and prints how many templates each file holds. It writes and
removes only files named exactly as a shard file whose text is what it writes (``SHARD_TEXT``); another file
of such a name (edited, a link, a folder) stops it before it changes anything, named. Each file is written to
a temporary file and renamed over its name (``os.replace``), so a parse never reads half of one; two
``baton shard`` at once take turns (a lock on the folder), so the folder ends with one command's set. While
it runs the loader resolves the mix (the whole set, else the largest; ``baton_workflows.py`` loads the
templates of a shard without a file): each template loads from one file throughout.

A folder of ``baton init`` (``baton_dags.py``, ``baton.dagfile``) is not split: it loads every DAG, and
shard files beside it would define each template's DAG twice. Its parse stops at the deadline instead
(``baton.compile.shards.Deadline``) and says so.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from baton.cli.common import add_command, dags_folder
from baton.compile.loader import template_files
from baton.compile.shards import (
    LOADER_FILE,
    MAX_SHARDS,
    dagfile_loaders,
    read_shard_name,
    shard_file,
    shard_of,
)

SHARD_TEXT = '''"""Airflow DAG file of Baton, written by `baton shard`: one share of the DAGs of workflows/*.yaml.

Its name says which: baton_workflows_<k>_of_<n>.py loads the templates whose name's CRC-32 modulo n is
k - 1, so that each DAG comes from one file and each file's parse stays within Airflow's
[core] dagbag_import_timeout. `baton shard 1` goes back to baton_workflows.py alone. Leave it as it is.
"""

from pathlib import Path

from baton.compile.loader import load_dags

globals().update(load_dags(Path(__file__)))
'''
MAX_READ = 64_000  # bytes of a shard-named file read to compare it with SHARD_TEXT


class ShardError(Exception):
    """``baton shard`` changed nothing: what and how to fix it."""


def count(text: str) -> int:
    """N of ``baton shard N``: a whole number from 1 to ``MAX_SHARDS``."""
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text[:40]}' is not a whole number (fix: 1 to {MAX_SHARDS})"
        ) from None
    if not 1 <= value <= MAX_SHARDS:
        raise argparse.ArgumentTypeError(
            f"{value} is out of range (fix: 1 to {MAX_SHARDS}; 1 goes back to {LOADER_FILE} alone)"
        )
    return value


def add(commands: Any) -> None:
    shard = add_command(commands, "shard")
    shard.add_argument("count", type=count, metavar="N", help=f"how many files (1 to {MAX_SHARDS})")
    shard.add_argument("--dags", type=Path, default=None, help="the dags folder (default: Airflow's)")
    shard.set_defaults(run=lambda args: run(args.dags or dags_folder(), args.count))


def _is_ours(path: Path) -> bool:
    """Whether ``path`` is a regular file (not a link) whose text is ``SHARD_TEXT``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder, a pipe, a device of that name
        os.close(fd)
        return False
    with os.fdopen(fd, "rb") as file:
        return file.read(MAX_READ) == SHARD_TEXT.encode()


def _shard_files(folder: Path) -> dict[str, tuple[int, int]]:
    """The folder's entries named exactly as a shard file: name -> (k, n)."""
    found = {}
    for entry in sorted(os.listdir(folder)):
        read = read_shard_name(entry)
        if isinstance(read, tuple):
            found[entry] = read
    return found


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One ``baton shard`` at a time in ``folder`` (an advisory lock on the folder itself: no file of its own)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write(folder: Path, name: str) -> None:
    """``SHARD_TEXT`` as ``folder/name``, whole or not at all: a temporary file (not a .py: Airflow does not
    parse it) renamed over the name."""
    temporary = folder / f".{name}.{os.getpid()}.tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(SHARD_TEXT)
        os.replace(temporary, folder / name)
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()


def shard(folder: Path, shards: int) -> tuple[list[str], list[str], dict[str, int]]:
    """Make ``folder``'s templates load from ``shards`` files (1: ``baton_workflows.py`` alone): (the files
    written, the files removed, templates per loader file). Raises ShardError, having changed nothing,
    when it cannot."""
    # long: one locked change of the folder: the refusals first, then the set written whole, then the old one removed
    if not folder.is_dir():
        raise ShardError(f"{folder} is not a folder (fix: name the Airflow dags folder, with --dags)")
    if not 1 <= shards <= MAX_SHARDS:
        raise ShardError(f"{shards} shards: from 1 to {MAX_SHARDS}")
    dagfile = dagfile_loaders(folder)
    if dagfile:
        raise ShardError(
            f"{folder / dagfile[0]} loads every DAG of the folder (baton init's file): shard files beside it "
            f"would define each DAG twice, so this folder is not split (its parse stops before Airflow's "
            f"timeout and logs what it left out; fix: raise [core] dagbag_import_timeout)"
        )
    with _locked(folder):
        existing = _shard_files(folder)
        foreign = [name for name in existing if not _is_ours(folder / name)]
        if foreign:
            raise ShardError(
                f"{folder / foreign[0]} is not a shard file written by baton shard (edited, or not a plain file)"
                f"{f' (and {len(foreign) - 1} more)' if len(foreign) > 1 else ''}: baton shard writes and removes "
                "only its own (fix: move it out of the dags folder, or remove it)"
            )
        if shards == 1 and not (folder / LOADER_FILE).is_file():
            raise ShardError(
                f"{folder} has no {LOADER_FILE}: without the shard files no file would load the templates (fix: "
                f"put {LOADER_FILE} back, as dags/{LOADER_FILE} of Baton's repository)"
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ShardError(f"{folder} is not writable (fix: check its permissions, or name another folder)")
        wanted = [shard_file(k, shards) for k in range(1, shards + 1)] if shards > 1 else []
        written, removed = [], []
        try:
            for name in wanted:  # the new set whole first: the loader keeps the old one until then
                _write(folder, name)
                written.append(name)
            for name in existing:
                if name not in wanted and _is_ours(folder / name):
                    (folder / name).unlink()
                    removed.append(name)
        except OSError as error:
            raise ShardError(
                f"cannot write {error.filename or folder}: {error.strerror} (fix: check the folder's permissions "
                f"and space; the loader still gives each template one file: {', '.join(written) or 'none'} "
                "written so far)"
            ) from None
    names = [path.stem for path in template_files(folder)]
    if shards == 1:
        held = {LOADER_FILE: len(names)}
    else:
        held = {name: 0 for name in wanted}
        for stem in names:
            held[shard_file(shard_of(stem, shards), shards)] += 1
    return written, removed, held


def run(folder: Path, shards: int) -> int:
    try:
        written, removed, held = shard(folder, shards)
    except ShardError as error:
        print(f"baton shard: {error}", file=sys.stderr)
        return 1
    for name in written:
        print(f"wrote {folder / name}: {held[name]} template(s)")
    for name in removed:
        print(f"removed {folder / name}")
    total = sum(held.values())
    if shards == 1:
        print(f"{LOADER_FILE} loads all {total} template(s)")
    else:
        print(
            f"{total} template(s) over {shards} files; {LOADER_FILE} loads none of them while they are there"
        )
    return 0
