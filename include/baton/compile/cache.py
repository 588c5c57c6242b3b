"""The validation cache: what checking a template found, on disk, keyed by everything it depends on.

The DAG processor parses each DAG file in a fresh process every ``min_file_process_interval``; both
of Baton's DAG files read every template. Reading YAML, validating and parsing the Jinja of an
unchanged template gives the same answer every time, so it is kept in one SQLite file,
``$AIRFLOW_HOME/baton/spec-cache/cache.sqlite3`` (or under ``BATON_SPEC_CACHE``; ``off`` disables it),
and reused. The key hashes the template's path and what ``stat`` says of it (device, inode, size,
modification and change times; its bytes instead while it is younger than ``RACY`` seconds), the
roster's bytes, the limits, the extensions named in ``BATON_EXTENSIONS``, Baton's own source files
(path, size and modification time, as Python's bytecode cache does) and the versions of the libraries
that validate, so any change to one of them is a miss. Not the extensions' own files, nor those an entry
point loads: a changed extension is seen once Baton, the template or the roster changes. A cache that
cannot be used is no cache; a damaged one is started again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from baton.limits import limits

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parents[1]
MAX_ENTRIES = 5000
RACY = 2.0  # seconds: a template younger than this is keyed by its bytes, not by what stat says of it
FILE = "cache.sqlite3"
LOCK_WAIT = 5.0  # seconds a parse waits for another process's write before it goes on without the cache
# A template's row: its issues (JSON; NULL when healthy) or its validated workflow (the model's own JSON,
# read back with pydantic's parser), what each step reads (JSON), and the file of the version it rolls out
# to. The table's name carries the layout's version: a cache file of another layout is not misread, only
# refilled.
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries_v2 (key TEXT PRIMARY KEY, issues TEXT, workflow TEXT, reads TEXT,"
    " rollout TEXT, written REAL NOT NULL)"
)
WRITE = "INSERT OR REPLACE INTO entries_v2 (key, issues, workflow, reads, rollout, written) VALUES (?, ?, ?, ?, ?, ?)"
PRUNE = (
    "DELETE FROM entries_v2 WHERE rowid IN"
    " (SELECT rowid FROM entries_v2 ORDER BY written DESC LIMIT -1 OFFSET ?)"
)


_NOT_SOURCE = frozenset({"node_modules", "__pycache__"})
VALIDATION_LIBRARIES = (
    "pydantic",
    "jinja2",
    "PyYAML",
    "croniter",
    "jsonschema",
)  # what validation depends on


@cache
def code_fingerprint() -> bytes:
    """Baton's own source files and the versions of the libraries its validation depends on."""
    digest = hashlib.sha256()
    for folder, subfolders, files in os.walk(PACKAGE):  # as Python's own bytecode cache: path, size, mtime
        # os.walk: not pathlib's rglob, a third of the time in every parse's process. Only folders that can
        # hold Baton's modules: the pages' node_modules (ECharts, ~90 folders) was most of the walk's time.
        subfolders[:] = sorted(s for s in subfolders if s not in _NOT_SOURCE and not s.startswith("."))
        for file in sorted(f for f in files if f.endswith(".py")):
            stat = os.stat(os.path.join(folder, file))
            name = os.path.relpath(os.path.join(folder, file), PACKAGE)
            digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    for distribution in VALIDATION_LIBRARIES:  # the installed versions (jsonschema deprecated __version__)
        digest.update(f"{distribution}={_version(distribution)}".encode())
    return digest.digest()


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


class Entry(NamedTuple):
    """What validating one template found."""

    issues: list[dict[str, Any]] | None  # its problems (None: it is healthy)
    workflow: str | None = None  # the validated workflow as JSON (None: broken, or not asked for)
    reads: dict[str, list[str]] | None = None  # each step id -> the upstream steps it reads
    rollout: str | None = None  # the file (in dags/versions/) of the version it rolls out to


def default_folder() -> Path | None:
    setting = os.environ.get("BATON_SPEC_CACHE", "")
    if setting.lower() in ("off", "0", "false", "no"):
        return None
    if setting:
        return Path(setting)
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow") / "baton" / "spec-cache"


