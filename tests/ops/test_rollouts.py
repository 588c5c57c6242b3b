"""Where a rollout stands (``baton rollout``, the API's ``/api/rollouts``) on SQLite and PostgreSQL: its share
and stage, each version's ended runs and failures, the runs in flight on each, the guardrails' words and the
decisions; a folder with no rollout, or a broken new version, says so rather than failing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from baton.cli import main as baton
from baton.coordination.rollout import Rollout
from baton.events.event import Event
from baton.ops.reports.rollouts import report
from baton.spec.rollout import Rollout as RolloutSpec
from tests.conftest import FIXTURES


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    dags = tmp_path / "dags"
    (dags / "workflows").mkdir(parents=True)
    shutil.copy(FIXTURES / "agent_paths" / "agents.yaml", dags / "agents.yaml")
    shutil.copytree(FIXTURES / "rollout", dags, dirs_exist_ok=True)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    monkeypatch.setenv("BATON_SPEC_CACHE", str(tmp_path / "cache"))
    return dags


def _connect(store, monkeypatch) -> None:
    url = store.engine.url.set(drivername=store.engine.url.drivername.split("+")[0])
    monkeypatch.setenv("AIRFLOW_CONN_BATON_STORE", url.render_as_string(hide_password=False))


def _history(store) -> None:
    """The fixture's rollout (50 %, min_runs 3, alpha 0.2): 30 runs, the new version failing every one; two
    more runs assigned and not ended."""
    spec = RolloutSpec(to="release_notes.v2.yaml", start=50, step=25, every="1h", min_runs=3, alpha=0.2)
    rollout = Rollout("release_notes", 1, 2, spec)
    for n in range(32):
        arm = rollout.assign(store, f"run-{n}")["arm"]
        if n < 30:
            kind = "run.failed" if arm == "canary" else "run.succeeded"
            store.append([Event(type=kind, run_id=f"run-{n}", workflow="release_notes", payload={})])


def test_the_report_has_each_versions_runs_in_flight_and_the_decisions(store, folder):
    _history(store)
    (found,) = report(store, folder)
    assert (found["workflow"], found["from_version"], found["to_version"]) == ("release_notes", 1, 2)
    assert (found["status"], found["share"], found["file"]) == (
        "rolled back",
        0.0,
        "versions/release_notes.v2.yaml",
    )
    assert found["runs"]["canary"]["failure_rate"] == 1.0 and found["runs"]["stable"]["failures"] == 0
    assert sum(found["in_flight"].values()) == 2
    assert found["in_flight"] == {"stable": 2, "canary": 0}  # assigned after the rollback
    assert [d["type"] for d in found["decisions"]] == ["rollout.started", "rollout.rolled_back"]
    assert found["guardrails"].startswith("stable stays: canary stopped")
    assert report(store, folder, workflow="other") == []


def test_baton_rollout_prints_it_and_json_is_one_document(store, folder, capsys, monkeypatch):
    _connect(store, monkeypatch)
    _history(store)
    assert baton(["rollout"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "release_notes: v1 -> v2 (versions/release_notes.v2.yaml): rolled back, 0 % of new runs on v2 (stage 0)"
    )
    assert "  v2: " in out and "failures 100.0%, 0 in flight" in out
    assert "rollout.rolled_back -> 0 %: v2 rolled back: stable stays" in out
    assert baton(["rollout", "--json", "--workflow", "release_notes"]) == 0
    (document,) = json.loads(capsys.readouterr().out)["rollouts"]
    assert document["status"] == "rolled back"


def test_no_rollout_and_a_broken_new_version_are_said(store, folder, capsys, monkeypatch):
    _connect(store, monkeypatch)
    (folder / "versions" / "release_notes.v2.yaml").write_text("workflow: [")
    assert baton(["rollout"]) == 0
    assert capsys.readouterr().out.startswith(
        "No rollout: no template declares 'rollout' (or its new version"
    )
    assert report(store, folder) == []


def test_a_gated_rollout_says_why_and_the_evaluations_report_has_each_recorded_one(
    store, folder, monkeypatch, capsys
):
    from baton.coordination.tasks import EVAL_STEP
    from baton.ops.reports.evaluations import report as evaluations

    spec = RolloutSpec(to="release_notes.v2.yaml", start=50, step=25, every="1h", min_runs=3)
    Rollout("release_notes", 1, 2, spec, gate="abc").assign(store, "run-0")
    (found,) = report(store, folder)
    assert (found["status"], found["share"]) == ("not started", 0.0)
    assert found["gated"].startswith("v2 (digest abc) has no passing evaluation of the workflow's dataset")
    _connect(store, monkeypatch)
    assert baton(["rollout", "--workflow", "release_notes"]) == 0
    assert f"  gated: {found['gated']}" in capsys.readouterr().out.splitlines()
    for n, passed in enumerate((False, True)):
        payload = {"at": f"2026-11-2{n}T10:00:00+00:00", "version": 2, "digest": "abc", "passed": passed,
                   "against": "stable", "cases": 10, "checks": 40, "held": 30 + 10 * n, "held_stable": 40,
                   "mean_difference": -0.25 * (1 - n), "interval": [-0.3, -0.2] if not passed else [0.0, 0.0],
                   "regressed": {} if passed else {"refund": ["triage.summary contains"]}}  # fmt: skip
        store.append([Event(type="evaluation.completed", run_id=f"evaluation:release_notes:v2:{n}",
                            workflow="release_notes", step=EVAL_STEP, payload=payload)])  # fmt: skip
    (mine,) = evaluations(store, folder, "release_notes")
    assert [(e["passed"], e["share"], e["share_stable"], e["regressed"]) for e in mine["evaluations"]] == [
        (True, 1.0, 1.0, {}),  # newest first
        (False, 0.75, 1.0, {"refund": ["triage.summary contains"]}),
    ]
    assert evaluations(store, folder) == []  # the fixture's folder has no dataset: no workflow to list
