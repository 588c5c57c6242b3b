"""The archive of ``baton db clean --archive DIR``: the rows a batch is about to delete, as gzip-compressed
JSON Lines, one file per table and per day of the runs' end (``DIR/baton_events/2026-11-01.jsonl.gz``).

Each file is written whole under a temporary name (``.<name>.tmp``), fsynced, renamed to its name, and the
folder fsynced: a file under its final name is complete, and durable before the batch's transaction
deletes its rows. A day whose runs span several batches (or several cleans) gets one more file per batch
beside the first: ``2026-11-01.jsonl.gz``, ``2026-11-01.1.jsonl.gz``, ... (:func:`read` reads them all).

A row is a JSON object of its columns: times as ISO 8601 strings (UTC), JSON columns as they are.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

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


def write(root: Path, table: str, day: date, rows: Iterable[dict[str, Any]]) -> Path:
    """Write ``rows`` of ``table`` whose runs ended on ``day`` to a new file under ``root``, durably; its path."""
    folder = root / table
    folder.mkdir(exist_ok=True)
    path = _free_name(folder, day)
    temp = folder / f".{path.name}.tmp"
    with open(temp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
            for row in rows:
                out.write(json.dumps(as_json(row), separators=(",", ":"), sort_keys=True).encode() + b"\n")
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(temp, path)
    _fsync_dir(folder)
    return path


def read(root: Path, table: str) -> Iterator[dict[str, Any]]:
    """Every row archived of ``table`` under ``root``, file by file in name order."""
    folder = root / table
    for path in sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                yield json.loads(line)
