"""Code outside Baton that Baton loads by name: modules that register skills, output models and hooks.

A team's own skills live in its repository, not in Baton. Baton finds their modules the two ways Airflow
finds providers and a deployment names its plugins:

- the entry points of installed distributions in the group ``baton.extensions`` (a package's
  ``pyproject.toml``: ``[project.entry-points."baton.extensions"] acme = "acme_skills"``), and
- ``BATON_EXTENSIONS``: comma-separated module names importable in every Airflow process
  (e.g. ``include.acme_skills`` with the dags repository on ``PYTHONPATH``).

Importing a module is what registers its skills (``@skill``), output models (``@output_model``) and hooks,
explicitly, in its own code: a template can only name what is registered, and nothing a template says
is ever imported. One module that fails to import is reported (``baton validate`` lists it) and does not
keep the others, or Baton's own skills, from loading.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "baton.extensions"
ENV = "BATON_EXTENSIONS"
PRELOAD_TIMEOUT_S = 60.0  # what one extension's import may take where the task processes are forked from


@dataclass(frozen=True)
class LoadError:
    """An extension module that could not be imported: where it was named, and why."""

    module: str
    source: str  # "BATON_EXTENSIONS" or "entry point <name> of <distribution>"
    error: str

    def __str__(self) -> str:
        return (
            f"extension module '{self.module}' ({self.source}) failed to import: {self.error} (fix: make it "
            f"importable in every Airflow process, or remove it from {self.source.split(' of ')[0]})"
        )


_lock = threading.RLock()  # an extension may look a skill up while it is imported
_loaded: dict[str, LoadError | None] | None = None


def named() -> list[tuple[str, str]]:
    """(module, where it was named) of every extension, entry points first, each module once."""
    found: dict[str, str] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        dist = point.dist.name if point.dist is not None else "an installed distribution"
        found.setdefault(point.module, f"entry point {point.name} of {dist}")
    for module in os.environ.get(ENV, "").split(","):
        if module.strip():
            found.setdefault(module.strip(), ENV)
    return list(found.items())


def load(timeout_s: float | None = None) -> list[LoadError]:
    """Import every extension module once per process; the ones that failed (logged, never raised).

    :param timeout_s: what each import may take (the main thread only, by ``SIGALRM``); None: no bound.
    """
    global _loaded
    with _lock:
        if _loaded is None:
            _loaded = {}
            for module, source in named():
                try:
                    with _bounded(timeout_s):
                        importlib.import_module(module)
                    _loaded[module] = None
                except (Exception, SystemExit) as error:  # one broken extension must not hide the others
                    _loaded[module] = LoadError(module, source, f"{type(error).__name__}: {error}"[:500])
                    log.error("%s", _loaded[module])
        return [error for error in _loaded.values() if error is not None]


def preload(timeout_s: float = PRELOAD_TIMEOUT_S) -> list[LoadError]:
    """Import the extensions in a process that the task processes are forked from (``baton.preload``), so
    that each of them has them already: every Baton task reads the roster as it parses its DAG, and the
    roster's skills are the extensions' (the demo's took ~45 ms of each task, the entry points' scan ~10).

    Each import may take ``timeout_s``; an import that fails, exits or takes longer is logged, and then
    nothing is kept as loaded: each forked process tries again itself, as it did before (what did import
    stays imported). Like an Airflow plugin, which the same process loads, an extension must not leave a
    thread or a connection open when it is imported. Off the main thread (where no ``SIGALRM`` can bound
    it), or while another timer is armed (which the bound would cancel), it imports nothing."""
    if threading.current_thread() is not threading.main_thread() or signal.getitimer(signal.ITIMER_REAL)[0]:
        return []
    errors = load(timeout_s)
    if errors:
        reset()
    return errors


@contextmanager
def _bounded(timeout_s: float | None) -> Iterator[None]:
    """Raise TimeoutError in this (the main) thread if the block takes over ``timeout_s``."""
    if timeout_s is None:
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"importing it took over {timeout_s:g} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def reset() -> None:
    """Forget what was loaded (a test that changes ``BATON_EXTENSIONS``); modules stay imported."""
    global _loaded
    with _lock:
        _loaded = None
