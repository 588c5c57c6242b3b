"""A tiny run of bench/model.py (the local model, installed by ``make test`` as by ``make run MODEL=local``), run
as its docstring says, only smaller: it exits 0, calls each step it found, and ends with its headline (no timing
or share is asserted: the model's answers are its own); and its refusals."""

from __future__ import annotations

import re

import pytest

from tests.bench.test_smoke import refuses, tiny_run

HEADLINE = r"schema-valid first try (\d+) %, after re-ask (\d+) %; p50 \d+\.\d s, p95 \d+\.\d s per call; \d+ tokens/s"


def test_a_tiny_run_of_the_model_benchmark_ends_with_its_headline(tmp_path):
    last = tiny_run("model", ["--calls", "2"], HEADLINE, tmp_path)
    first, after = map(int, re.fullmatch(HEADLINE, last).groups())
    assert 0 <= first <= after <= 100 and after in (0, 50, 100), last  # two calls: each fit or not


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--calls", "0"], "argument --calls: 0 is not between 1 and 1000"),
        (["--calls", "9" * 40], f"argument --calls: {'9' * 40} is not between 1 and 1000"),
        (["--threads", "x"], "argument --threads"),
    ],
)
def test_what_the_model_benchmark_refuses(args, message):
    refuses("model", args, message)
