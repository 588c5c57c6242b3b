"""The benchmarks' shared argument types (bench/cli_types.py), and each benchmark refusing what it cannot run
before it starts: exit 2, argparse's message naming the argument, nothing printed on stdout. (bench/routing.py's
cases are in tests/optimize/test_bench.py; the --runs of the Airflow ones and --attach in test_attach.py.)"""

from __future__ import annotations

import argparse
import sys

import pytest

from tests.bench.test_smoke import load_bench

load_bench("latency")  # bench/cli_types.py and bench/harness.py, as the modules the benchmarks import
cli_types = sys.modules["cli_types"]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("0", "0.0 is not above 0 and at most 1 (it only shrinks a run)"),
        ("-0", "-0.0 is not above 0 and at most 1 (it only shrinks a run)"),
        ("1.5", "1.5 is not above 0 and at most 1 (it only shrinks a run)"),
        ("nan", "nan is not above 0 and at most 1 (it only shrinks a run)"),
        ("inf", "inf is not above 0 and at most 1 (it only shrinks a run)"),
        ("1e309", "inf is not above 0 and at most 1 (it only shrinks a run)"),  # more than a double holds
        ("half", "'half' is not a number"),
        ("9" * 5000, "inf is not above 0 and at most 1 (it only shrinks a run)"),
        ("x" * 5000, f"'{'x' * 50}' is not a number"),  # the message stays short
    ],
)
def test_a_fraction_is_above_0_and_at_most_its_limit(value, error):
    parse = cli_types.fraction(1.0, "it only shrinks a run")
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        parse(value)
    assert str(refused.value) == error


def test_values_in_range_are_taken_as_given_and_a_whole_number_out_of_it_or_too_long_is_named():
    assert cli_types.fraction(1.0)("1") == 1.0 and cli_types.fraction(1000.0)("1e-300") == 1e-300
    assert cli_types.fraction(1000.0)("1000") == 1000.0
    assert cli_types.bounded_int(0, cli_types.SEED_MAX)(str(2**62)) == 2**62
    seed = cli_types.bounded_int(0, cli_types.SEED_MAX)
    for value, error in [
        ("-1", "-1 is not between 0 and 4611686018427387904"),
        ("-" + "7" * 4301, "a number of 4,301 digits is not between 0 and 4611686018427387904"),
        ("\u00b2", "'\u00b2' is not a whole number"),  # a digit to str.isdigit(), not to int()
        ("1.5", "'1.5' is not a whole number"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError) as refused:
            seed(value)
        assert str(refused.value) == error


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("0.4", "0.4 is not between 0.5 and 30 minutes"),
        ("30.0001", "30.0001 is not between 0.5 and 30 minutes"),
        ("nan", "nan is not between 0.5 and 30 minutes"),
        ("-inf", "-inf is not between 0.5 and 30 minutes"),
        ("9" * 5000, "inf is not between 0.5 and 30 minutes"),
        ("five", "'five' is not a number"),
        ("x" * 100_000, f"'{'x' * 50}' is not a number"),
    ],
)
def test_a_bounded_number_is_within_its_limits_and_names_its_unit(value, error):
    parse = cli_types.bounded_float(0.5, 30, " minutes")
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        parse(value)
    assert str(refused.value) == error


def test_a_subset_is_names_of_its_choices_each_once_in_the_order_given():
    only = cli_types.subset(("error", "slow", "cost"))
    assert only("slow,error") == ["slow", "error"] and only("cost") == ["cost"]
    for value, error in [
        ("", "'' is not one of error, slow, cost"),
        ("error,", "'' is not one of error, slow, cost"),
        ("Error", "'Error' is not one of error, slow, cost"),
        ("error,slow,error", "error is named more than once"),
        ("x" * 10_000 + ",y,z", f"'{'x' * 50}' is not one of error, slow, cost (and 2 more that are not)"),
        ("," * 1_000_000, "'' is not one of error, slow, cost (and 1,000,000 more that are not)"),
        ("slow," * 200_000, "'' is not one of error, slow, cost"),  # after the last comma: unknown
        (",".join(["error"] * 200_000), "error is named more than once"),  # found at once, not in O(n^2)
    ]:
        with pytest.raises(argparse.ArgumentTypeError) as refused:
            only(value)
        assert str(refused.value) == error


