"""The budgets in force for a task: those ``dags/budgets.yaml`` declares next to the DAG file it runs from
(the file's models and reading are :mod:`baton.spec.budgets`), re-read when the file changes."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from baton.spec.budgets import FILE, Budget, load_budgets


def budgets_of(dags_folder: Path | None) -> tuple[Budget, ...]:
    """The budgets declared next to the DAG files (none without ``budgets.yaml``), re-read when the
    file changes. A broken file fails every model call with its errors: spend must not go unchecked
    because a limit was mistyped."""
    if dags_folder is None:
        return ()
    path = Path(dags_folder) / FILE
    try:
        stat = path.stat()
    except FileNotFoundError:
        return ()
    return _cached(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _cached(path: str, mtime: int, size: int) -> tuple[Budget, ...]:
    return load_budgets(Path(path), Path(path).parent)


def dags_folder_of(context: object) -> Path | None:
    """The folder of the DAG file a task runs from (its bundle's copy), else ``[core] dags_folder``."""
    dag = context.get("dag") if isinstance(context, dict) else None
    fileloc = getattr(dag, "fileloc", None)
    if fileloc:
        return Path(fileloc).parent
    folder = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER")
    return Path(folder) if folder else None


__all__ = ["budgets_of", "dags_folder_of"]
