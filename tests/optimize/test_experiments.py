"""Variant experiments: sticky assignment, and a sequential rule that stays valid under daily peeking."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import integrate, special, stats

from baton.errors import OptimizeError
from baton.optimize.experiments import Experiment, assign
from baton.optimize.sequential import log_e_one_sided, log_e_two_sided

FIX = "(fix: rebuild the state from the outcomes in the event store)"

# --- assignment ---------------------------------------------------------------------------------------


def test_assignment_is_sticky_and_close_to_the_weights():
    weights = {"control": 3, "shorter_prompt": 1}
    keys = [f"lead-{i}" for i in range(20_000)]
    first = [assign("prompt_test", key, weights) for key in keys]
    assert first == [assign("prompt_test", key, {"shorter_prompt": 1, "control": 3}) for key in keys]
    share = first.count("shorter_prompt") / len(keys)
    assert abs(share - 0.25) < 0.01  # 3 standard errors are 0.009
    other = [assign("another_test", key, weights) for key in keys[:2000]]
    assert other != first[:2000]  # each experiment splits the keys its own way


def test_assignment_is_the_same_in_another_process_with_another_hash_seed():
    script = (
        "from baton.optimize.experiments import assign\n"
        "print(','.join(assign('exp', f'k{i}', {'a': 1, 'b': 2, 'c': 0.5}) for i in range(300)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip().split(",") == [
        assign("exp", f"k{i}", {"a": 1, "b": 2, "c": 0.5}) for i in range(300)
    ]


def test_assignment_from_many_threads_at_once_is_the_same():
    from concurrent.futures import ThreadPoolExecutor

    keys = [f"run-{i}" for i in range(4000)]
    expected = [assign("e", key, {"a": 1, "b": 1}) for key in keys]
    with ThreadPoolExecutor(8) as pool:
        chunks = list(
            pool.map(
                lambda part: [assign("e", key, {"a": 1, "b": 1}) for key in part],
                [keys[i::8] for i in range(8)],
            )
        )
    assert [chunks[i % 8][i // 8] for i in range(len(keys))] == expected


def test_a_variant_with_weight_zero_gets_no_new_runs():
    assert {assign("e", str(i), {"a": 0, "b": 1}) for i in range(500)} == {"b"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("e", "k", {}),
            "assign: variants: must map each variant to its weight, e.g. {control: 1, shorter: 1}",
        ),
        (
            ("e", "k", {"a": -1, "b": 1}),
            "assign: variants.a: a weight must be a finite number >= 0, got -1 "
            "(fix: e.g. 1 for an even share, 0 to send it no more runs)",
        ),
        (
            ("e", "k", {"a": 0, "b": 0}),
            "assign: variants: every weight is 0, so no variant can be assigned (fix: give one a weight > 0)",
        ),
        (
            ("e", "k", {f"v{i}": 1 for i in range(21)}),
            "assign: variants: 21 variants, over the limit of 20 (fix: test fewer)",
        ),
        (
            ("e", "k" * 100_001, {"a": 1}),
            "assign: key: must be a text of at most 100,000 characters, got 100,001 characters "
            "(fix: use the run's business key or its id)",
        ),
        (
            ("e", 42, {"a": 1}),
            "assign: key: must be a text of at most 100,000 characters, got int (fix: use the run's business key or "
            "its id)",
        ),
        (
            ("", "k", {"a": 1}),
            "assign: experiment: an experiment's name must be a text of 1 to 200 characters, got '' "
            "(fix: name the experiment with a short text)",
        ),
    ],
)
def test_bad_assignment_input_is_refused_naming_the_field(args, message):
    with pytest.raises(OptimizeError) as caught:
        assign(*args)
    assert str(caught.value) == message


# --- the statistic ------------------------------------------------------------------------------------


@pytest.mark.parametrize("pairs", [1, 10, 60])
def test_the_two_sided_e_value_has_mean_one_under_no_difference(pairs):
    """A test martingale: its expectation over every outcome of ``pairs`` fair discordant pairs is 1."""
    wins = np.arange(pairs + 1)
    e_values = np.exp([log_e_two_sided(w, pairs - w, 50.0) for w in wins])
    assert float(np.sum(stats.binom.pmf(wins, pairs, 0.5) * e_values)) == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize(("theta", "mean"), [(0.6, 1.0), (0.5, "below"), (0.3, "below")])
def test_the_one_sided_e_value_has_mean_at_most_one_under_its_null(theta, mean):
    wins = np.arange(41)
    e_values = np.exp([log_e_one_sided(w, 40 - w, 0.6, 50.0) for w in wins])
    expected = float(np.sum(stats.binom.pmf(wins, 40, theta) * e_values))
    if mean == "below":
        assert expected < 1.0
    else:
        assert expected == pytest.approx(1.0, rel=1e-9)


def test_the_e_value_is_the_beta_binomial_formula():
    assert log_e_two_sided(0, 0, 50) == 0.0
    assert log_e_two_sided(30, 10, 5) == pytest.approx(
        special.betaln(35, 15) - special.betaln(5, 5) + 40 * math.log(2), rel=1e-12
    )
    assert log_e_two_sided(30, 10, 5) == pytest.approx(log_e_two_sided(10, 30, 5))  # two-sided


def _log_e_by_quadrature(wins: int, losses: int, theta0: float, concentration: float) -> float:
    """log E of ``log_e_one_sided`` by numerical integration over the truncated Beta mixture (each
    point's likelihood ratio against theta0 taken in log space, so nothing underflows)."""
    a, b = 2 * concentration * theta0, 2 * concentration * (1 - theta0)

    def ratio(theta: float) -> float:
        log_ratio = wins * math.log(theta / theta0) + losses * math.log1p(-(theta - theta0) / (1 - theta0))
        return math.exp(log_ratio + stats.beta.logpdf(theta, a, b) - stats.beta.logsf(theta0, a, b))

    upper = min(1.0, theta0 + 80 * (1 - theta0) / (losses + 1))  # the rest of [theta0, 1] weighs nothing
    return math.log(integrate.quad(ratio, theta0, upper, epsabs=0, epsrel=1e-11, limit=200)[0])


@pytest.mark.parametrize(
    ("wins", "losses", "theta0"), [(5, 40, 0.6), (0, 1000, 0.5), (0, 1500, 0.5), (10, 3000, 0.6)]
)
def test_the_one_sided_e_value_is_exact_where_the_mixtures_tail_underflows(wins, losses, theta0):
    # Past about 1,300 losses against 0.5 the mixture's mass above theta0 is under the smallest double
    # (scipy's betaincc is 0 and beta.logsf -inf); E is not. It was floored to e^-745 there, and the
    # experiment's p-value, 1 / E, overflowed (test_a_variant_never_slower_over_thousands_of_pairs_...).
    assert log_e_one_sided(wins, losses, theta0, 50.0) == pytest.approx(
        _log_e_by_quadrature(wins, losses, theta0, 50.0), rel=1e-9
    )


def test_the_one_sided_e_value_falls_smoothly_with_the_losses():
    logs = [log_e_one_sided(0, losses, 0.5, 50.0) for losses in range(1000, 3001, 50)]
    steps = np.diff(logs)
    assert (steps < 0).all() and (steps > -0.1).all(), logs  # no jump where a double underflows
    assert -6.0 < logs[-1] < -5.9


# --- the experiment -----------------------------------------------------------------------------------


def _run(experiment: Experiment, rates: dict[str, float], runs_per_day: int, days: int, seed: int, **extra):
    """Runs assigned by key, recorded day by day, decided each evening; (the verdict, the runs so far)."""
    rng = np.random.default_rng(seed)
    failure = extra.get("failure", {})
    slowness = extra.get("slowness", {})
    for day in range(days):
        keys = [f"{seed}-{day}-{i}" for i in range(runs_per_day)]
        for variant in experiment.variants:
            count = sum(1 for key in keys if experiment.assign(key) == variant)
            experiment.record_many(
                variant,
                rng.random(count) < rates[variant],
                rng.random(count) < failure.get(variant, 0.05),
                rng.lognormal(1.0, 0.3, count) * slowness.get(variant, 1.0),
            )
        verdict = experiment.decide()
        if verdict.status != "running":
            return verdict, (day + 1) * runs_per_day
    return experiment.decide(), days * runs_per_day


def test_a_variant_test_promotes_the_better_variant_and_records_why():
    experiment = Experiment("shorter_prompt", {"control": 1, "shorter": 1})
    verdict, runs = _run(experiment, {"control": 0.6, "shorter": 0.72}, 100, 40, seed=1)
    assert (verdict.status, verdict.variant) == ("promoted", "shorter")
    why = json.loads(json.dumps(verdict.why, allow_nan=False))
    test = why["tests"]["shorter"]["success"]
    assert test["decides"] and test["e_value"] >= test["threshold"] == 20.0
    assert test["p_value"] == pytest.approx(1 / test["e_value"], rel=1e-3)
    assert test["treatment_only"] > test["control_only"]
    counts = why["counts"]
    assert counts["shorter"]["runs"] + counts["control"]["runs"] == runs
    assert why["reason"] == (
        f"shorter promoted: it does better (success {counts['shorter']['success_rate']:.1%} over "
        f"{counts['shorter']['runs']} runs against {counts['control']['success_rate']:.1%} over "
        f"{counts['control']['runs']} for control); e-value {test['e_value']:.4g} >= 20 "
        "(1 / alpha 0.05, split over 1 comparison(s))"
    )
    assert experiment.decide() is verdict  # final


def test_a_worse_variant_is_stopped_and_the_control_stays():
    experiment = Experiment("worse", {"control": 1, "worse": 1})
    verdict, _ = _run(experiment, {"control": 0.7, "worse": 0.55}, 100, 40, seed=2)
    assert (verdict.status, verdict.variant) == ("stopped", "control")
    assert verdict.why["reason"].startswith("control stays: worse stopped: control does better (success ")


def test_a_variant_that_fails_more_is_stopped_early_on_the_failure_guardrail():
    experiment = Experiment("risky", {"control": 1, "risky": 1})
    rates = {"control": 0.6, "risky": 0.6}
    verdict, runs = _run(experiment, rates, 100, 40, seed=3, failure={"risky": 0.25})
    assert (verdict.status, verdict.variant) == ("stopped", "control")
    why = experiment.comparisons["risky"].why
    assert why["metric"] == "failures" and why["threshold"] == 40.0  # 2 guardrails x 1 treatment / 0.05
    assert runs <= 400  # early: a few days
    assert why["reason"].startswith(
        "risky stopped on a guardrail: its failure odds are worse than control's by more than 1.5x (failures "
    )


def test_a_slower_variant_is_stopped_on_the_latency_guardrail():
    experiment = Experiment("slow", {"control": 1, "slow": 1})
    verdict, _ = _run(experiment, {"control": 0.6, "slow": 0.6}, 100, 40, seed=4, slowness={"slow": 1.6})
    why = experiment.comparisons["slow"].why
    assert (verdict.status, why["metric"]) == ("stopped", "latency")
    assert why["reason"].startswith(
        "slow stopped on a guardrail: it took more than 1.2x as long as control in "
    )


def test_a_variant_never_slower_over_thousands_of_pairs_keeps_running_with_finite_figures():
    # 6,000 runs, the variant always the faster: its latency guardrail's e-value is tiny. Its p-value,
    # min(1, 1 / E), raised OverflowError here (and so every run of a step with such variants failed).
    experiment = Experiment("fast", {"control": 1, "fast": 1})
    experiment.replay(
        ("control", True, False, 2.0) if i % 2 else ("fast", True, False, 1.0) for i in range(6000)
    )
    verdict = experiment.decide()
    latency = verdict.why["tests"]["fast"]["latency"]
    assert (
        verdict.status == "running"
        and latency["treatment_not_slower"] == 3000
        and latency["treatment_slower"] == 0
    )
    assert latency["log_e_value"] == pytest.approx(_log_e_by_quadrature(0, 3000, 0.5, 50.0), abs=1e-6)
    assert latency["p_value"] == 1.0 and 0.0 < latency["e_value"] < 0.01 and not latency["decides"]
    json.dumps(verdict.why, allow_nan=False)  # every figure finite


def test_no_decision_before_the_minimum_sample_however_strong_the_evidence():
    experiment = Experiment("early", {"a": 1, "b": 1}, min_runs=100)
    experiment.record_many("a", [False] * 60)
    experiment.record_many("b", [True] * 60)
    verdict = experiment.decide()
    assert verdict.status == "running" and verdict.why["tests"]["b"]["success"]["decides"]
    assert verdict.why["reason"] == "waiting for the minimum sample of 100 runs per variant (a 60, b 60)"
    experiment.record_many("a", [False] * 40)
    experiment.record_many("b", [True] * 40)
    assert experiment.decide().status == "promoted"


def test_recording_one_at_a_time_equals_recording_in_batches():
    rng = np.random.default_rng(5)
    one, batch = (Experiment("e", {"a": 1, "b": 2, "c": 1}, max_waiting=7) for _ in range(2))
    for _ in range(30):
        variant = str(rng.choice(["a", "b", "c"]))
        size = int(rng.integers(1, 12))
        success, failed = rng.random(size) < 0.5, rng.random(size) < 0.1
        latency = [None if rng.random() < 0.2 else float(x) for x in rng.uniform(0.1, 5, size)]
        batch.record_many(variant, success, failed, latency)
        for s, f, t in zip(success, failed, latency, strict=True):
            one.record(variant, bool(s), bool(f), t)
    assert one.to_json() == batch.to_json()
    assert (
        sum(c.dropped for c in one.comparisons.values()) > 0
    )  # uneven traffic: the oldest waiting runs drop


def test_the_state_round_trips_through_json_and_goes_on_the_same():
    whole = Experiment("e", {"control": 1, "new": 1})
    _run(whole, {"control": 0.6, "new": 0.6}, 50, 3, seed=6)
    restored = Experiment.from_json(json.dumps(whole.to_json(), allow_nan=False))
    assert restored.to_json() == whole.to_json()
    for experiment in (whole, restored):
        _run(experiment, {"control": 0.6, "new": 0.75}, 50, 30, seed=7)
    assert restored.to_json() == whole.to_json() and whole.decision is not None


def test_three_variants_split_the_false_positive_rate():
    experiment = Experiment("abc", {"control": 1, "b": 1, "c": 1})
    verdict, _ = _run(experiment, {"control": 0.5, "b": 0.5, "c": 0.65}, 150, 40, seed=8)
    assert (verdict.status, verdict.variant) == ("promoted", "c")
    assert verdict.why["tests"]["c"]["success"]["threshold"] == 40.0  # 2 comparisons / 0.05


def _naive_daily_z_test(successes: np.ndarray, runs: np.ndarray) -> bool:
    """Today's habit: a fixed-sample two-proportion z-test at 5 %, looked at every day."""
    (sa, sb), (na, nb) = successes, runs
    pooled = (sa + sb) / (na + nb)
    z = (sb / nb - sa / na) / np.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    return bool(np.any(2 * stats.norm.sf(np.abs(z)) < 0.05))


def test_under_no_difference_daily_peeking_keeps_false_positives_under_the_declared_rate():
    """200 null experiments of 30 days x 60 runs, checked every day: at most 5 % declare a winner; the same
    data, checked daily with a fixed-sample p-value, would declare far more."""
    rng = np.random.default_rng(2024)
    declared = naive = 0
    for i in range(200):
        experiment = Experiment(f"null_{i}", {"a": 1, "b": 1}, min_runs=50)
        daily = np.zeros((2, 2, 30))
        for day in range(30):
            split = rng.binomial(60, 0.5)
            for j, (variant, count) in enumerate((("a", 60 - split), ("b", split))):
                success = rng.random(count) < 0.6
                experiment.record_many(variant, success)
                daily[0, j, day:] += success.sum()
                daily[1, j, day:] += count
            experiment.decide()  # every evening; a promotion is final
        declared += experiment.decide().status == "promoted"
        naive += _naive_daily_z_test(daily[0, :, 2:], daily[1, :, 2:])  # from day 3 on, as people would
    assert declared / 200 <= 0.05
    assert naive / 200 > 0.15  # the habit the rule replaces: several times the declared 5 %


# --- hostile input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"variants": {"a": 1}},
            "experiment.variants: an experiment needs at least two variants (fix: add one)",
        ),
        (
            {"control": "z"},
            "experiment.control: 'z' is not one of the variants (a, b) (fix: name one of them)",
        ),
        ({"alpha": 0}, "experiment.alpha: must be > 0 (fix: keep the default, 0.05)"),
        (
            {"alpha": 0.9},
            "experiment.alpha: must be a finite number [0, 0.5], got 0.9 (fix: a rate such as 0.05)",
        ),
        (
            {"min_runs": 1.5},
            "experiment.min_runs: must be a whole number [1, 1e+09], got 1.5 (fix: e.g. 100 runs)",
        ),
        (
            {"failure_odds_margin": 0.5},
            "experiment.failure_odds_margin: must be a finite number [1, 100], got 0.5 (fix: an odds ratio, e.g. 1.5)",
        ),
    ],
)
def test_bad_settings_are_refused_naming_the_field(kwargs, message):
    with pytest.raises(OptimizeError) as caught:
        Experiment(**{"name": "e", "variants": {"a": 1, "b": 1}, **kwargs})
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda e: e.record("c", True),
            "record: variant 'c' is not in experiment 'e' (a, b) (fix: record the variant that assign() gave the run)",
        ),
        (lambda e: e.record_many("a", [1, 2]), "record: success: must be true or false for each run, got 2"),
        (
            lambda e: e.record_many("a", [True], [True, False]),
            "record: failed: must be a list of 1 outcomes (fix: one per run)",
        ),
        (
            lambda e: e.record("a", True, latency_s=-3),
            "record: latency_s: -3.0 is not a number of seconds >= 0 (fix: none when unknown)",
        ),
        (
            lambda e: e.record("a", True, latency_s="3s"),
            "record: latency_s: must be seconds (a number >= 0) or none for each run",
        ),
    ],
)
def test_bad_outcomes_are_refused_naming_the_field(call, message):
    with pytest.raises(OptimizeError) as caught:
        call(Experiment("e", {"a": 1, "b": 1}))
    assert str(caught.value) == message


