"""A rollout's decisions on SQLite and PostgreSQL, without Airflow: runs are assigned by their hash under the
share and keep their version, the share grows stage by stage while the guardrails hold, a new version that
fails where the old one does not is rolled back by itself with why, and runs that start at once record each
decision once."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from baton.coordination.rollout import EVAL_STEP, VERSION_TASK, Rollout, replay
from baton.events.event import Event
from baton.spec.rollout import Rollout as RolloutSpec

T0 = datetime.now(UTC)  # the runs' own looks (assign) are at the real time, just after it


def _rollout(**settings) -> Rollout:
    spec = RolloutSpec(
        to="notes.v2.yaml", **{"start": 20, "step": 40, "every": "1h", "min_runs": 5} | settings
    )
    return Rollout("notes", 1, 2, spec)


def _end(store, run_id: str, ok: bool, seconds: float = 1.0) -> None:
    kind = "run.succeeded" if ok else "run.failed"
    store.append([Event(type=kind, run_id=run_id, workflow="notes", payload={"duration_s": seconds})])


def _runs(store, rollout, first: int, count: int, fails: dict[str, float], rng, now=None) -> list[str]:
    """``count`` runs from number ``first``: each assigned, then ended by its version's failure rate."""
    arms = []
    for n in range(first, first + count):
        if now is not None:
            rollout.decide(store, now)
        arm = rollout.assign(store, f"run-{n}")["arm"]
        _end(store, f"run-{n}", ok=bool(rng.random() >= fails[arm]))
        arms.append(arm)
    return arms


def test_runs_take_the_new_version_by_share_and_keep_it_on_a_retry(store):
    rollout = _rollout(start=30)
    arms = [rollout.assign(store, f"run-{n}")["arm"] for n in range(400)]
    share = arms.count("canary") / len(arms)
    assert 0.22 < share < 0.38, share  # 30 % by the runs' hashes
    again = rollout.assign(store, "run-7")
    assert again["arm"] == arms[7] and again["version"] == (2 if arms[7] == "canary" else 1)
    assert again["how"] == "by the run's hash at 30 %"
    started = [e for e in store.read("rollout:notes:v1->v2") if e.type == "rollout.started"]
    assert [(e.payload["share"], e.payload["from_version"], e.payload["to_version"]) for e in started] == [
        (30.0, 1, 2)
    ]
    assigned = list(store.read("run-7", types=["version.assigned"]))
    assert len(assigned) == 1 and assigned[0].step == VERSION_TASK and assigned[0].template_version in (1, 2)


def test_the_share_grows_stage_by_stage_while_the_guardrails_hold(store):
    rollout, rng = _rollout(), np.random.default_rng(1)
    healthy = {"stable": 0.02, "canary": 0.02}
    rollout.decide(store, T0)
    _runs(store, rollout, 0, 40, healthy, rng)
    early = rollout.decide(store, T0 + timedelta(minutes=30))
    assert (early.status, early.share, early.stage) == ("running", 20.0, 0)  # the stage lasts an hour
    later = rollout.decide(store, T0 + timedelta(minutes=61))
    assert (later.status, later.share, later.stage) == ("running", 60.0, 1)
    assert later.decisions[-1]["type"] == "rollout.advanced"
    assert "stage 0 at 20 % held for 1:00:00" in later.decisions[-1]["reason"]
    # the next stage needs min_runs of the new version's runs assigned in it, not the earlier ones
    assert rollout.decide(store, T0 + timedelta(hours=3)).share == 60.0
    _runs(store, rollout, 40, 30, healthy, rng)
    done = rollout.decide(store, T0 + timedelta(hours=3))
    assert (done.status, done.share) == ("completed", 100.0)
    assert [d["type"] for d in done.decisions] == ["rollout.started", "rollout.advanced", "rollout.completed"]
    assert rollout.assign(store, "run-after")["arm"] == "canary"


def test_a_new_version_that_fails_is_rolled_back_by_itself_with_why(store):
    rollout, rng = _rollout(start=50, min_runs=3, alpha=0.2), np.random.default_rng(2)
    arms = _runs(store, rollout, 0, 60, {"stable": 0.0, "canary": 1.0}, rng)
    state = replay(store, "notes", 1, 2)
    assert (state.status, state.share) == ("rolled back", 0.0)
    back = next(d for d in state.decisions if d["type"] == "rollout.rolled_back")
    # the success test (two-sided, e-value over pairs of runs) saw it first; the failure guardrail would next
    assert back["reason"].startswith(
        "v2 rolled back: stable stays: canary stopped: stable does better (success 0.0%"
    )
    assert "e-value" in back["reason"] and ">= 5 (1 / alpha 0.2" in back["reason"]
    assert back["counts"]["canary"]["failure_rate"] == 1.0 and back["counts"]["stable"]["failure_rate"] == 0.0
    # decided within tens of runs, and from then on every new run takes the current version
    first_stable_only = arms.index("canary") + back["counts"]["canary"]["runs"] * 2 + 5
    assert back["counts"]["canary"]["runs"] <= 20, back["counts"]
    assert set(arms[first_stable_only:]) == {"stable"}
    assert rollout.assign(store, "run-late")["how"] == "rolled back"
    # a run assigned before the rollback keeps its version
    kept = rollout.assign(store, f"run-{arms.index('canary')}")
    assert kept["arm"] == "canary"


