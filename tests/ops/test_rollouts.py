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
