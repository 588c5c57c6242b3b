"""Which DAG file of a dags folder loads which templates (shard files: ``baton shard N``), and the deadline that
stops a full parse before Airflow's ``[core] dagbag_import_timeout`` kills it; ``baton.compile.loader`` uses
both, ``baton shard`` and ``baton validate`` read them. Nothing here reads a template.

Airflow kills a DAG file's import at ``[core] dagbag_import_timeout``, every DAG of the file with it. Two
things keep a growing template folder from losing them all at once:

- **Shard files** (``baton shard N``): ``baton_workflows_<k>_of_<n>.py`` loads the templates whose name's
  CRC-32 modulo n is k - 1 (``shard_of``); ``baton_workflows.py`` then loads only the templates of the
  shards that have no file (none, for a whole set). Which file loads what is read from the folder's file
  names at each parse (``Loaders``): a template is loaded by exactly one file, even mid-change.
- **A deadline**: in a full parse under Airflow's import timer, ``compile_folder`` stops compiling once the
  import has used ``DEADLINE_SHARE`` of the timeout, keeps the DAGs compiled so far (templates in file-name
  order: the same ones each parse) and logs how many were left out and the ``baton shard N`` that fits them.
"""

from __future__ import annotations

import logging
import math
import re
import signal
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("baton.compile.loader")  # the loader's lines: what a DAG file's parse logs

LOADER_FILE = "baton_workflows.py"
SHARD_NAME = re.compile(r"baton_workflows_(\d+)_of_(\d+)\.py")  # the names the loader reads as a shard's
MAX_SHARDS = 64
DEADLINE_SHARE = 0.6  # of [core] dagbag_import_timeout: a full parse compiles no template past it
ROOM_SHARE = 0.3  # of it: what one loader file's templates may take with room to spare (`baton shard N`)
IMBALANCE = 1.2  # the fullest of n shards holds up to this much more than templates / n (a few templates)
DEFAULT_IMPORT_TIMEOUT = 30.0  # Airflow's default [core] dagbag_import_timeout


def shard_of(stem: str, shards: int) -> int:
    """The shard (1 .. ``shards``) that holds the template ``<stem>.yaml``: the CRC-32 of its name modulo
    ``shards``, plus one. The same in every process and Python (``hash()`` of a str is salted per process)."""
    return zlib.crc32(stem.encode("utf-8", "surrogateescape")) % shards + 1


def shard_file(k: int, shards: int) -> str:
    """The name of the loader file of shard ``k`` of ``shards``."""
    return f"baton_workflows_{k}_of_{shards}.py"


def read_shard_name(name: str) -> tuple[int, int] | str | None:
    """(k, n) of the shard file ``name``; None when it is not named as one; why not, when it is named as one
    but cannot be one (a shard past the count, a leading zero, more than ``MAX_SHARDS``)."""
    found = SHARD_NAME.fullmatch(name)
    if found is None:
        return None
    k_text, n_text = found.groups()
    if len(k_text) > 3 or len(n_text) > 3 or not 1 <= int(n_text) <= MAX_SHARDS:
        return f"{n_text[:12]} shards: a count is from 1 to {MAX_SHARDS}"
    k, shards = int(k_text), int(n_text)
    if not 1 <= k <= shards:
        return f"shard {k} of {shards}: a shard is from 1 to {shards}"
    if shard_file(k, shards) != name:
        return f"a leading zero: shard {k} of {shards} is {shard_file(k, shards)}"
    return k, shards


@dataclass(frozen=True)
class Share:
    """The shards of ``count`` whose templates a loader file compiles."""

    shards: frozenset[int]
    count: int

    def holds(self, stem: str) -> bool:
        return shard_of(stem, self.count) in self.shards


_told: set[tuple[str, str, str]] = set()


def _once(level: int, folder: Path, file: str, message: str) -> None:
    """Log ``message`` of ``file`` once per process (a parse of a file logs it once, not per template)."""
    if (str(folder), file, message) not in _told:
        _told.add((str(folder), file, message))
        log.log(level, "%s", message)


