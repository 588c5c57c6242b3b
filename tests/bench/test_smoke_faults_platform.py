"""A tiny run of bench/faults_platform.py, run as its docstring says, only smaller (10 runs, a 5 s outage, faults
20 s apart): on the Celery topology with a PostgreSQL and a Redis of its own, every platform fault carried
out; it exits 0 and ends with its headline (no figure asserted but what the run itself must hold: nothing
lost or applied twice, every platform fault seen by the monitor, the budgets' ledger whole); and its
refusals."""

from __future__ import annotations

import json
import re

import pytest

from tests.bench.test_smoke import refuses, tiny_run

HEADLINE = (
    r"completion rate: \d+\.\d\d % \(target 99\.95 %\); lost events (\d+); duplicated effects (\d+); "
    r"uncompensated failures (\d+); platform faults detected (\d+) of 5"
)


@pytest.mark.timeout(2000)  # the topology's start, five faults 20 s apart, the monitor's quiet time: 8-12 min
def test_a_tiny_platform_campaign_loses_nothing_and_the_monitor_sees_each_fault(tmp_path):
    results = tmp_path / "results.json"
    args = ["--runs", "10", "--down", "5", "--gap", "20", "--timeout", "900", "--results", str(results)]
    last = tiny_run(
        "faults_platform", args, HEADLINE, tmp_path, drop=("BATON_EXTENSIONS", "BATON_FAULTS"), timeout=1900
    )
    lost, duplicated, uncompensated, detected = map(int, re.fullmatch(HEADLINE, last).groups())
    out = json.loads(results.read_text(encoding="utf-8"))
    # what went wrong, when something did: the failed runs, what the monitor saw of each fault, the restarts
    why = {k: out.get(k) for k in ("failed_runs", "detection", "restarts", "platform_incidents")}
    assert (lost, duplicated, uncompensated, detected) == (0, 0, 0, 5), (
        f"{last}\n{json.dumps(why, default=str)[:6000]}"
    )
    budgets, succeeded = out["budgets"], out["runs"]["succeeded"]
    # a run that succeeded had its two LLM steps reach the model, each settling what it reserved
    assert succeeded > 0 and budgets["settlements"] >= 2 * succeeded and budgets["tokens"] > 0, budgets
    assert (budgets["over"], budgets["held"], budgets["disagree"]) == ([], 0, []), budgets


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runs", "9"], "argument --runs: 9 is not between 10 and 10000"),
        (
            ["--runs", "1" + "0" * 5000],
            "argument --runs: a number of 5,001 digits is not between 10 and 10000",
        ),
        (["--timeout", "nan"], "argument --timeout"),
        (["--down", "0"], "argument --down: 0.0 is not between 1 and 600 s"),
    ],
)
def test_what_the_platform_campaign_refuses(args, message):
    refuses("faults_platform", args, message)
