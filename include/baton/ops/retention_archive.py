"""The archive of ``baton db clean --archive DIR``: the rows a batch is about to delete, as gzip-compressed
JSON Lines, one file per table and per day of the runs' end (``DIR/baton_events/2026-11-01.jsonl.gz``).

Each file is written whole under a temporary name (``.<name>.tmp``), fsynced and renamed to its name, and each
folder of a batch's files fsynced once (:func:`sync`): a file under its final name is complete, and durable
before the batch's transaction deletes its rows. A day whose runs span several batches (or several cleans)
gets one more file per batch beside the first: ``2026-11-01.jsonl.gz``, ``2026-11-01.1.jsonl.gz``, ...
(:func:`read` reads them all).

A row is a JSON object of its columns: times as ISO 8601 strings (UTC), JSON columns as they are.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

from baton.events.event import CorruptEvent, Event
from baton.events.rows import from_row

SUFFIX = ".jsonl.gz"


def as_json(row: dict[str, Any]) -> dict[str, Any]:
    """A row (its columns by name) as the archive writes it: times as ISO 8601."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def _free_name(folder: Path, day: date) -> Path:
    path, n = folder / f"{day.isoformat()}{SUFFIX}", 0
    while path.exists():
        n += 1
        path = folder / f"{day.isoformat()}.{n}{SUFFIX}"
    return path


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: gzip's own default (the command's ``-6``): Python's 9 took 3 times the CPU for files a few percent smaller.
LEVEL = 6


def write(root: Path, table: str, day: date, rows: Iterable[dict[str, Any]]) -> Path:
    """Write ``rows`` of ``table`` whose runs ended on ``day`` to a new file under ``root``, fsynced and renamed
    to its name; its path. Its folder is fsynced by :func:`sync` (once for all the files of a batch)."""
    folder = root / table
    folder.mkdir(exist_ok=True)
    path = _free_name(folder, day)
    temp = folder / f".{path.name}.tmp"
    with open(temp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=LEVEL) as out:
            for row in rows:  # keys in the order read: a replay prints a payload in its order
                out.write(json.dumps(as_json(row), separators=(",", ":")).encode() + b"\n")
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(temp, path)
    return path


def sync(files: Iterable[Path]) -> None:
    """Make the renames of ``files`` durable: each of their folders fsynced once."""
    for folder in sorted({path.parent for path in files}):
        _fsync_dir(folder)


class ArchiveError(ValueError):
    """An archive file that cannot be read: its path, the line, and what is wrong."""


def read(root: Path, table: str) -> Iterator[dict[str, Any]]:
    """Every row archived of ``table`` under ``root``, file by file in name order; an :class:`ArchiveError`
    names the file and line of one that is truncated or not JSON Lines."""
    folder = root / table
    for path in sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []:
        number = 0
        try:
            with gzip.open(path, "rt", encoding="utf-8") as lines:
                for number, line in enumerate(lines, 1):
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise ArchiveError(
                            f"{path}:{number}: a row is a JSON object, not {type(row).__name__}"
                        )
                    yield row
        except (OSError, EOFError, zlib.error, UnicodeDecodeError) as error:
            raise ArchiveError(f"{path}: cannot be read after line {number}: {error}") from None
        except json.JSONDecodeError as error:
            raise ArchiveError(f"{path}:{number}: not a JSON row: {error}") from None


_EVENT_COLUMNS = ("seq", "run_id", "workflow", "template_version", "step", "map_index", "try_number", "agent")


def run_events(root: Path, run_id: str, until: int | None = None) -> list[Event | CorruptEvent]:
    """The archived events of run ``run_id`` (up to sequence number ``until``), in sequence order, read as the
    store's are (``rows.from_row``: a row that does not fit is a ``CorruptEvent``); none for a run the
    archive does not hold. Every events file is read (a run's day is not known beforehand), one row at a time."""
    found = []
    for row in read(root, "baton_events"):
        if row.get("run_id") != run_id or (until is not None and (row.get("seq") or 0) > until):
            continue
        try:
            ts = datetime.fromisoformat(row["ts"])
            stored = (*(row.get(c) for c in _EVENT_COLUMNS), row["type"], json.dumps(row["payload"]))
        except (KeyError, TypeError, ValueError) as error:
            found.append(
                CorruptEvent(row.get("seq") or 0, str(row.get("type")), f"archived row unreadable: {error}")
            )
            continue
        found.append(from_row((*stored, ts, row.get("idempotency_key"))))
    return sorted(found, key=lambda e: e.seq or 0)
