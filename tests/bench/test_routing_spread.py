"""A tiny run of bench/routing_spread.py, so that it cannot stop working unseen (no timing asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import ROOT


def test_the_spread_benchmark_runs_and_ends_with_its_headline(tmp_path):
    # as documented: from a shell without the suite's settings (it needs no extension: its skill is devtools')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "AIRFLOW"))}
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow")
    done = subprocess.run(
        [sys.executable, "bench/routing_spread.py", "--runs", "1", "--items", "6"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert re.fullmatch(r"max share \d+ % \(ideal 33 %\)", lines[-1]), lines[-1]
    assert re.fullmatch(r"before \(rank, then take\): max share \d+%", lines[-2]), lines[-2]
    assert len([line for line in lines if " run  1 " in f" {line}"]) == 2
