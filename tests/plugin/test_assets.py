"""Where the pages' ECharts comes from: an installed Baton's wheel (``ui/vendor``, copied from the npm lock
at build time by setup.py) or a checkout's ``npm ci`` (``ui/node_modules``); either must be the version the
lock pins, or the pages refuse to load and say how to mend it."""

from __future__ import annotations

import json
import shutil

import pytest

from baton.plugin import pages
from tests.conftest import ROOT

LOCK = ROOT / "include" / "baton" / "plugin" / "ui" / "package-lock.json"
PINNED = json.loads(LOCK.read_text())["packages"]["node_modules/echarts"]["version"]


@pytest.fixture
def ui(tmp_path, monkeypatch):
    shutil.copy(LOCK, tmp_path / "package-lock.json")
    monkeypatch.setattr(pages, "UI", tmp_path)
    pages._echarts.cache_clear()
    yield tmp_path
    pages._echarts.cache_clear()


def _vendor(ui, version: str, script: bool = True) -> None:
    (ui / "vendor").mkdir()
    (ui / "vendor" / "echarts.json").write_text(json.dumps({"echarts": {"version": version}}))
    if script:
        (ui / "vendor" / "echarts.min.js").write_text("/* echarts */")


def test_the_wheels_vendored_echarts_is_served(ui):
    _vendor(ui, PINNED)
    assert pages._echarts() == (ui / "vendor" / "echarts.min.js", PINNED)


def test_a_vendored_echarts_of_another_version_is_refused_with_the_fix(ui):
    _vendor(ui, "5.0.0")
    assert pages._echarts() == (
        None,
        f"ECharts 5.0.0 is installed but the lock pins {PINNED}: "
        "reinstall Baton: its wheel's ECharts is not the one its lock pins",
    )


def test_a_vendored_record_without_its_script_is_refused(ui):
    _vendor(ui, PINNED, script=False)
    assert pages._echarts() == (
        None,
        f"ECharts {PINNED} has no echarts.min.js: reinstall Baton: its wheel's ECharts is not the one its lock pins",
    )


def test_a_checkout_without_npm_ci_says_how_to_mend_it(ui):
    assert pages._echarts() == (
        None,
        "ECharts is not installed: run scripts/install.sh (it runs npm ci in include/baton/plugin/ui)",
    )


def test_a_checkouts_npm_install_is_served(ui):
    package = ui / "node_modules" / "echarts"
    (package / "dist").mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"version": PINNED}))
    (package / "dist" / "echarts.min.js").write_text("/* echarts */")
    assert pages._echarts() == (package / "dist" / "echarts.min.js", PINNED)
