"""The workflow analytics of a window: the figures, the trend, the suggestions and why; Baton's own runs
left out of every workflow's figures."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from baton.ops.dashboard.analytics import report
from tests.ops.dashboard.scenario import T0, Run

NOW = T0 + timedelta(hours=6)


def _window(store) -> None:
    """Ten runs of lead_scoring an hour apart from T0 (two failed: their 'score' step failed); the steps
    'fetch' and 'enrich' ran side by side (5 s and 10 s in a run of 10 s: a speed-up of 1.5; the first run
    four times as long); three conflicts, two
    resolved by their strategy; two runs asked a person; 'flaky' opened its circuit twice. One run of
    triage, one of lead_scoring long before the window."""
    for i in range(10):
        run = Run(store, f"ls-{i}", at=T0 + timedelta(minutes=30 * i))
        for step, agent, took in (("fetch", "reader", 5.0), ("enrich", "writer", 10.0)):
            run.start(step, 0, agent=agent)
            run.succeed(step, took, took if i else 4 * took, agent=agent)
        if i in (3, 7):
            run.start("score", 10, agent="flaky")
            run.fail("score", 10, agent="flaky", retry=False)
            opened = {"agent": "flaky", "failures": 3, "until": "2026-03-02T12:00:00+00:00"}
            run.append(run.event("agent.breaker_opened", 10, "score", agent="flaky", payload=opened))
        if i in (1, 2):
            run.append(
                run.event("approval.requested", 5, "enrich", payload={"subject": "?", "kind": "review"})
            )
        run.end(10 if i else 40, ok=i not in (3, 7))
    Run(store, "ls-2")  # the same events again change nothing
    for name, minutes, outcome in (
        ("ls-4", 120, "merged"),
        ("ls-5", 150, "retried"),
        ("ls-6", 180, "escalated"),
    ):
        run = Run(store, name, at=T0 + timedelta(minutes=minutes))  # its start is stored already: once
        run.append(*run.conflict("enrich", 3, outcome))
    Run(store, "tr-0", "triage", at=T0 + timedelta(hours=1)).end(5)
    Run(store, "ls-old", at=T0 - timedelta(days=3)).end(500)


def test_the_figures_of_a_window(store):
    _window(store)
    found = report(store, 8, "lead_scoring", now=NOW)
    assert (found["runs"], found["finished"], found["succeeded"], found["success_rate"]) == (10, 10, 8, 0.8)
    assert found["parallel_speedup"] == 1.5
    assert (found["conflicts"], found["conflict_auto_resolution_rate"]) == (3, 0.6667)
    assert (found["runs_with_questions"], found["human_intervention_rate"]) == (2, 0.2)
    assert found["mean_duration_s"] == 13.0 and found["p95_duration_s"] == 26.5
    assert report(store, 8, now=NOW)["runs"] == 11, "every workflow's"
    assert report(store, 24 * 366, now=NOW)["runs"] == 12


def test_the_trend_has_hourly_buckets_up_to_a_week_and_wider_ones_beyond(store):
    _window(store)
    trend = report(store, 8, "lead_scoring", now=NOW)["trend"]
    assert trend["bucket_hours"] == 1 and len(trend["buckets"]) == 9
    counts = [(b["start"][11:16], b["runs"], b["failures"]) for b in trend["buckets"] if b["runs"]]
    assert counts == [("09:00", 2, 0), ("10:00", 2, 1), ("11:00", 2, 0), ("12:00", 2, 1), ("13:00", 2, 0)]
    year = report(store, 24 * 366, now=NOW)["trend"]
    assert year["bucket_hours"] == 53 and len(year["buckets"]) <= 168
    assert sum(b["runs"] for b in year["buckets"]) == 12


def test_suggestions_name_their_target_and_say_why(store):
    _window(store)
    kinds = {s["kind"]: s for s in report(store, 8, "lead_scoring", now=NOW)["suggestions"]}
    assert kinds["unstable_agent"]["target"] == {"agent": "flaky"}
    assert "opened 2 time(s)" in kinds["unstable_agent"]["why"]
    assert kinds["slowest_step"]["target"] == {"workflow": "lead_scoring", "step": "enrich"}
    assert kinds["slowest_step"]["why"] == (
        "its successful tries took 13.0 s on average, 100% of a lead_scoring run's mean 13.0 s; the next "
        "slowest step 6.5 s"
    )
    assert "failing_step" not in kinds, "two failed tries are too few to say"
    assert kinds["many_questions"]["why"] == "2 of the 10 runs (20%) asked a person"
    assert all(s["why"] and s["try"] for s in kinds.values())


@pytest.mark.parametrize("hours", [0, -1, math.nan, math.inf, 24 * 366 + 1])
def test_a_window_that_is_not_a_number_of_hours_up_to_a_year_is_refused(store, hours):
    with pytest.raises(ValueError, match="hours is a number over 0"):
        report(store, hours)


def test_every_workflows_figures_leave_out_batons_own_runs(store):
    """The monitor's run every minute, a compensation run and an incident's page are the platform's: ten of
    them beside one run of a team's workflow leave "every workflow" at one run, while each is still there
    when asked for by name."""
    from baton.compile.build import COMPENSATE_DAG_ID
    from baton.ops.dashboard.common import SYSTEM_WORKFLOWS
    from baton.ops.monitor.paging import DAG_ID as ESCALATION_DAG_ID
    from baton.ops.monitor.record import MONITOR

    assert {MONITOR, COMPENSATE_DAG_ID, ESCALATION_DAG_ID} == SYSTEM_WORKFLOWS
    Run(store, "tr-0", "triage", at=T0 + timedelta(hours=1)).end(5)
    for i in range(8):
        run = Run(store, f"mon-{i}", MONITOR, at=T0 + timedelta(minutes=i))
        run.start("tick", 0, agent=None)
        run.succeed("tick", 1, 1, agent=None)
        run.end(1)
    Run(store, "comp-0", COMPENSATE_DAG_ID, at=T0 + timedelta(hours=2)).end(3, ok=False)
    Run(store, "page-0", ESCALATION_DAG_ID, at=T0 + timedelta(hours=3)).end(3)
    every = report(store, 8, now=NOW)
    assert (every["runs"], every["succeeded"], every["success_rate"]) == (1, 1, 1.0)
    assert all("tick" not in s["why"] and MONITOR not in s["why"] for s in every["suggestions"])
    assert report(store, 8, MONITOR, now=NOW)["runs"] == 8
    assert report(store, 8, COMPENSATE_DAG_ID, now=NOW)["runs"] == 1
