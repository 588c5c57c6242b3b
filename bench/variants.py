"""Benchmark: 1,000 simulated A/B experiments checked every day (issue 20), half with no true difference.

Each experiment is ``baton.optimize.experiments.Experiment`` with its defaults (alpha 5 %, at least 100
runs per variant before any decision, guardrails on failures and latency) over two variants, control and
treatment, weighted 1:1. Every day ``--runs-per-day`` runs (default 100) get their variant from
``experiments.assign`` (the hash of the experiment's name and the run's key), succeed with their
variant's rate, fail (an error) 5 % of the time and take a lognormal time, the same for both variants;
their outcomes are recorded and the experiment is asked for a decision that evening, for up to
``--days`` days (default 60, so at most 6,000 runs).

- In the **null** half both variants succeed 60 % of the time. Any decision on the primary metric there
  is a false positive (promoting the treatment, or declaring the control better); a guardrail stop is a
  false stop.
- In the **lift** half the treatment succeeds 10 % more often (66 %): what matters is how often, and
  after how many runs, it is promoted.

The same run also looks at the same data the way people do without a sequential rule: a fixed-sample
two-proportion z-test (statsmodels' ``proportions_ztest``) at 5 % every evening, once both variants
have 100 runs; it shows what the sequential rule guards against.

Run from the repository root::

    .venv/bin/python bench/variants.py [--seed 7] [--experiments 1000] [--scale 1.0]

It prints the null half's false positives and guardrail stops, the lift half's power and runs to a
decision, the daily z-test's on the same data and, last, ``false positives under peeking N.N % (declared
5 %), median runs to a decision N`` (goal: at or under the declared rate). ``--scale`` shrinks the
number of experiments (the test suite runs it tiny so that it cannot rot).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np
from cli_types import SEED_MAX, bounded_int, fraction
from statsmodels.stats.proportion import proportions_ztest

from baton.optimize.experiments import Experiment, assign

BASE, LIFT, FAILURE = 0.60, 0.10, 0.05
WEIGHTS = {"control": 1.0, "treatment": 1.0}


@dataclass
class Outcome:
    """One experiment's end: the verdict, when, and when the daily z-test would have declared one."""

    status: str  # running (undecided at the horizon) | promoted | stopped
    variant: str | None
    metric: str | None  # success, or the guardrail that stopped it
    runs: int | None  # runs when decided
    naive_runs: int | None  # runs when the daily z-test first gave p < 0.05


def simulate(
    index: int, lift: float, args: argparse.Namespace, rng: np.random.Generator
) -> tuple[Outcome, dict[str, int]]:
    """One experiment, day by day; its outcome and how many runs the assignment sent to each variant."""
    name = f"exp_{index:04d}"
    experiment = Experiment(name, WEIGHTS)
    rates = {"control": BASE, "treatment": BASE * (1 + lift)}
    successes = dict.fromkeys(WEIGHTS, 0)
    runs = dict.fromkeys(WEIGHTS, 0)
    verdict, decided_at, naive_at = None, None, None
    for day in range(args.days):
        keys = [f"{name}/run-{day}-{i}" for i in range(args.runs_per_day)]
        for variant in WEIGHTS:
            count = sum(1 for key in keys if assign(name, key, WEIGHTS) == variant)
            success = rng.random(count) < rates[variant]
            experiment.record_many(
                variant, success, rng.random(count) < FAILURE, rng.lognormal(1.5, 0.5, count)
            )
            successes[variant] += int(success.sum())
            runs[variant] += count
        total = sum(runs.values())
        if decided_at is None:
            verdict = experiment.decide()
            if verdict.status != "running":
                decided_at = total
        if naive_at is None and min(runs.values()) >= experiment.min_runs:
            _, p = proportions_ztest(
                [successes["treatment"], successes["control"]], [runs["treatment"], runs["control"]]
            )
            if p < 0.05:
                naive_at = total
        if decided_at is not None and naive_at is not None:
            break
    metric = None
    if verdict.status != "running":
        comparison = experiment.comparisons["treatment"]
        metric = comparison.why["metric"]
    return Outcome(verdict.status, verdict.variant, metric, decided_at, naive_at), runs


