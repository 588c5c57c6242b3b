"""The analytics' figures as the page words them, and the suggestions' thresholds: a slowdown is not called a
speed-up, a rate of no runs is not 0 %, a p95 of one run is called that run, and a step of negligible time is
never proposed for speeding up (issue 54)."""

from __future__ import annotations

from collections import namedtuple
from datetime import timedelta

import pytest

from baton.ops.dashboard.analytics import report
from baton.ops.dashboard.readings import MIN_PERCENTILE_RUNS, OWN_RUNS, read, seconds
from baton.ops.dashboard.suggestions import MIN_SLOW_STEP_S, MIN_SLOW_STEP_SHARE, suggest
from tests.ops.dashboard.scenario import T0, Run

NOW = T0 + timedelta(hours=6)
Row = namedtuple("Row", "workflow step agent tries failures ok_seconds breaker_opens")

NONE = {
    "runs": 0, "running": 0, "finished": 0, "succeeded": 0, "success_rate": None, "step_work_ratio": None,
    "step_work_runs": 0, "conflicts": 0, "conflicts_auto_resolved": 0, "conflict_auto_resolution_rate": None,
    "runs_with_questions": 0, "human_intervention_rate": None, "p95_duration_s": None, "max_duration_s": None,
    "timed_runs": 0,
}  # fmt: skip


def _by_figure(figures, workflow=None):
    return {r["figure"]: r for r in read({**NONE, **figures}, workflow)}


def _chain(store, runs: int = 6) -> None:
    """Runs of 'chain' whose two steps, one after the other, worked 3 s of a run's 10 s (the rest waiting)."""
    for i in range(runs):
        run = Run(store, f"ch-{i}", "chain", at=T0 + timedelta(minutes=10 * i))
        for step, at in (("a", 0), ("b", 5)):
            run.start(step, at, agent="reader")
            run.succeed(step, at + 1.5, 1.5, agent="reader")
        run.end(10)


def test_a_slowdown_is_not_called_a_speed_up(store):
    _chain(store)
    found = report(store, 8, "chain", now=NOW)
    assert (found["step_work_ratio"], found["step_work_runs"], found["parallel_speedup"]) == (0.3, 6, 0.3)
    speedup = next(r for r in found["readings"] if r["figure"] == "step_work_ratio")
    assert speedup["value"] == "no"
    assert speedup["label"] == (
        "parallel speed-up: the steps' work added up to only 0.30× the runs' wall time; at least 70% of it "
        "went outside the steps (waiting to be scheduled, for a slot, a person or a retry)"
    )
    kinds = {s["kind"]: s for s in found["suggestions"]}
    assert "little_parallelism" not in kinds, "they did not wait on each other: they waited between steps"
    assert kinds["time_between_steps"]["why"] == (
        "no parallel speed-up: the steps' work added up to only 0.30× the wall time of 6 finished runs, on "
        "average; at least 70% of it went outside the steps"
    )


def test_a_speed_up_over_one_says_what_it_bounds():
    speedup = _by_figure({"step_work_ratio": 1.5, "step_work_runs": 10})["step_work_ratio"]
    assert speedup["value"] == "1.50×"
    assert (
        "one after another, the steps alone would take at least 1.50× as long as the runs did"
        in (speedup["label"])
    )
    assert speedup["over"].startswith(
        "the 10 finished run(s) with their steps' times among your workflows' runs started in the window: each "
        "run's steps' summed time divided by its wall time, averaged"
    )


def test_rates_of_no_runs_read_no_rather_than_a_number():
    readings = _by_figure({})
    assert [(r["value"], r["label"]) for r in readings.values()] == [
        ("0", "runs"),
        ("–", "success rate: no run finished in the window"),
        ("–", "parallel speed-up: no finished run with its steps' times"),
        ("–", "conflicts auto-resolved: no context conflict"),
        ("–", "human intervention: no run in the window"),
        ("–", "p95 duration: no run finished in the window"),
    ]


def test_each_rate_says_how_many_of_how_many():
    readings = _by_figure(
        {"runs": 11, "running": 1, "finished": 10, "succeeded": 8, "success_rate": 0.8, "conflicts": 3,
         "conflicts_auto_resolved": 2, "conflict_auto_resolution_rate": 0.6667, "runs_with_questions": 2,
         "human_intervention_rate": 0.1818}
    )  # fmt: skip
    assert (readings["runs"]["value"], readings["runs"]["label"]) == ("11", "runs (1 still running)")
    assert readings["success_rate"]["value"] == "80.0 %"
    assert readings["success_rate"]["label"] == "success rate: 8 of 10 finished run(s) succeeded"
    assert "a run still running counts once it ends" in readings["success_rate"]["over"]
    assert readings["conflict_auto_resolution_rate"]["value"] == "66.7 %"
    assert "2 of 3 context conflict(s)" in readings["conflict_auto_resolution_rate"]["label"]
    assert readings["human_intervention_rate"]["label"] == "human intervention: 2 of 11 run(s) asked a person"


