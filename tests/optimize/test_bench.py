"""The two simulation benchmarks run, tiny, as the suite's smoke test: they cannot rot unnoticed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("bench", "last_line"),
    [
        ("bench/routing.py", r"regret vs round-robin \d+ %"),
        (
            "bench/variants.py",
            r"false positives under peeking \d+\.\d % \(declared 5 %\), median runs to a decision \d+",
        ),
    ],
)
def test_a_tiny_run_of_the_bench_exits_0_and_prints_its_headline_last(bench, last_line):
    done = subprocess.run(
        [sys.executable, bench, "--scale", "0.02"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.fullmatch(last_line, done.stdout.strip().splitlines()[-1]), done.stdout