@dataclass(frozen=True)
class Loaders:
    """Which of the folder's loader files loads which templates, read from their names (nothing else).

    ``count``: the shard count in use (1: none; ``baton_workflows.py`` loads every template). With shard
    files of several counts, the largest count whose set is complete is used, else the largest count; the
    shard files of the other counts load nothing, so no DAG is defined by two files. ``present``: the shards
    of ``count`` that have their file; ``baton_workflows.py`` loads the templates of the others, so none is
    lost while ``baton shard`` writes or removes a set, or when a shard file is deleted by hand. ``others``:
    the shard files of the other counts; ``refused``: files named like a shard that cannot be one (name, why).
    """

    folder: Path
    count: int
    present: frozenset[int]
    others: tuple[str, ...]
    refused: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, folder: Path) -> Loaders:
        sets: dict[int, set[int]] = {}
        refused = []
        try:
            names = sorted(entry.name for entry in folder.iterdir())
        except OSError:
            names = []
        for name in names:
            read = read_shard_name(name)
            if isinstance(read, str):
                refused.append((name, read))
            elif read is not None:
                sets.setdefault(read[1], set()).add(read[0])
        if not sets:
            return cls(folder, 1, frozenset(), (), tuple(refused))
        complete = [count for count, present in sets.items() if len(present) == count]
        count = max(complete or sets)
        others = tuple(shard_file(k, n) for n in sorted(sets) if n != count for k in sorted(sets[n]))
        return cls(folder, count, frozenset(sets[count]), others, tuple(refused))

    @property
    def missing(self) -> list[int]:
        """The shards of ``count`` without a file (``baton_workflows.py`` loads their templates)."""
        return [k for k in range(1, self.count + 1) if k not in self.present] if self.present else []

    def share(self, file: str) -> tuple[Share | None, bool]:
        """What the loader file named ``file`` compiles (None: every template) and whether it is the one
        that defines the compensation DAG; logs, once, why it loads less than it would alone."""
        read = read_shard_name(file)
        if isinstance(read, str):
            fix = f"remove it, or name it baton_workflows_<k>_of_<n>.py, 1 <= k <= n <= {MAX_SHARDS} (`baton shard N`)"
            _once(
                logging.ERROR,
                self.folder,
                file,
                f"{file} loads no template: not a shard file's name ({read}); fix: {fix}",
            )
            return Share(frozenset(), 1), False
        if read is None:  # baton_workflows.py (or any other name that calls the loader)
            if not self.present:
                return None, True
            missing = frozenset(self.missing)
            files = ", ".join(shard_file(k, self.count) for k in sorted(self.present))
            if missing:
                also = (
                    f"; it loads those of shard(s) {', '.join(map(str, sorted(missing)))}, which have no file"
                )
            else:
                also = " (`baton shard 1` goes back to this file alone)"
            _once(
                logging.INFO,
                self.folder,
                file,
                f"{file} leaves the templates of the shard files {files} to them{also}",
            )
            return Share(missing, self.count), 1 in missing
        k, count = read
        if count != self.count:
            _once(
                logging.ERROR,
                self.folder,
                file,
                f"{file} loads no template: the folder has shard files of {self.count} too, which load them "
                f"(the largest complete set, else the largest count; so no DAG comes from two files); fix: "
                f"`baton shard {self.count}` (or the count you want) writes one set and removes the others",
            )
            return Share(frozenset(), count), False
        if self.others:
            _once(
                logging.WARNING,
                self.folder,
                file,
                f"{file} loads shard {k} of {count}; {', '.join(self.others)} load nothing (fix: baton shard {count})",
            )
        return Share(frozenset({k}), count), k == 1


_LOADS_EVERYTHING = re.compile(rb"from baton\.dagfile import [^\n]*\bload\b|baton\.dagfile\.load\(")


def dag_files_matching(folder: Path, pattern: re.Pattern[bytes], head: int = 64_000) -> list[str]:
    """The names of the folder's ``*.py`` files whose first ``head`` bytes match ``pattern`` (one that cannot be
    read is left out): which DAG files load Baton's DAGs, read without importing them."""
    found = []
    for path in sorted(folder.glob("*.py")):
        try:
            text = path.read_bytes()[:head]
        except OSError:
            continue
        if pattern.search(text):
            found.append(path.name)
    return found


