"""A tiny run of bench/queue_page.py (two throwaway PostgreSQL databases, no Airflow running), run as its docstring
says, only smaller: it exits 0 and ends with its headline, counting the task instances it made (no timing is
asserted); and its refusals."""

from __future__ import annotations

import re

import pytest

from tests.bench.test_smoke import refuses, tiny_run

HEADLINE = (
    r"queue of (\d+) waiting among ([\d,]+) task instances: p95 \d+ ms \(50 shown\), \d+ ms \(500 shown\); "
    r"\d+\.\d\d x with no history"
)


def test_a_tiny_run_of_the_queue_benchmark_ends_with_its_headline(tmp_path):
    args = ["--runs", "200", "--active", "40", "--tasks", "4", "--calls", "2"]
    last = tiny_run("queue_page", args, HEADLINE, tmp_path, drop=("BATON_EXTENSIONS",))
    waiting, total = re.fullmatch(HEADLINE, last).groups()
    # Baton's DAGs are half of 20 and runs go round them: 20 of the 40 runs in flight are theirs (n % 20 < 10);
    # a fifth of all runs are queued (n % 5 == 0: n = 0, 5, 20, 25 of theirs), their 4 tasks not started, and
    # each of the other 16 has 3 not started (queued, scheduled, after upstream; the 4th runs): 4 * 4 + 16 * 3
    assert (int(waiting), int(total.replace(",", ""))) == (4 * 4 + 16 * 3, 240 * 4), last


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "2"], "argument --tasks: 2 is not between 3 and 50"),
        (["--active", "0"], "argument --active: 0 is not between 1 and 100000"),
        (["--runs", "9" * 40], f"argument --runs: {'9' * 40} is not between 0 and 2000000"),
        (["--calls", "many"], "argument --calls"),
        (
            ["--server", "postgresql://nobody@127.0.0.1:1/x"],
            "--server postgresql://nobody@127.0.0.1:1/x: no throwaway database could be made there",
        ),
    ],
)
def test_what_the_queue_benchmark_refuses(args, message):
    refuses("queue_page", args, message)
