"""The layers of include/baton (pyproject.toml's import-linter contract) hold, and a module that imports
upward breaks the suite: shown by planting one in a copy of the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = [
    sys.executable,
    "-c",
    "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
]


def _lint(package_parent: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [*LINT, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=package_parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_package_keeps_its_layers():
    done = _lint(ROOT / "include")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Baton's layers: each imports only the layers below it KEPT" in done.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    shutil.copytree(
        ROOT / "include" / "baton", tmp_path / "baton", ignore=shutil.ignore_patterns("__pycache__")
    )
    store = tmp_path / "baton" / "events" / "store.py"
    store.write_text(store.read_text() + "\n\ndef _planted():\n    from baton.compile import build  # noqa\n")
    done = _lint(tmp_path)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "Baton's layers: each imports only the layers below it BROKEN" in done.stdout
    assert "baton.events is not allowed to import baton.compile" in done.stdout
    assert "- baton.events.store -> baton.compile.build" in done.stdout
