"""Baton's build step beyond pyproject.toml: the pages' browser library goes into the wheel.

The Coordination and Management pages draw with ECharts. Its version is pinned by the npm lock
(include/baton/plugin/ui/package-lock.json); at build time ``npm ci`` installs exactly that (npm checks
each package against the lock's integrity hash) unless it is installed already at that version, and the
one file the pages load, ``echarts.min.js`` (ECharts with zrender and tslib bundled in), is copied into the
wheel at ``baton/plugin/ui/vendor/`` with the licenses and notices of all three and the lock's record of
them (``vendor/echarts.json``: version, integrity). The wheel is then the whole product: an installed Baton
serves its pages with no npm and no checkout. A build without npm, or whose npm cannot install the lock,
fails and says so: a wheel without the pages' library would install and then show broken pages.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

UI = Path(__file__).resolve().parent / "include" / "baton" / "plugin" / "ui"
BUNDLED = ("echarts", "zrender", "tslib")  # what echarts.min.js contains
NOTICES = ("LICENSE", "LICENCE", "NOTICE", "CopyrightNotice")  # file stems copied beside it


def _installed(name: str) -> str | None:
    package = UI / "node_modules" / name / "package.json"
    return json.loads(package.read_text()).get("version") if package.is_file() else None


def vendor_echarts(out: Path) -> None:
    """Copy the lock's ECharts (and its bundled libraries' licenses) into ``out``, installing it first."""
    lock = json.loads((UI / "package-lock.json").read_text())["packages"]
    pinned = {name: lock[f"node_modules/{name}"] for name in BUNDLED}
    if any(_installed(name) != pinned[name]["version"] for name in BUNDLED):
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("building Baton needs npm, to install the pages' ECharts from the lock")
        subprocess.run(
            [npm, "ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"], cwd=UI, check=True
        )
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(UI / "node_modules/echarts/dist/echarts.min.js", out / "echarts.min.js")
    for name in BUNDLED:
        notices = [p for p in (UI / "node_modules" / name).iterdir() if p.stem in NOTICES and p.is_file()]
        if not any(p.stem in ("LICENSE", "LICENCE") for p in notices):
            raise SystemExit(f"node_modules/{name} has no LICENSE file: the wheel must carry its license")
        for source in notices:
            shutil.copyfile(source, out / f"{source.stem}.{name}")
    record = {name: {k: pinned[name][k] for k in ("version", "integrity", "license")} for name in BUNDLED}
    (out / "echarts.json").write_text(json.dumps(record, indent=2) + "\n")


class BuildWithEcharts(build_py):
    def run(self) -> None:
        super().run()
        vendor_echarts(Path(self.build_lib) / "baton" / "plugin" / "ui" / "vendor")


setup(cmdclass={"build_py": BuildWithEcharts})
