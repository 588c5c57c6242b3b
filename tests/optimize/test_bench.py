"""The two simulation benchmarks run, tiny, as the suite's smoke test: they cannot rot unnoticed."""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.bench.test_smoke import load_bench

routing = load_bench("routing")  # bench/routing.py imports bench/harness.py as a top-level module
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


def test_the_routing_bench_interval_is_of_the_ratio_of_sums_and_needs_ten_runs():
    rng = np.random.default_rng(3)
    robin = rng.uniform(240, 260, 40)
    learned = 0.1 * robin + rng.normal(0, 3, 40)
    low, high = routing.interval(learned, robin)
    assert low < learned.sum() / robin.sum() < high
    assert 0.08 < low < high < 0.12 and high - low > 0.002  # an interval, not a point
    assert routing.interval(learned[:9], robin[:9]) is None  # too few runs to resample


def test_a_routing_run_in_a_worker_process_is_the_run_in_this_one():
    expected = routing.expected_rewards(100)
    here = routing.one_run(1000, 100, expected)
    with ProcessPoolExecutor(1) as pool:
        there = pool.submit(routing.one_run, 1000, 100, expected).result()
    assert [r.regret for r in here] == [r.regret for r in there]
    assert [r.calls for r in here] == [r.calls for r in there]
    assert here[0].regret != here[2].regret  # round-robin and learned differ: each policy ran


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--jobs", "0"], "argument --jobs: 0 is not between 1 and 64"),
        (["--jobs", "1000000"], "argument --jobs: 1000000 is not between 1 and 64"),  # a process each
        (["--runs", "-1"], "argument --runs: -1 is not between 1 and 10000"),
        (["--steps", str(10**12)], f"argument --steps: {10**12} is not between 100 and 100000"),
        (["--seed", "-5"], "argument --seed: -5 is not between 0 and 4611686018427387904"),
        (["--runs", "1" * 5000], "argument --runs: a number of 5,000 digits is not between 1 and 10000"),
        (["--scale", "5"], "argument --scale: 5.0 is not above 0 and at most 1 (it only shrinks a run)"),
        (["--scale", "nan"], "argument --scale: nan is not above 0 and at most 1"),
        (["--scale", "-0.5"], "argument --scale: -0.5 is not above 0 and at most 1"),
    ],
)
def test_the_routing_bench_refuses_what_it_cannot_run_before_it_starts(argv, error, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["routing.py", *argv])
    with pytest.raises(SystemExit) as exited:
        routing.main()
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""  # nothing ran
    assert f"routing.py: error: {error}" in err, err