@pytest.mark.parametrize(
    ("timed", "shown", "label"),
    [
        (1, "40 s", "longest of 1 finished run(s) (a p95 needs 20)"),
        (MIN_PERCENTILE_RUNS - 1, "40 s", "longest of 19 finished run(s) (a p95 needs 20)"),
        (MIN_PERCENTILE_RUNS, "30 s", "p95 duration of 20 finished runs (the longest 40 s)"),
    ],
)
def test_a_p95_of_too_few_runs_is_called_the_longest_run(timed, shown, label):
    figures = {"timed_runs": timed, "p95_duration_s": 30.0, "max_duration_s": 40.0}
    duration = read({**NONE, **figures}, None)[-1]
    assert (duration["value"], duration["label"]) == (shown, label)


def test_the_title_says_over_which_runs():
    every = read(NONE, None)
    assert all(
        OWN_RUNS in r["over"] and "your workflows' runs started in the window" in r["over"] for r in every
    )
    assert "monitor" in OWN_RUNS and "compensations" in OWN_RUNS
    named = read(NONE, "lead_scoring")
    assert all("the runs of lead_scoring started in the window" in r["over"] for r in named)
    assert all(OWN_RUNS not in r["over"] for r in named)


def test_the_trend_says_how_many_runs_each_buckets_durations_rest_on(store):
    _chain(store, 2)
    trend = report(store, 8, "chain", now=NOW)["trend"]
    assert trend["min_percentile_runs"] == MIN_PERCENTILE_RUNS
    busy = [b for b in trend["buckets"] if b["runs"]]
    assert [(b["timed_runs"], b["max_duration_s"]) for b in busy] == [(2, 10.0)]


@pytest.mark.parametrize(("value", "shown"), [(0.3, "0 s"), (89.4, "89 s"), (90, "2 min"), (5400, "1.5 h")])
def test_seconds_read_as_the_pages_show_them(value, shown):
    assert seconds(value) == shown


def _steps(slow_s: float, fast_s: float = 0.1, workflow: str = "w") -> list[Row]:
    """Ten successful tries of 'slow' and of 'fast' in 'w', each the given seconds."""
    return [
        Row(workflow, "slow", "a", 10, 0, 10 * slow_s, 0),
        Row(workflow, "fast", "a", 10, 0, 10 * fast_s, 0),
    ]


def _slowest(rows, run_means):
    return next((s for s in suggest(NONE, rows, run_means) if s["kind"] == "slowest_step"), None)


def test_a_step_of_negligible_time_is_never_proposed_for_speeding_up():
    """The issue's case: a 0.3 s step was "the slowest" of a workflow and proposed for optimising."""
    assert _slowest(_steps(0.3), {"w": 0.5}) is None, "0.3 s: nothing to win back, whatever its share"
    assert _slowest(_steps(MIN_SLOW_STEP_S - 0.01), {"w": 6.0}) is None, "just under the minimum time"
    found = _slowest(_steps(MIN_SLOW_STEP_S), {"w": 6.0})
    assert found["target"] == {"workflow": "w", "step": "slow"}
    assert found["why"] == (
        "its successful tries took 5.0 s on average, 83% of a w run's mean 6.0 s; the next slowest step 0.1 s"
    )


def test_a_step_must_take_a_meaningful_share_of_its_workflows_run():
    run_mean = 100.0
    under = _slowest(_steps(MIN_SLOW_STEP_SHARE * run_mean - 0.1), {"w": run_mean})
    assert under is None, "24.9 s of a 100 s run: under a quarter of it"
    assert _slowest(_steps(MIN_SLOW_STEP_SHARE * run_mean), {"w": run_mean})["target"]["step"] == "slow"
    assert _slowest(_steps(60.0), {}) is None, "no finished run of its workflow to set it against"


def test_a_slower_step_of_a_long_workflow_gives_way_to_one_that_matters():
    rows = _steps(60.0, workflow="long") + _steps(10.0, workflow="short")
    found = _slowest(rows, {"long": 3600.0, "short": 20.0})
    assert found["target"] == {"workflow": "short", "step": "slow"}
    assert found["why"].endswith("; each slower step is under 25% of its workflow's mean run")