def _median(values: list[float]) -> float:
    """The median with undecided experiments counted as never deciding (infinite)."""
    return float(np.median(values)) if values else float("inf")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seed", type=bounded_int(0, SEED_MAX), default=7, help="the outcomes' seed (default 7)"
    )
    parser.add_argument(
        "--experiments",
        type=bounded_int(2, 100_000),
        default=1000,
        help="experiments, half of them null (default 1000)",
    )
    parser.add_argument(
        "--days", type=bounded_int(1, 3650), default=60, help="days each experiment may run (default 60)"
    )
    parser.add_argument(
        "--runs-per-day",
        type=bounded_int(1, 100_000),
        default=100,
        help="runs per experiment per day (default 100)",
    )
    parser.add_argument(
        "--scale",
        type=fraction(1.0, "it only shrinks a run"),
        default=1.0,
        help="shrink the number of experiments (tests: 0.02)",
    )
    args = parser.parse_args()
    count = max(2, int(args.experiments * args.scale) // 2 * 2)
    began = time.monotonic()
    rng = np.random.default_rng(args.seed)
    print(
        f"# bench/variants.py --seed {args.seed} --experiments {count} --days {args.days} --runs-per-day "
        f"{args.runs_per_day}: success {BASE * 100:.0f} % (lift: {BASE * (1 + LIFT) * 100:.0f} %), "
        f"failures {FAILURE * 100:.0f} %, alpha 5 %, decided each evening"
    )
    null: list[Outcome] = []
    lifted: list[Outcome] = []
    assigned = dict.fromkeys(WEIGHTS, 0)
    for index in range(count):
        lift = LIFT if index % 2 else 0.0
        outcome, runs_by_variant = simulate(index, lift, args, rng)
        (lifted if lift else null).append(outcome)
        for variant, n in runs_by_variant.items():
            assigned[variant] += n

    primary = [o for o in null if o.metric == "success"]
    promoted = sum(o.variant == "treatment" for o in primary)
    guard = [o for o in null if o.status == "stopped" and o.metric != "success"]
    false_positives = 100 * len(primary) / len(null)
    naive_fp = 100 * sum(o.naive_runs is not None for o in null) / len(null)
    print(
        f"null experiments ({len(null)}): a difference declared in {len(primary)} ({false_positives:.1f} %: "
        f"treatment promoted {promoted}, control declared better {len(primary) - promoted}); guardrail stops "
        f"{len(guard)} ({100 * len(guard) / len(null):.1f} %, declared 5 %)"
    )
    print(f"  the daily fixed-sample z-test on the same data: {naive_fp:.1f} % declared a difference")

    won = [o for o in lifted if o.status == "promoted" and o.variant == "treatment"]
    wrong = [o for o in lifted if o.metric == "success" and o.variant != "treatment"]
    guard_lift = [o for o in lifted if o.status == "stopped" and o.metric != "success"]
    undecided = [o for o in lifted if o.status == "running"]
    runs = [o.runs if o in won else float("inf") for o in lifted]
    median = _median(runs)
    decided = sorted(o.runs for o in won)
    quartiles = f"{np.percentile(decided, 25):.0f} .. {np.percentile(decided, 75):.0f}" if decided else "n/a"
    print(
        f"10 % lift experiments ({len(lifted)}): treatment promoted in {len(won)} ({100 * len(won) / len(lifted):.1f} "
        f"%), control declared better {len(wrong)}, guardrail stops {len(guard_lift)}, undecided after "
        f"{args.days * args.runs_per_day} runs {len(undecided)}; runs to a promotion: median {median:.0f}, "
        f"quartiles {quartiles}"
    )
    naive_runs = [o.naive_runs if o.naive_runs is not None else float("inf") for o in lifted]
    print(
        f"  the daily fixed-sample z-test: median runs to p < 0.05 {_median(naive_runs):.0f} (but see the null half)"
    )
    share = 100 * assigned["treatment"] / sum(assigned.values())
    print(
        f"assignment: {share:.2f} % of {sum(assigned.values()):,} runs to treatment (weights 1:1); "
        f"{time.monotonic() - began:.1f} s"
    )
    if median == float("inf"):
        print("fewer than half of the lift experiments were decided: raise --days", file=sys.stderr)
        return 1
    print(
        f"false positives under peeking {false_positives:.1f} % (declared 5 %), median runs to a decision {median:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
