"""tests/ci_skips.py: a skip fails the run under CI=true, and stays a skip elsewhere (a real pytest run of a
file that skips, in a subprocess, with and without CI=true)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

SKIPPING = """
import pytest

def test_needs_a_binary():
    pytest.skip("no 'frobnicate' on PATH")

@pytest.fixture
def service():
    pytest.skip("the service is down")

def test_needs_a_service(service):
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_known_to_fail():
    assert False

def test_passes():
    pass
"""


def _run(tmp_path, ci: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.ci_skips", "-p", "no:cacheprovider", "-q", "-rA",
         "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path / "test_skipping.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_under_ci_a_skip_fails_with_its_reason(tmp_path):
    done = _run(tmp_path, "true")
    assert done.returncode == 1, done.stdout
    assert "skipped under CI=true, where a skip is a failure: Skipped: no 'frobnicate' on PATH" in done.stdout
    assert "skipped under CI=true, where a skip is a failure: Skipped: the service is down" in done.stdout
    assert (
        "1 failed, 1 passed, 1 xfailed, 1 error" in done.stdout
    )  # the fixture's skip: an error of its setup


def test_elsewhere_a_skip_is_a_skip(tmp_path):
    done = _run(tmp_path, None)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 2 skipped, 1 xfailed" in done.stdout