CASES = {
    "variants": [
        (["--scale", "nan"], "argument --scale: nan is not above 0 and at most 1 (it only shrinks a run)"),
        (["--scale", "0"], "argument --scale: 0.0 is not above 0 and at most 1"),  # was a headline of nothing
        (["--scale", "5"], "argument --scale: 5.0 is not above 0 and at most 1"),
        (["--seed", "-1"], "argument --seed: -1 is not between 0 and 4611686018427387904"),
        (["--experiments", str(10**12)], f"argument --experiments: {10**12} is not between 2 and 100000"),
        (["--days", "0"], "argument --days: 0 is not between 1 and 3650"),
        (["--runs-per-day", "-5"], "argument --runs-per-day: -5 is not between 1 and 100000"),
    ],
    "hostile": [
        (
            ["--scale", "nan"],
            "argument --scale: nan is not above 0 and at most 1 (it only shrinks the cases)",
        ),
        (["--scale", "-1"], "argument --scale: -1.0 is not above 0 and at most 1"),
    ],
    "capacity": [
        (["--scale", "inf"], "argument --scale: inf is not above 0 and at most 1000"),
        (["--scale", "0"], "argument --scale: 0.0 is not above 0 and at most 1000"),
        (["--weeks", "1"], "argument --weeks: 1 is not between 2 and 520"),
        (["--weeks", "9" * 5000], "argument --weeks: a number of 5,000 digits is not between 2 and 520"),
        (["--seed", "-3"], "argument --seed: -3 is not between 0 and 4611686018427387904"),
    ],
    "detectors_sim": [
        (["--scale", "2"], "argument --scale: 2.0 is not above 0 and at most 1"),
        (["--scale", "nan"], "argument --scale: nan is not above 0 and at most 1"),
        (["--every", "0"], "argument --every: 0 is not between 1 and 60"),
        (["--seed", "-1"], "argument --seed: -1 is not between 0 and 4611686018427387904"),
    ],
    # the Airflow benchmarks: refused before a database or an Airflow is made (these ran one, or a campaign
    # of nothing, or waited forever: --timeout nan)
    "incidents": [
        (["--warmup", "0"], "argument --warmup: 0.0 is not between 0.5 and 30 minutes"),
        (["--fault", "nan"], "argument --fault: nan is not between 0.5 and 30 minutes"),
        (["--tail", "1e400"], "argument --tail: inf is not between 0.5 and 30 minutes"),
        (["--stagger", "-1"], "argument --stagger: -1.0 is not between 0 and 10 minutes"),
        (["--period", "1"], "argument --period: 1.0 is not between 2 and 300 s"),
        (["--order-period", "x"], "argument --order-period: 'x' is not a number"),
        (
            ["--only", "error,latency"],
            "argument --only: 'latency' is not one of error, slow, cost, sensor, worker",
        ),
        (["--only", "slow,slow"], "argument --only: slow is named more than once"),
        (
            ["--seed", "9" * 5000],
            "argument --seed: a number of 5,000 digits is not between 0 and 4611686018427387904",
        ),
    ],
    "faults": [
        (["--runs", "0"], "argument --runs: 0 is not between 1 and 10000"),
        (["--timeout", "nan"], "argument --timeout: nan is not between 1 and 604800 s"),
        (["--timeout", "0"], "argument --timeout: 0.0 is not between 1 and 604800 s"),
    ],
    "parse": [
        (["--rounds", "0"], "argument --rounds: 0 is not between 1 and 1000"),
        (["--workflows", "-1"], "argument --workflows: -1 is not between 1 and 10000"),
    ],
    "events": [
        (["--events", "0"], "argument --events: 0 is not between 1 and 10000000"),
        (["--batch", "0"], "argument --batch: 0 is not between 1 and 100000"),
        (["--reps", "1.5"], "argument --reps: '1.5' is not a whole number"),
        (["--replay-events", "99"], "argument --replay-events: 99 is not between 100 and 10000000"),
        (["--replay-steps", str(10**9)], f"argument --replay-steps: {10**9} is not between 1 and 100000"),
    ],
    "dashboard": [(["--seed", "-1"], "argument --seed: -1 is not between 0 and 4611686018427387904")],
}
ARGV_ONLY = {"variants", "faults", "parse", "events", "dashboard"}  # their main() reads sys.argv


@pytest.mark.parametrize(
    ("bench", "argv", "error"),
    [(bench, argv, error) for bench, cases in CASES.items() for argv, error in cases],
)
def test_a_benchmark_refuses_what_it_cannot_run_before_it_starts(bench, argv, error, monkeypatch, capsys):
    main = load_bench(bench).main
    monkeypatch.setattr(sys, "argv", [f"{bench}.py", *argv])
    with pytest.raises(SystemExit) as exited:
        main() if bench in ARGV_ONLY else main(argv)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""  # nothing ran
    assert f"{bench}.py: error: {error}" in err, err