def test_a_healthy_new_version_is_not_rolled_back_under_daily_looks(store):
    rollout, rng = _rollout(start=50, min_runs=3, alpha=0.2, every="1h"), np.random.default_rng(3)
    for day in range(5):  # a look at every run start, for five stages
        _runs(
            store, rollout, day * 40, 40, {"stable": 0.1, "canary": 0.1}, rng, now=T0 + timedelta(hours=day)
        )
    state = replay(store, "notes", 1, 2)
    assert state.status in ("running", "completed") and "rollout.rolled_back" not in [
        d["type"] for d in state.decisions
    ]


def test_a_run_whose_steps_started_before_the_rollout_stays_on_the_current_version(store):
    store.append([Event(type="step.started", run_id="old-run", workflow="notes", step="draft", try_number=1)])
    chosen = _rollout(start=100).assign(store, "old-run")
    assert (chosen["arm"], chosen["how"]) == ("stable", "its steps started before the rollout")


def test_runs_starting_at_once_record_each_decision_once(store):
    rollout = _rollout(start=50, min_runs=1)
    rollout.decide(store, T0)
    _runs(store, rollout, 0, 10, {"stable": 0.0, "canary": 0.0}, np.random.default_rng(4))
    later = T0 + timedelta(hours=2)
    with ThreadPoolExecutor(8) as pool:
        states = list(pool.map(lambda _: rollout.decide(store, later), range(8)))
    assert {s.share for s in states} == {90.0}
    kinds = [d["type"] for d in replay(store, "notes", 1, 2).decisions]
    assert kinds == ["rollout.started", "rollout.advanced"]
    with ThreadPoolExecutor(8) as pool:
        chosen = list(pool.map(lambda n: rollout.assign(store, f"burst-{n % 4}")["arm"], range(16)))
    assert all(chosen[n] == chosen[n % 4] for n in range(16))
    assert len(list(store.read("burst-1", types=["version.assigned"]))) == 1


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"to": "../workflows/x.yaml"}, "String should match pattern"),
        ({"to": "/etc/passwd"}, "String should match pattern"),
        ({"to": "x.json"}, "String should match pattern"),
        ({"to": "x" * 300 + ".yaml"}, "String should match pattern"),
        ({"to": "x.yaml", "start": 0}, "greater than 0"),
        ({"to": "x.yaml", "start": 101}, "less than or equal to 100"),
        ({"to": "x.yaml", "step": float("nan")}, "Input should be a finite number"),
        ({"to": "x.yaml", "start": float("inf")}, "Input should be a finite number"),
        ({"to": "x.yaml", "every": "30s"}, "a stage lasts at least a minute"),
        ({"to": "x.yaml", "min_runs": 0}, "greater than or equal to 1"),
        ({"to": "x.yaml", "alpha": 0.9}, "less than or equal to 0.5"),
        ({"to": "x.yaml", "share": 10}, "Extra inputs are not permitted"),
    ],
)
def test_a_bad_rollout_is_refused_naming_the_field(settings, said):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as raised:
        RolloutSpec.model_validate(settings)
    assert said in str(raised.value)


def _evaluated(store, passed: bool, digest: str = "d1", version: int = 2, **payload) -> None:
    """What `baton eval notes --version 2 --record` appends (baton.evaluate.report.evaluation_event)."""
    body = {"version": version, "digest": digest, "passed": passed, "cases": 10, "checks": 40, "held": 40}
    store.append(
        [
            Event(
                type="evaluation.completed",
                run_id=f"evaluation:notes:v{version}:{uuid.uuid4().hex[:12]}",  # a new fact each time
                workflow="notes",
                step=EVAL_STEP,
                payload={**body, "against": "stable", **payload},
            )
        ]
    )


def test_a_gated_rollout_starts_only_once_its_new_version_as_built_passed_its_dataset(store):
    spec = RolloutSpec(to="notes.v2.yaml", start=50, step=50, every="1h", min_runs=5)
    rollout = Rollout("notes", 1, 2, spec, gate="d1")
    first = rollout.assign(store, "run-0")
    assert (first["arm"], first["version"]) == ("stable", 1)
    assert first["how"] == (
        "v2 (digest d1) has no passing evaluation of the workflow's dataset against v1: every run takes v1 "
        "until `baton eval notes --version 2 --record` passes"
    )
    # A failed evaluation, one of another digest (the file changed since), one of an arm, or one not against
    # the current version do not open it either; each look records the gate once for the digest.
    _evaluated(store, passed=False, regressed={"refund": ["triage.summary contains"]})
    _evaluated(store, passed=True, digest="d0")
    _evaluated(store, passed=True, variant="triage:brief")
    _evaluated(store, passed=True, against=None)
    arms = [rollout.assign(store, f"run-{n}")["arm"] for n in range(1, 40)]
    assert set(arms) == {"stable"}
    gated = list(store.read("rollout:notes:v1->v2", types=["rollout.gated"]))
    assert [(e.payload["digest"], e.step) for e in gated] == [("d1", VERSION_TASK)]
    assert not list(store.read("rollout:notes:v1->v2", types=["rollout.started"]))
    _evaluated(store, passed=True)
    arms = [rollout.assign(store, f"run-{n}")["arm"] for n in range(40, 240)]
    assert 0.35 < arms.count("canary") / len(arms) < 0.65  # started at 50 % by the runs' hashes
    assert rollout.assign(store, "run-3")["arm"] == "stable"  # a run keeps the version it was given
    # An ungated rollout (a workflow without a dataset) starts at its first look, as before.
    assert Rollout("other", 1, 2, spec).assign(store, "run-x")["how"] == "by the run's hash at 50 %"
