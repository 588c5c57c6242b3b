"""The import contracts of include/baton (pyproject.toml) hold: the layers, no cycle between the siblings of
coordination, events, ops and spec, no Airflow under spec and plan, FastAPI only in the plugin. A module
that breaks one breaks the suite: shown by planting each kind in a copy of the package."""

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


CONTRACTS = [
    "Baton's layers: each imports only the layers below it",
    "No import cycle between the siblings of coordination, events, ops and spec",
    "The template language and the plan never import Airflow",
    "Only the plugin imports FastAPI",
]


def test_the_package_keeps_its_contracts():
    done = _lint(ROOT / "include")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    for contract in CONTRACTS:
        assert f"{contract} KEPT" in done.stdout, done.stdout[-3000:]


def _planted(tmp_path: Path, module: str, code: str) -> subprocess.CompletedProcess:
    """Lints a copy of the package in which `code` is appended to `module` (a path under baton/)."""
    shutil.copytree(
        ROOT / "include" / "baton", tmp_path / "baton", ignore=shutil.ignore_patterns("__pycache__")
    )
    target = tmp_path / "baton" / module
    target.write_text(target.read_text() + code)
    return _lint(tmp_path)


def test_an_upward_import_breaks_the_contract(tmp_path):
    done = _planted(
        tmp_path, "events/store.py", "\n\ndef _planted():\n    from baton.compile import build  # noqa\n"
    )
    assert done.returncode == 1, done.stdout[-3000:]
    assert "Baton's layers: each imports only the layers below it BROKEN" in done.stdout
    assert "baton.events is not allowed to import baton.compile" in done.stdout
    assert "- baton.events.store -> baton.compile.build" in done.stdout


def test_a_sibling_cycle_breaks_the_contract(tmp_path):
    # spec.models is read by spec.loading; a function-level import back from models closes a loop
    done = _planted(
        tmp_path, "spec/models.py", "\n\ndef _planted():\n    from baton.spec import loading  # noqa\n"
    )
    assert done.returncode == 1, done.stdout[-3000:]
    assert "No import cycle between the siblings of coordination, events, ops and spec BROKEN" in done.stdout
    assert "No cycles are allowed in baton.spec." in done.stdout
    assert "The template language and the plan never import Airflow KEPT" in done.stdout


def test_airflow_under_spec_breaks_the_contract(tmp_path):
    done = _planted(tmp_path, "spec/common.py", "\n\ndef _planted():\n    import airflow  # noqa\n")
    assert done.returncode == 1, done.stdout[-3000:]
    assert "The template language and the plan never import Airflow BROKEN" in done.stdout
    assert "baton.spec is not allowed to import airflow:" in done.stdout
    assert "baton.spec.common -> airflow" in done.stdout
