"""The remaining-duration prediction (baton.coordination.prediction, baton.optimize.duration) on a real SQLite
store, its history written as the operator and the listener write it: exact quantiles on known histories,
the agent's runs and the fallback to every agent's, time already spent, too little history, the risk of a
miss, and hostile histories (a huge one read only up to its limit, durations that go backwards or say NaN,
runs still running or failed, another workflow's run of the same id, a fan-out item's choice of agent)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from baton.coordination.prediction import MAX_LIMIT, Remaining, RemainingModel, read_history
from baton.events.event import Event
from baton.events.migrations import upgrade
from baton.events.store import EventStore, engine_for
from baton.optimize import duration

WF = "forecast"
T0 = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = engine_for(url)
    upgrade(engine)
    yield EventStore(engine)
    engine.dispose()


def run_events(
    run_id: str,
    start: datetime,
    total: float | None,
    steps: dict[str, tuple[float, float, str | None]] = {},  # noqa: B006 (never changed)
    workflow: str = WF,
    end: str = "run.succeeded",
    started: bool = True,
    payload: dict | None = None,
) -> list[Event]:
    """A run's events: its start, each step (offset from the run's start, duration, agent) started, its agent
    chosen and succeeded, and its end ``total`` seconds after its start (none when ``total`` is None)."""
    at = lambda seconds: start + timedelta(seconds=seconds)  # noqa: E731
    events = [Event("run.started", run_id, workflow, ts=start)] if started else []
    for step, (offset, took, agent) in steps.items():
        scope = {"run_id": run_id, "workflow": workflow, "step": step, "try_number": 1}
        events.append(Event("step.started", ts=at(offset), **scope))
        if agent:
            events.append(
                Event("agent.selected", ts=at(offset), agent=agent, payload={"agent": agent}, **scope)
            )
        events.append(Event("step.succeeded", ts=at(offset + took), payload={"duration_s": took}, **scope))
    if total is not None:
        body = payload if payload is not None else {"duration_s": total}
        events.append(Event(end, run_id, workflow, ts=at(total), payload=body))
    return events


def history(store, runs, prefix: str = "run", **kwargs) -> None:
    events = []
    for i, (total, steps) in enumerate(runs):
        events += run_events(f"{prefix}-{i:05d}", T0 + timedelta(hours=i), total, steps, **kwargs)
    store.append(events)


def quantile(values, p):
    return float(np.quantile(np.sort(values), p, method="weibull"))


def test_quantiles_of_a_known_history_are_exact(store):
    totals = [10.0 * k for k in range(1, 200)]  # 199 runs: 10 s, 20 s, ... 1990 s
    history(store, [(t, {"only": (4.0, t - 5.0, None)}) for t in totals])
    model = RemainingModel.from_store(store, WF)
    whole = model.remaining()
    assert model.runs == whole.runs == 199
    assert whole.p50 == 1000.0  # the 100th of 199, at 100/200
    for p, got in ((0.05, whole.p05), (0.10, whole.p10), (0.90, whole.p90), (0.95, whole.p95)):
        assert got == pytest.approx(quantile(totals, p))
    step = model.remaining("only")  # from the step's start: the run's total less its 4 s before the step
    assert step.p50 == pytest.approx(996.0) and step.agent is None
    assert list(step.samples) == sorted(step.samples) and len(step.samples) == 199


def test_a_fixed_duration_gives_the_same_value_at_every_quantile(store):
    history(store, [(100.0, {"a": (10.0, 30.0, "x"), "b": (40.0, 50.0, "x")}) for _ in range(200)])
    model = RemainingModel.from_store(store, WF)
    assert model.remaining() == Remaining(100.0, 100.0, 100.0, 100.0, 200, p05=100.0)
    a, b = model.remaining("a"), model.remaining("b", "x")
    assert (a.p05, a.p50, a.p95) == (90.0, 90.0, 90.0)  # its 30 s, then 60 s to the run's end
    assert (b.p05, b.p95, b.agent) == (60.0, 60.0, "x")
    assert model.steps() == ["a", "b"]


def test_the_agent_conditions_the_step_and_too_few_of_its_runs_fall_back_on_every_agent(store):
    runs = [(200.0, {"a": (0.0, 60.0, "fast")}) for _ in range(30)]  # 140 s after the step, whoever did it
    runs += [(260.0, {"a": (0.0, 120.0, "slow")}) for _ in range(30)]
    runs += [(500.0, {"a": (0.0, 360.0, "rare")}) for _ in range(3)]
    history(store, runs)
    model = RemainingModel.from_store(store, WF)
    fast, slow = model.remaining("a", "fast"), model.remaining("a", "slow")
    assert (fast.p05, fast.p95, fast.runs, fast.agent) == (200.0, 200.0, 30, "fast")
    assert (slow.p05, slow.p95, slow.runs, slow.agent) == (260.0, 260.0, 30, "slow")
    everyone = model.remaining("a")
    for thin in ("rare", "never-seen"):  # 3 runs (< MIN_AGENT_RUNS), none: the step over every agent
        fallback = model.remaining("a", thin)
        assert fallback.agent is None and fallback.runs == 63
        assert (fallback.p05, fallback.p50, fallback.p95) == (everyone.p05, everyone.p50, everyone.p95)
    assert everyone.p05 == 200.0 and everyone.p95 > 260.0  # the rare agent's 500 s are in the tail


def test_time_already_spent_in_the_step_keeps_the_longer_runs(store):
    tooks = [float(k) for k in range(1, 101)]  # the step takes 1..100 s; the run ends 7 s after it
    history(store, [(took + 7.0, {"a": (0.0, took, None)}) for took in tooks])
    model = RemainingModel.from_store(store, WF)
    spent = model.remaining("a", elapsed_s=50.0)
    assert spent.runs == 100 and len(spent.samples) == 50  # the runs whose step took more than 50 s
    assert min(spent.samples) == 8.0 and max(spent.samples) == 57.0
    assert spent.p50 == pytest.approx(quantile([t - 50.0 + 7.0 for t in tooks if t > 50.0], 0.5))
    fresh = model.remaining("a")
    assert spent.p95 < fresh.p95 and spent.p05 > fresh.p05 - 50.0
    beyond = model.remaining("a", elapsed_s=10_000.0)  # longer than any run: the tail of the 5 longest
    assert len(beyond.samples) == 5 and beyond.p05 >= 7.0 and math.isfinite(beyond.p95)
    whole = model.remaining(elapsed_s=60.0)  # the run itself, 60 s in
    assert min(whole.samples) > 0 and len(whole.samples) == 47  # totals of 8..107 s: 47 above 60
    for odd in (-5.0, math.nan, math.inf):  # nonsense elapsed: from the start
        assert model.remaining("a", elapsed_s=odd) == fresh


def test_too_thin_a_history_gives_none(store):
    history(store, [(100.0, {"a": (0.0, 10.0, None)}) for _ in range(4)])
    assert RemainingModel.from_store(store, WF).remaining() is None
    assert RemainingModel.from_store(store, WF).remaining("a") is None
    more = [(100.0, {"b": (0.0, 10.0, None)}) for _ in range(6)]
    history(store, more, prefix="other", workflow="other")
    model = RemainingModel.from_store(store, "other")
    assert model.remaining() is not None and model.remaining("b") is not None
    assert model.remaining("not-a-step") is None


def test_an_unknown_workflow_gives_none(store):
    history(store, [(100.0, {}) for _ in range(10)])
    model = RemainingModel.from_store(store, "no-such-workflow")
    assert model.runs == 0 and model.remaining() is None and model.remaining("a", "x", 3.0) is None


@pytest.mark.parametrize("seconds", [0.0, 1.0, 99.0])
def test_miss_risk_is_a_probability_that_never_rises(store, seconds):
    history(store, [(10.0 + 3.0 * k + seconds, {}) for k in range(40)])
    model = RemainingModel.from_store(store, WF)
    from_samples = model.remaining()
    from_quantiles = Remaining(from_samples.p10, from_samples.p50, from_samples.p90, from_samples.p95, 40,
                               p05=from_samples.p05)  # fmt: skip
    grid = [-10.0, 0.0, *np.linspace(0.0, 400.0, 801).tolist(), 1e6, math.inf]
    for remaining in (from_samples, from_quantiles):
        risks = [remaining.miss_risk(s) for s in grid]
        assert all(0.0 <= r <= 1.0 for r in risks)
        assert all(a >= b for a, b in zip(risks, risks[1:], strict=False))
        assert remaining.miss_risk(-10.0) == 1.0 and remaining.miss_risk(math.nan) == 1.0
        assert remaining.miss_risk(math.inf) == 0.0
        assert 0.4 <= remaining.miss_risk(remaining.p50) <= 0.6
        assert remaining.miss_risk(remaining.p95) <= 0.06


def test_a_huge_history_is_read_only_up_to_the_limit_newest_first(store):
    old = [(10.0, {"a": (1.0, 2.0, None)}) for _ in range(1_400)]
    new = [(500.0, {"a": (1.0, 2.0, None)}) for _ in range(100)]
    history(store, old + new)
    model = RemainingModel.from_store(store, WF, limit=100)
    assert model.runs == 100
    # the 100 ends, then each run's start and its step's start and end
    assert model.events_read == 100 + 100 * 3
    assert model.remaining().p05 == 500.0  # only the newest 100
    assert RemainingModel.from_store(store, WF, limit=10**9).runs == 1_500  # capped at MAX_LIMIT, not above
    assert MAX_LIMIT < 10**9
    for nothing in (0, -3):
        assert RemainingModel.from_store(store, WF, limit=nothing).runs == 0


def test_before_reads_only_the_runs_that_ended_before_it(store):
    history(store, [(60.0, {}) for _ in range(20)])
    cut = T0 + timedelta(hours=9, seconds=30)  # runs 0..8 ended before it; run 9 ends at 9 h + 60 s
    assert RemainingModel.from_store(store, WF, before=cut).runs == 9
    assert RemainingModel.from_store(store, WF, before=cut.replace(tzinfo=None)).runs == 9  # naive: UTC


def test_nan_negative_and_missing_durations_are_left_out(store):
    good = [(100.0, {"a": (10.0, 20.0, None)}) for _ in range(10)]
    history(store, good)
    events = []
    # a step that "ends" before it starts, and a run whose steps run past its end
    events += run_events("backwards", T0 - timedelta(days=1), 100.0, {"a": (50.0, -20.0, None)})
    events += run_events("past-end", T0 - timedelta(days=2), 100.0, {"a": (90.0, 30.0, None)})
    # no run.started: the duration its end says, when it is a number of at least 0 (the payload's model
    # refuses text)
    for name, said in (("nan", math.nan), ("negative", -5.0), ("missing", None)):
        body = {} if said is None else {"duration_s": said}
        events += run_events(name, T0 - timedelta(days=3), 100.0, {}, started=False, payload=body)
    events += run_events("no-start-ok", T0 - timedelta(days=4), 100.0, {}, started=False)
    # a step started and never ended
    events.append(Event("step.started", "open-step", WF, step="b", ts=T0 - timedelta(days=5)))
    events += run_events("open-step", T0 - timedelta(days=5, seconds=1), 100.0, {})
    store.append(events)
    records, _ = read_history(store, WF)
    by_id = {r.run_id: r for r in records}
    assert not {"nan", "negative", "missing"} & set(by_id)
    assert by_id["no-start-ok"].total == 100.0
    assert "b" not in by_id["open-step"].steps
    model = RemainingModel.from_store(store, WF)
    a = model.remaining("a")
    assert a.runs == 10 and (a.p05, a.p95) == (90.0, 90.0)  # the two broken pairs left out
    assert all(math.isfinite(s) and s >= 0 for s in model.remaining().samples)
    # the ten, and backwards, past-end, no-start-ok and open-step: their runs' own times are sound
    assert model.remaining().runs == 14


def test_runs_still_running_and_failed_runs_are_not_read(store):
    history(store, [(100.0, {"a": (0.0, 10.0, None)}) for _ in range(8)])
    running = [(None, {"a": (0.0, 5_000.0, None)}) for _ in range(20)]
    failed = [(2.0, {"a": (0.0, 1.0, None)}) for _ in range(20)]
    events = []
    for i, (total, steps) in enumerate(running):
        events += run_events(f"running-{i}", T0 + timedelta(days=9, hours=i), total, steps)
    for i, (total, steps) in enumerate(failed):
        events += run_events(f"failed-{i}", T0 + timedelta(days=8, hours=i), total, steps, end="run.failed")
    store.append(events)
    model = RemainingModel.from_store(store, WF)
    assert model.runs == 8 and model.remaining().p05 == model.remaining().p95 == 100.0


def test_another_workflows_run_of_the_same_id_and_a_fan_out_items_agent_are_not_mixed_in(store):
    history(store, [(100.0, {"a": (0.0, 40.0, "chosen")}) for _ in range(12)])
    noise = []
    for i in range(12):  # the same run ids in another DAG (keys of their own), with a slow step "a"
        elsewhere = run_events(f"run-{i:05d}", T0 + timedelta(hours=i), 900.0, {"a": (0.0, 800.0, "other")},
                               workflow="elsewhere")  # fmt: skip
        noise += [replace(e, key=f"elsewhere|{e.key}") for e in elsewhere]
        scope = {"run_id": f"run-{i:05d}", "workflow": WF, "step": "a", "try_number": 1}
        at = T0 + timedelta(hours=i, seconds=20)
        noise.append(Event("agent.selected", ts=at, agent="item-agent", payload={"agent": "item-agent",
                           "subtask": "item-1"}, discriminator="item-1#1", **scope))  # fmt: skip
    store.append(noise)
    model = RemainingModel.from_store(store, WF)
    a = model.remaining("a", "chosen")
    assert a.agent == "chosen" and a.runs == 12 and a.p95 == 100.0
    assert model.remaining("a", "item-agent").agent is None


def test_a_retried_step_counts_from_its_first_try(store):
    events = []
    for i in range(10):
        start = T0 + timedelta(hours=i)
        at = lambda s, start=start: start + timedelta(seconds=s)  # noqa: E731
        scope = {"run_id": f"r{i}", "workflow": WF, "step": "a"}
        events += [
            Event("run.started", f"r{i}", WF, ts=start),
            Event("step.started", ts=at(10), try_number=1, **scope),
            Event("step.failed", ts=at(20), try_number=1, payload={"will_retry": True}, **scope),
            Event("step.started", ts=at(50), try_number=2, **scope),
            Event(
                "agent.selected",
                ts=at(50),
                try_number=2,
                agent="second",
                payload={"agent": "second"},
                **scope,
            ),
            Event("step.succeeded", ts=at(80), try_number=2, **scope),
            Event("run.succeeded", f"r{i}", WF, ts=at(95)),
        ]
    store.append(events)
    a = RemainingModel(read_history(store, WF)[0], min_agent_runs=5).remaining("a", "second")
    assert (a.p05, a.p95, a.agent) == (85.0, 85.0, "second")  # 70 s from the first try's start, then 15 s


def test_the_pure_pieces():
    rng = np.random.default_rng(5)
    for n in (1, 2, 3, 7, 20, 333):
        values = np.sort(rng.lognormal(3.0, 1.0, n))
        levels = np.linspace(0.0, 1.0, 41)
        assert np.allclose(duration.quantiles(values, levels), np.quantile(values, levels, method="weibull"))
    assert duration.residual([math.nan, -1.0, math.inf, 3.0, 5.0], 1.0).tolist() == [2.0, 4.0]
    assert duration.residual([], 1.0).size == 0
    assert duration.residual([1.0, 2.0], 0.0, then=[math.nan, 1.0]).tolist() == [3.0]
    values = np.array([10.0, 10.0, 20.0])
    assert duration.survival(values, 10.0) == pytest.approx(0.5)  # two of three at most 10: 1 - 2/4
    assert duration.survival(values, 5.0) == pytest.approx(1.0 - 0.5 * 0.25)  # halfway to the first: 1 - 1/4
    assert duration.survival(np.array([]), 5.0) == 1.0