def _state(path: str, value) -> str:
    experiment = Experiment("e", {"a": 1, "b": 1})
    experiment.record_many("a", [True, False, True], latency_s=[1.0, None, 2.0])
    state = experiment.to_json()
    *parents, leaf = path.split(".")
    node = state
    for key in parents:
        node = node[key]
    node[leaf] = value
    return json.dumps(state)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (_state("version", 7), "experiment.version: must be a whole number [1, 1], got 7"),
        (
            _state("totals.a.runs", -1),
            "experiment.totals.a.runs: must be a whole number [0, 9.0072e+15], got -1",
        ),
        (
            _state("totals.a.successes", 9),
            "experiment.totals.a.successes: must be a whole number [0, 3], got 9",
        ),
        (_state("totals.z", {}), "experiment.totals: unknown field(s) z (expected a, b)"),
        (
            _state("comparisons.b.success", [5, 0]),
            "experiment.comparisons.b.success[0]: must be a whole number [0, 0], got 5",
        ),
        (
            _state("comparisons.b.status", "won"),
            "experiment.comparisons.b.why: a decided comparison needs its why",
        ),
        (
            _state("comparisons.b.status", "maybe"),
            "experiment.comparisons.b.status: must be running, won, lost or harmful, got 'maybe'",
        ),
        (
            _state("comparisons.b.waiting.runs", [[True, False]]),
            "experiment.comparisons.b.waiting.runs[0]: must be [success, failed, seconds or null]",
        ),
        (
            _state("comparisons.b.waiting.runs", [[True, False, None]] * 1001),
            "experiment.comparisons.b.waiting.runs: must be a list of at most 1000 runs",
        ),
        (
            _state("decision", {"status": "promoted", "variant": "z", "why": {}}),
            "experiment.decision: status must be promoted or stopped and variant one of the variants, got "
            "'promoted' and 'z'",
        ),
        (
            '{"name": "e", ' * 3,
            "experiment: not valid JSON: Expecting property name enclosed in double quotes: line 1 column 15 (char 14)",
        ),
    ],
)
def test_a_malformed_experiment_state_is_refused_naming_the_field(state, message):
    with pytest.raises(OptimizeError) as caught:
        Experiment.from_json(state)
    assert str(caught.value) == f"{message} {FIX}"