class SpecCache:
    """Validation results by key in one SQLite file of ``folder``; ``folder=None`` caches nothing.

    One file, not a file per template: creating a hundred small files costs more than validating a
    template does on some file systems, and a task process reads its one template's row by its key.
    What a parse finds is written at :meth:`flush`, in one transaction; SQLite's locking makes the two
    DAG files' processes (and every task process) safe to read and write it at the same moment.
    """

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.hits = 0
        self.misses = 0
        self._db: sqlite3.Connection | None = None
        self._pending: dict[str, tuple[str | None, ...]] = {}
        self._base: Any = None  # the digest of what every key shares (Baton, its libraries, the limits)

    def key(self, name: str, template: bytes, roster: bytes) -> str:
        """The key of template ``name`` by its bytes."""
        return self._digest(b"bytes", name.encode(), roster, template)

    def stat_key(self, name: str, stat: os.stat_result, roster: bytes) -> str | None:
        """The key of template ``name`` by what ``stat`` says of it (device, inode, size, modification and
        change times: a write changes the change time, which no tool sets back), so that a parse that
        finds it known does not read it. None while the file is younger than ``RACY`` seconds: a write in
        the same tick of a coarse clock would look the same (git's "racy" files); its bytes decide then."""
        if time.time() - stat.st_mtime < RACY or time.time() - stat.st_ctime < RACY:
            return None
        fields = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        return self._digest(b"stat", name.encode(), roster, repr(fields).encode())

    def _digest(self, *parts: bytes) -> str:
        if self._base is None:
            self._base = hashlib.sha256(code_fingerprint())
            self._base.update(repr(limits()).encode())  # a template refused under one limit may pass another
            # the extensions named here register skills a template may name (entry points are not seen)
            self._base.update(os.environ.get("BATON_EXTENSIONS", "").encode())
        digest = self._base.copy()
        for part in parts:
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        return digest.hexdigest()

    def get(self, key: str, whole: bool = True) -> Entry | None:
        """What validating the template of ``key`` found, or None; with ``whole=False`` only whether it
        is broken (its issues), not the workflow (what the errors file needs)."""
        columns = "issues, workflow, reads, rollout" if whole else "issues, NULL, NULL, rollout"
        row = self._use(
            lambda db: db.execute(f"SELECT {columns} FROM entries_v2 WHERE key = ?", (key,)).fetchone()
        )
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        issues, workflow, reads, rollout = row
        return Entry(
            json.loads(issues) if issues else None, workflow, json.loads(reads) if reads else None, rollout
        )

    def put(self, key: str, entry: Entry) -> None:
        """Kept until :meth:`flush` (so a parse writes once, however many templates it validated)."""
        if self.folder is not None:
            issues = json.dumps(entry.issues) if entry.issues is not None else None
            reads = json.dumps(entry.reads) if entry.reads else None
            self._pending[key] = (issues, entry.workflow, reads, entry.rollout)

    def forget(self, key: str) -> None:
        self._pending.pop(key, None)
        if key:
            self._use(lambda db: db.execute("DELETE FROM entries_v2 WHERE key = ?", (key,)))

    def flush(self) -> None:
        """Write what :meth:`put` kept, in one transaction, and drop the oldest entries over
        ``MAX_ENTRIES``; then close."""
        pending, self._pending = self._pending, {}
        if pending:
            rows = [(key, *values, time.time()) for key, values in pending.items()]
            self._use(lambda db: (db.executemany(WRITE, rows), db.execute(PRUNE, (MAX_ENTRIES,))))
        if self._db is not None:
            self._db.close()
            self._db = None

    def _use(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """What ``work`` returns, run in one transaction. Any failure of the file (not writable, not a
        database, locked for too long) turns the cache off for this parse: None."""
        if self.folder is None:
            return None
        try:
            db = self._db or self._open()
            with db:
                return work(db)
        except (OSError, sqlite3.Error) as error:
            log.info(
                "Baton's spec cache %s cannot be used (%s); templates are checked on every parse",
                self.folder,
                error,
            )
            self.folder, self._pending = None, {}
            if self._db is not None:
                self._db.close()
                self._db = None
            return None

    def _open(self) -> sqlite3.Connection:
        """The connection; a file that is not a database (a crash mid-write, something else written
        there) is the cache's own: it is started again, once."""
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            return self._connect()
        except sqlite3.OperationalError:  # locked, busy, I/O: not damage (it is a DatabaseError too)
            raise
        except sqlite3.DatabaseError as error:
            log.warning("Baton's spec cache %s is damaged (%s); starting it again", self.folder / FILE, error)
            for suffix in ("", "-wal", "-shm"):
                (self.folder / f"{FILE}{suffix}").unlink(missing_ok=True)
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        """The connection, in WAL mode with the table made. Processes opening a new file at once can be
        told "database is locked" at once (switching the journal mode does not wait on SQLite's busy
        timeout): asked again until LOCK_WAIT has passed."""
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                return self._connect_once(wait=max(0.0, deadline - time.monotonic()))
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _connect_once(self, wait: float) -> sqlite3.Connection:
        db = sqlite3.connect(self.folder / FILE, timeout=wait)  # what is left of LOCK_WAIT, in all
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode = WAL")  # readers never wait for a writer
            # A cache: no sync on write (a crash loses the last writes, or damages the file, which
            # _open starts again); a sync on every parse's close was a tenth of validating.
            db.execute("PRAGMA synchronous = OFF")
            db.execute(SCHEMA)
            db.execute(f"PRAGMA busy_timeout = {round(LOCK_WAIT * 1000)}")  # each later read and write
        except sqlite3.Error:
            db.close()
            raise
        self._db = db
        return db
