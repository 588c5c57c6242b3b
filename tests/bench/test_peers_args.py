"""bench/peers.py refuses a bad size before it installs or starts anything, in argparse's words (exit 2)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--templates", "0"], "argument --templates: --templates '0': 0 is not between 1 and 5000"),
        (
            ["--templates", "10,ten"],
            "argument --templates: --templates '10,ten': 'ten' is not a whole number",
        ),
        (["--templates", "10,10"], "argument --templates: give at most 5 different sizes, e.g. 10,100,1000"),
        (
            ["--templates", "1,2,3,4,5,6"],
            "argument --templates: give at most 5 different sizes, e.g. 10,100,1000",
        ),
        (["--templates", "9" * 5000], "argument --templates: --templates '" + "9" * 50),
        (["--calls", "-1"], "argument --calls: -1 is not between 1 and 1000"),
        (["--runs", "1e9"], "argument --runs: '1e9' is not a whole number"),
        (["--warmups", "11"], "argument --warmups: 11 is not between 0 and 10"),
        (["--warmups", "1.5"], "argument --warmups: '1.5' is not a whole number"),
    ],
)
def test_a_bad_size_is_refused_before_anything_runs(args, message):
    done = subprocess.run(
        [sys.executable, "bench/peers.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr, done.stderr
    assert "peers installed" not in done.stdout
