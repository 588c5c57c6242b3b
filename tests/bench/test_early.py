"""tests/bench/early.py starts its runs with a session that will run their tests, and only then."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_a_session_that_only_collects_starts_no_early_run(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_XDIST_TESTRUNUID"} | {"TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-n", "0",
         "tests/bench/test_smoke_incidents.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "1 test collected" in done.stdout, done.stdout[-2000:]
    assert not list(tmp_path.glob("baton-early-*")), "an early run started for a session that only collects"
