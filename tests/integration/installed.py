"""Baton as a user installs it: its wheel built from this checkout's package sources, installed into a fresh
virtual environment with Airflow from the lock, and nothing of this repository on that environment's path.

``build_wheel`` builds from a copy of what the wheel is built of (pyproject.toml, setup.py, include/baton),
so the checkout gets no build folders; the npm install the build copies ECharts from is the checkout's
(``npm ci`` ran in scripts/install.sh). ``fresh_venv`` makes the environment with uv from its cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT

UV = Path(sys.executable).with_name("uv")
UI = Path("include") / "baton" / "plugin" / "ui"


def _run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, (
        f"{' '.join(map(str, args))} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    )
    return done.stdout


def build_wheel(work: Path) -> Path:
    """Baton's wheel, built as `uv build --wheel` builds it, from a copy of its sources in ``work``."""
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py"):
        shutil.copy(ROOT / name, source / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules", "*.egg-info", "build")
    shutil.copytree(ROOT / "include" / "baton", source / "include" / "baton", ignore=skip)
    (source / UI / "node_modules").symlink_to(ROOT / UI / "node_modules")
    out = work / "dist"
    _run(UV, "build", "--quiet", "--wheel", "--out-dir", out, source)
    (wheel,) = out.glob("baton-*.whl")
    return wheel


def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def fresh_venv(where: Path, *wheels: Path) -> Path:
    """A new virtual environment with the lock (Airflow and what Baton needs) and ``wheels``; its python."""
    _run(UV, "venv", "--quiet", where, "--python", sys.executable)
    python = where / "bin" / "python"
    _run(UV, "pip", "sync", "--quiet", "--python", python, ROOT / "requirements.txt")
    _run(UV, "pip", "install", "--quiet", "--no-deps", "--python", python, *wheels)
    return python


def clean_env(python: Path, **settings: str) -> dict[str, str]:
    """An environment for ``python``'s programs with nothing of this checkout in it: its bin first on PATH,
    no PYTHONPATH, no virtual environment or Airflow setting of the test process."""
    keep = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER")}
    return {**keep, "PATH": f"{python.parent}:/usr/local/bin:/usr/bin:/bin", **settings}


def import_paths(python: Path, cwd: Path) -> dict:
    """Where the environment's Python finds baton and airflow, what is on its path, and where it finds the
    names of this repository's top-level modules, if anywhere."""
    script = (
        "import importlib.util, json, sys, baton, airflow;"
        "found = {m: importlib.util.find_spec(m) for m in ('demo', 'devtools', 'tests', 'dags', 'bench')};"
        "print(json.dumps({'path': sys.path, 'baton': baton.__file__, 'airflow': airflow.__file__,"
        "'repo_modules': {m: list(s.submodule_search_locations or [s.origin]) for m, s in found.items() if s}}))"
    )
    return json.loads(_run(python, "-c", script, cwd=cwd, env=clean_env(python)))
