"""``baton verify`` (issue 18): the store reconciled with Airflow's record, after a real ``dag.test()`` run
whose history is then damaged on purpose; and :func:`reconcile` case by case."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete

from baton.cli import main as baton
from baton.events import EventStore, schema
from baton.events.event import Event
from baton.ops.verify import AirflowRun, AirflowTry, StoreRun, reconcile
from tests.conftest import FIXTURE_DAGS, run_dag_test_in_subprocess

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
GHOST = "manual__ghost_run_of_another_deployment"


def _stored(run_id: str, *facts: tuple[str, str | None, int], workflow: str = "w") -> StoreRun:
    return StoreRun(run_id, workflow, set(facts))


def test_a_consistent_run_has_no_finding():
    run = AirflowRun("w", "r1", "success", tries=(AirflowTry("a", -1, 1, "success"),))
    stored = _stored(
        "r1", ("run.started", None, -1), ("step.succeeded", "a", -1), ("run.succeeded", None, -1)
    )
    assert reconcile([run], {"r1": stored}, NOW) == []


def test_each_disagreement_is_found_and_only_the_safe_ones_carry_a_repair():
    started = NOW - timedelta(hours=1)
    airflow = [
        AirflowRun("w", "unheard", "success", start_date=started, end_date=NOW),
        AirflowRun(
            "w",
            "no_end",
            "failed",
            tries=(AirflowTry("a", 2, 3, "failed"), AirflowTry("b", -1, 1, "skipped")),
        ),
        AirflowRun("w", "differs", "failed"),
        AirflowRun("w", "stuck", "running", start_date=NOW - timedelta(hours=7)),
        AirflowRun("w", "busy", "running", start_date=NOW - timedelta(hours=1)),
    ]
    store = {
        "no_end": _stored("no_end", ("run.started", None, -1), ("step.skipped", "b", -1)),
        "differs": _stored("differs", ("run.started", None, -1), ("run.succeeded", None, -1)),
        "stuck": _stored("stuck", ("run.started", None, -1)),
        "busy": _stored("busy", ("run.started", None, -1)),
        GHOST: _stored(GHOST, ("run.started", None, -1), ("saga.started", "_compensate", -1)),
    }
    found = {(f.kind, f.run_id, f.step): f for f in reconcile(airflow, store, NOW)}
    assert sorted(found) == sorted(
        [
            ("missing_run", "unheard", None),
            ("missing_run_end", "unheard", None),
            ("missing_run_end", "no_end", None),
            ("missing_step_end", "no_end", "a"),
            ("end_differs", "differs", None),
            ("stuck", "stuck", None),
            ("unknown_to_airflow", GHOST, None),
            ("saga_unfinished", GHOST, "_compensate"),
        ]
    )
    step = found[("missing_step_end", "no_end", "a")].repair
    assert (step.type, step.map_index, step.try_number, step.payload["recorded_by"]) == (
        "step.failed",
        2,
        3,
        "verify",
    )
    assert found[("missing_run_end", "unheard", None)].repair.payload == {
        "duration_s": 3600.0,
        "recorded_by": "verify",
    }
    assert (
        found[("end_differs", "differs", None)].detail == "Airflow says failed, the store says run.succeeded"
    )
    assert found[("stuck", "stuck", None)].detail == "running for 7.0 h in Airflow"
    reported = [f for f in found.values() if f.repair is None]
    assert {f.kind for f in reported} == {"end_differs", "stuck", "unknown_to_airflow", "saga_unfinished"}


def test_a_repair_has_the_key_the_listener_would_have_used():
    run = AirflowRun("w", "r", "success", tries=(AirflowTry("a", -1, 1, "success"),))
    (end, step) = [f.repair for f in reconcile([run], {"r": _stored("r", ("run.started", None, -1))}, NOW)]
    assert end.key == Event(type="run.succeeded", run_id="r", workflow="w").key
    assert step.key == Event(type="step.succeeded", run_id="r", workflow="w", step="a", try_number=1).key


def test_many_runs_reconcile_in_one_pass():
    airflow = [AirflowRun("w", f"r{i}", "success") for i in range(20_000)]
    store = {
        f"r{i}": _stored(f"r{i}", ("run.started", None, -1), ("run.succeeded", None, -1))
        for i in range(20_000)
    }
    store["r7"].facts.discard(("run.succeeded", None, -1))
    assert [(f.kind, f.run_id) for f in reconcile(airflow, store, NOW)] == [("missing_run_end", "r7")]


@pytest.mark.parametrize(
    ("since", "message"),
    [
        ("seven days", "'seven days' is not a duration: write e.g. 30m, 12h or 7d"),
        ("9999d", "'9999d' is out of range: from 1s to 366d"),
        ("0s", "'0s' is out of range"),
        ("x" * 10_000, "is not a duration"),
    ],
)
def test_a_bad_since_is_refused_with_the_fix(since, message, capsys):
    with pytest.raises(SystemExit) as exit:
        baton(["verify", "--since", since])
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def damaged(airflow_db):
    """A real run of shared_context, then its history damaged: its run end and one step's success
    deleted from the store, and a run of another deployment, with an unfinished saga, planted."""
    run, results, output = run_dag_test_in_subprocess(FIXTURE_DAGS, "baton-test-fixtures", "shared_context")
    assert run.state == "success", output[-3000:]
    store = EventStore.from_airflow()
    e = schema.events.c
    with store.engine.begin() as conn:
        conn.execute(delete(schema.events).where(e.run_id == run.run_id, e.type == "run.succeeded"))
        conn.execute(
            delete(schema.events).where(
                e.run_id == run.run_id, e.type == "step.succeeded", e.step == "frontend"
            )
        )
    store.append(
        [
            Event(type="run.started", run_id=GHOST, workflow="shared_context"),
            Event(type="saga.started", run_id=GHOST, workflow="shared_context", step="_compensate"),
        ]
    )
    return run, store


def _lines(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_verify_repairs_what_airflow_recorded_and_reports_the_rest(damaged, capsys):
    run, store = damaged
    assert baton(["verify", "--dry-run"]) == 1
    dry = _lines(capsys)
    assert (
        f"REPORTED  missing_run_end    shared_context  {run.run_id}: ended success in Airflow; the store has no end"
        in dry
    )
    assert list(store.read(run.run_id, types=["run.succeeded"])) == []  # a dry run appends nothing

    assert baton(["verify"]) == 1
    printed = _lines(capsys)
    assert (
        f"repaired  missing_run_end    shared_context  {run.run_id}: ended success in Airflow; the store has no end"
        in printed
    )
    assert (
        f"repaired  missing_step_end   shared_context  {run.run_id} frontend: success in Airflow (try 1); "
        "the store has no step.succeeded"
    ) in printed
    assert (
        f"REPORTED  unknown_to_airflow shared_context  {GHOST}: the store has it; Airflow has no such run"
        in printed
    )
    assert any(
        line.startswith("REPORTED  saga_unfinished") and f"baton compensate {GHOST}" in line
        for line in printed
    )
    (end,) = store.read(run.run_id, types=["run.succeeded"])
    assert end.payload["duration_s"] > 0
    (frontend,) = [ev for ev in store.read(run.run_id, types=["step.succeeded"]) if ev.step == "frontend"]
    assert frontend.payload["recorded_by"] == "verify"

    # Repaired once: a second pass finds only what a person must decide, and appends nothing.
    before = len(list(store.read(run.run_id)))
    assert baton(["verify", "--format", "json"]) == 1
    rows = [json.loads(line) for line in _lines(capsys)]
    assert {r["kind"] for r in rows if "kind" in r and r["run_id"] in (run.run_id, GHOST)} == {
        "unknown_to_airflow",
        "saga_unfinished",
    }
    assert rows[-1]["summary"].endswith("left for a person")
    assert len(list(store.read(run.run_id))) == before
