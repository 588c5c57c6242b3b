"""The validation cache: what checking a template found, on disk, keyed by everything it depends on.

The DAG processor parses each DAG file in a fresh process every ``min_file_process_interval``; both
of Baton's DAG files read every template. Reading YAML, validating and parsing the Jinja of an
unchanged template gives the same answer every time, so it is kept under ``$AIRFLOW_HOME/baton/
spec-cache`` (or ``BATON_SPEC_CACHE``; ``off`` disables it) and reused. The key hashes the template's
bytes and path, the roster's bytes, Baton's own source files (path, size and modification time, as
Python's bytecode cache does) and the versions of the libraries that validate, so any change to one
of them is a miss. A cache that cannot be written is no cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from functools import cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parents[1]
MAX_ENTRIES = 5000


@cache
def code_fingerprint() -> bytes:
    """Baton's own source files and the versions of the libraries its validation depends on."""
    import croniter
    import jinja2
    import jsonschema
    import pydantic
    import yaml

    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):  # as Python's own bytecode cache: path, size, mtime
        stat = path.stat()
        digest.update(f"{path.relative_to(PACKAGE)}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    for module in (pydantic, jinja2, yaml, croniter, jsonschema):
        digest.update(
            f"{module.__name__}={getattr(module, '__version__', getattr(module, 'VERSION', ''))}".encode()
        )
    return digest.digest()


def default_folder() -> Path | None:
    setting = os.environ.get("BATON_SPEC_CACHE", "")
    if setting.lower() in ("off", "0", "false", "no"):
        return None
    if setting:
        return Path(setting)
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow") / "baton" / "spec-cache"


class SpecCache:
    """Validation results by key; ``folder=None`` caches nothing."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.hits = 0
        self.misses = 0
        self.made = False  # the folder exists

    def key(self, name: str, template: bytes, roster: bytes) -> str:
        digest = hashlib.sha256(code_fingerprint())
        for part in (name.encode(), roster, template):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        return digest.hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        if self.folder is None:
            return None
        try:
            value = json.loads((self.folder / f"{key}.json").read_bytes())
        except (OSError, ValueError):
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Write atomically (a parse in another process may read it at the same moment)."""
        if self.folder is None:
            return
        try:
            if not self.made:
                self.folder.mkdir(parents=True, exist_ok=True)
                self.made = True
            tmp = self.folder / f"{key}.{os.getpid()}.{threading.get_ident()}.tmp"  # this writer's own
            tmp.write_text(json.dumps(value), encoding="utf-8")  # json.dump: the pure-Python encoder
            os.replace(tmp, self.folder / f"{key}.json")
            if self.misses and self.misses % 100 == 0:
                self._prune()
        except OSError as error:
            log.info(
                "Baton's spec cache %s is not writable (%s); templates are checked on every parse",
                self.folder,
                error,
            )
            self.folder = None

    def forget(self, key: str) -> None:
        if self.folder is not None and key:
            (self.folder / f"{key}.json").unlink(missing_ok=True)

    def _prune(self) -> None:
        entries = sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for stale in entries[: max(0, len(entries) - MAX_ENTRIES)]:
            stale.unlink(missing_ok=True)