def dagfile_loaders(folder: Path) -> list[str]:
    """The folder's DAG files that load every DAG of it through ``baton.dagfile`` (``baton init``'s
    ``baton_dags.py``): such a folder is not split into shard files (they would define each DAG twice)."""
    return dag_files_matching(folder, _LOADS_EVERYTHING)


def import_timeout() -> float | None:
    """Airflow's ``[core] dagbag_import_timeout`` in seconds; None when imports have none (0 or less)."""
    from airflow.configuration import conf  # deferred: read only by a parse under the import timer

    try:
        seconds = conf.getfloat("core", "dagbag_import_timeout")
    except Exception:  # unreadable: Airflow's own default is what its parse would fail on
        seconds = DEFAULT_IMPORT_TIMEOUT
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def shards_needed(seconds_each: float, templates: int, timeout: float) -> int:
    """The shard count at which each file's templates take at most ``ROOM_SHARE`` of ``timeout``, with
    ``IMBALANCE`` more for the shards a hash fills unevenly."""
    return max(1, math.ceil(IMBALANCE * seconds_each * templates / (ROOM_SHARE * timeout)))


class DeadlineWarning(UserWarning):
    """A DAG file's parse stopped compiling templates before Airflow's import timeout (among its import
    warnings in the UI)."""


@dataclass
class Deadline:
    """When a full parse stops compiling: once the import of the DAG file has used ``DEADLINE_SHARE`` of
    ``[core] dagbag_import_timeout``. Only under Airflow's import timer (the SIGALRM timer its DagBag sets
    around each file's import): its time left says how much the imports before Baton's took, and a call
    without it (the templates page, a test, ``baton``) is never cut short."""

    at: float  # time.monotonic() of the deadline
    started: float
    timeout: float

    @classmethod
    def now(cls) -> Deadline | None:
        try:
            left = signal.getitimer(signal.ITIMER_REAL)[0]
        except (AttributeError, OSError, ValueError):  # no such timer here (Windows)
            return None
        if left <= 0:
            return None
        timeout = max(import_timeout() or 0.0, left)  # a cluster policy may give this file more
        started = time.monotonic()
        return cls(started + left - (1 - DEADLINE_SHARE) * timeout, started, timeout)

    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def stop(
        self, left_out: list[Path], done: int, in_folder: int, dag_file: str | None, folder: Path
    ) -> None:
        """Say that ``left_out`` will not load (``done`` templates did), and the fix: ``baton shard N`` for a
        loader file of ``load_dags`` (``dag_file``), a longer timeout for another caller."""
        seconds = time.monotonic() - self.started
        each = seconds / done
        shards = shards_needed(each, in_folder, self.timeout)
        longer = f"raise [core] dagbag_import_timeout to {math.ceil(each * in_folder / ROOM_SHARE)} s"
        if dag_file is None:
            fix = longer
        elif shards <= MAX_SHARDS:
            fix = f"run `baton shard {max(2, shards)}` (each file then holds what fits with room to spare)"
        else:
            per_file = math.ceil(each * in_folder / MAX_SHARDS / ROOM_SHARE)
            fix = f"run `baton shard {MAX_SHARDS}` and raise [core] dagbag_import_timeout to {per_file} s"
        message = (
            f"{dag_file or f'The DAG file of {folder}'}: {len(left_out)} of {done + len(left_out)} template(s) "
            f"left out, from {left_out[0].name} on (in file-name order): the parse had used "
            f"{DEADLINE_SHARE:.0%} of [core] dagbag_import_timeout ({self.timeout:g} s) after {done} "
            f"template(s) in {seconds:.1f} s ({each * 1000:.0f} ms each), and stopped so that their DAGs load "
            f"rather than none; fix: {fix}"
        )
        log.error("%s", message)
        warnings.warn(message, DeadlineWarning, stacklevel=2)
