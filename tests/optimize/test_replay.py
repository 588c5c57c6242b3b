"""Replaying a step's history into an experiment in one pass (``Experiment.replay``): exactly the state of
recording the runs one by one, pairs, drops and waiting runs included; and its hostile cases."""

from __future__ import annotations

import time

import numpy as np
import pytest

from baton.errors import OptimizeError
from baton.optimize.experiments import Experiment

WEIGHTS = {"plain": 1.0, "concise": 1.0, "bold": 2.0}


def _runs(seed: int, n: int, shares: list[float]) -> list[tuple[str, bool, bool, float | None]]:
    rng = np.random.default_rng(seed)
    arms = rng.choice(list(WEIGHTS), size=n, p=shares)
    rows = []
    for arm in arms.tolist():
        ok = bool(rng.random() < {"plain": 0.6, "concise": 0.8, "bold": 0.5}[arm])
        seconds = None if rng.random() < 0.1 else float(rng.exponential(2.0))
        rows.append((arm, ok, not ok and bool(rng.random() < 0.7), seconds))
    return rows


@pytest.mark.parametrize(
    ("seed", "n", "shares", "max_waiting"),
    [
        (1, 400, [0.5, 0.3, 0.2], 1000),
        (2, 400, [0.8, 0.1, 0.1], 5),  # the control far ahead: its waiting runs are dropped
        (3, 400, [0.1, 0.45, 0.45], 3),  # the treatments far ahead
        (4, 2000, [0.34, 0.33, 0.33], 1),
        (5, 0, [0.5, 0.3, 0.2], 1000),
    ],
)
def test_a_replay_is_exactly_recording_the_runs_one_by_one(seed, n, shares, max_waiting):
    runs = _runs(seed, n, shares)
    one_by_one = Experiment("briefs.write", WEIGHTS, min_runs=20, max_waiting=max_waiting)
    for run in runs:
        one_by_one.record(*run)
    replayed = Experiment("briefs.write", WEIGHTS, min_runs=20, max_waiting=max_waiting)
    replayed.replay(runs)
    assert replayed.to_json() == one_by_one.to_json()
    assert replayed.decide() == one_by_one.decide()
    if max_waiting < 10 and n:
        assert any(c.dropped for c in replayed.comparisons.values())  # the drops were exercised
    # and a run recorded after the replay pairs as it would have
    more = _runs(seed + 100, 50, shares)
    for run in more:
        one_by_one.record(*run)
        replayed.record(*run)
    assert replayed.to_json() == one_by_one.to_json()


def test_a_step_history_of_20000_runs_replays_in_one_pass():
    runs = _runs(6, 20_000, [0.5, 0.25, 0.25])
    began = time.perf_counter()
    experiment = Experiment("briefs.write", WEIGHTS, min_runs=20)
    experiment.replay(runs)
    took = time.perf_counter() - began  # printed, not asserted: the machine is noisy
    print(f"replayed 20,000 runs in {took:.3f} s")
    shares = {arm: [run[0] for run in runs].count(arm) for arm in WEIGHTS}
    assert {arm: total["runs"] for arm, total in experiment.totals.items()} == shares
    assert sum(c.pairs for c in experiment.comparisons.values()) == shares["concise"] + shares["bold"]
    verdict = experiment.decide()  # concise delivers 80 % of its runs, plain 60 %, bold 50 %
    assert (verdict.status, verdict.variant) == ("promoted", "concise")
    assert verdict.why["reason"].startswith(
        f"concise promoted: it does better (success 80.0% over {shares['concise']} runs"
    )


@pytest.mark.parametrize(
    ("runs", "said"),
    [
        ([("plain", True, False, 1.0), ("nope", True, False, 1.0)],
         "replay: runs[1]: variant 'nope' is not in experiment 'briefs.write' (plain, concise, bold) "
         "(fix: replay the variants assign() gave the runs)"),
        ([("plain", True, False, 1.0), (["plain"], True, False, 1.0)],
         "replay: runs[1]: variant \"['plain']\" is not in experiment"),
        ([("plain", True, False)], "replay: runs[0]: must be (variant, success, failed, seconds), got tuple "
                                   "(fix: one tuple per run)"),
        (["plain"], "replay: runs[0]: must be (variant, success, failed, seconds), got str"),
        ([("plain", "yes", False, 1.0)], "replay: success: must be true or false for each run, got 'yes'"),
        ([("plain", True, 2, 1.0)], "replay: failed: must be true or false for each run, got 2"),
        ([("plain", True, False, -1.0)],
         "replay: latency_s: -1.0 is not a number of seconds >= 0 (fix: none when unknown)"),
        ([("plain", True, False, float("inf"))], "replay: latency_s: inf is not a number of seconds >= 0"),
        ([("plain", True, False, "slow")], "replay: latency_s: must be seconds (a number >= 0) or none"),
    ],
)  # fmt: skip
def test_a_replay_of_bad_runs_names_the_run_and_the_field_and_records_nothing(runs, said):
    experiment = Experiment("briefs.write", WEIGHTS)
    before = experiment.to_json()
    with pytest.raises(OptimizeError) as raised:
        experiment.replay(runs)
    assert str(raised.value).startswith(said), str(raised.value)
    assert experiment.to_json() == before


def test_a_replay_into_an_experiment_with_runs_is_refused():
    experiment = Experiment("briefs.write", WEIGHTS)
    experiment.record("plain", True)
    with pytest.raises(OptimizeError, match=r"replay: experiment 'briefs.write' already has runs "
                                             r"\(fix: replay into a new Experiment\)"):  # fmt: skip
        experiment.replay([("concise", True, False, None)])
    assert experiment.totals["concise"]["runs"] == 0


def test_a_replay_reads_a_generator_once():
    runs = _runs(7, 300, [0.5, 0.3, 0.2])
    one_by_one = Experiment("briefs.write", WEIGHTS, min_runs=20)
    for run in runs:
        one_by_one.record(*run)
    replayed = Experiment("briefs.write", WEIGHTS, min_runs=20)
    replayed.replay(run for run in runs)
    assert replayed.to_json() == one_by_one.to_json()
