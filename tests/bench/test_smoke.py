"""Tiny runs of the benchmarks, so that none can stop working unseen: each must exit 0 and end with its
headline (no timing is asserted). Here the ones that need no running Airflow; test_smoke_airflow.py and
test_smoke_services.py run the ones that start an Airflow of their own (a file each pair, so that the
two test workers share them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SMOKE = {
    "parse": (
        ["--workflows", "3", "--rounds", "1"],
        r"ratio generated/handwritten, cold: \d+\.\d\d \(goal <= 1\.3\)",
    ),
    "events": (
        [
            "--events",
            "40",
            "--batch",
            "10",
            "--reps",
            "1",
            "--replay-events",
            "400",
            "--replay-steps",
            "20",
        ],
        r"replay/read: +read \d+\.\d\d s, ratio \d+\.\d .*",
    ),
}


@pytest.mark.parametrize("bench", sorted(SMOKE))
def test_a_tiny_run_ends_with_its_headline(bench, tmp_path):
    args, headline = SMOKE[bench]
    tiny_run(bench, args, headline, tmp_path)


def tiny_run(bench: str, args: list[str], headline: str, tmp_path) -> str:
    """Run ``bench/<bench>.py args``: it exits 0 and its last line matches ``headline``; that line."""
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow")}
    done = subprocess.run(
        [sys.executable, f"bench/{bench}.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(headline, last), last
    return last
