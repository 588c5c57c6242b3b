"""Where a step's files (screenshots, downloads) are kept, and their ``artifact.saved`` payloads.

The root is ``$BATON_ARTIFACTS``, else ``$AIRFLOW_HOME/baton_artifacts``; a try's files go to::

    <root>/<dag_id>/<run_id, filesystem-safe>/<task_id>[.<map_index>]/try-<n>/<name>.<ext>

so a retry never overwrites what an earlier try left, and the recorded path (relative to the root)
says which run, step and try a file belongs to.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def artifacts_root() -> Path:
    """``$BATON_ARTIFACTS``, else ``$AIRFLOW_HOME/baton_artifacts`` (``~/airflow`` when it is not set)."""
    explicit = os.environ.get("BATON_ARTIFACTS")
    if explicit:
        return Path(explicit)
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(home) / "baton_artifacts"


def safe_part(text: str) -> str:
    """``text`` as one path component: every character outside ``A-Za-z0-9._-`` becomes ``_``, and a
    leading dot too (no ``..``, no hidden file)."""
    safe = _UNSAFE.sub("_", str(text))
    return "_" + safe[1:] if safe.startswith(".") else safe or "_"


def task_folder(
    dag_id: str, run_id: str, task_id: str, map_index: int | None = -1, try_number: int = 1
) -> PurePosixPath:
    """The folder of one try of one task, relative to the artifacts root."""
    task = safe_part(task_id) if map_index is None or map_index < 0 else f"{safe_part(task_id)}.{map_index}"
    return PurePosixPath(safe_part(dag_id), safe_part(run_id), task, f"try-{int(try_number)}")


def folder_from_context(context: Any) -> PurePosixPath:
    """:func:`task_folder` of the task instance of an Airflow ``context``."""
    ti = context["ti"]
    return task_folder(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)


@dataclass(frozen=True)
class Artifacts:
    """The files of one try of one step: ``root / folder / <name>.<ext>``."""

    root: Path
    folder: PurePosixPath

    @classmethod
    def for_task(cls, context: Any, root: Path | None = None) -> Artifacts:
        return cls(Path(root) if root else artifacts_root(), folder_from_context(context))

    def path(self, name: str, ext: str) -> Path:
        """The absolute path of the file ``name.ext`` (its folder created)."""
        target = self.root / self.folder / f"{safe_part(name)}.{safe_part(ext)}"
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def relative(self, path: Path) -> str:
        return Path(path).relative_to(self.root).as_posix()

    def saved(self, name: str, kind: str, path: Path, content_type: str = "") -> dict[str, Any]:
        """The ``artifact.saved`` payload of a file written at ``path``: relative path, sha256, size."""
        data = Path(path).read_bytes()
        return {
            "name": name,
            "kind": kind,
            "path": self.relative(path),
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "content_type": content_type or mimetypes.guess_type(str(path))[0] or "application/octet-stream",
        }
