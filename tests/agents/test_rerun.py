"""``baton replay RUN --rerun`` on a real run: the same templates reproduce it; edited ones diverge."""

from __future__ import annotations

import shutil

import pytest

from baton.cli import main as baton
from baton.events import EventStore
from baton.rerun import rerun
from tests.conftest import run_dag_test


@pytest.fixture(scope="module")
def recorded_run(dagbag, airflow_db):
    run, results = run_dag_test(dagbag.dags["revenue_milestone"], run_conf={"month": "2026-10"})
    assert run.state == "success" and results["announce_milestone"][0] == "success"
    return run.run_id


def _events() -> int:
    with EventStore.from_airflow().engine.connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM baton_events").scalar()


def test_the_unchanged_templates_reproduce_the_run_without_calling_a_model(recorded_run, dags_folder):
    before = _events()
    verdicts = rerun(EventStore.from_airflow(), recorded_run, dags_folder)
    assert sorted((v.step, v.same, v.detail) for v in verdicts) == [
        ("announce_milestone", True, "skill ran again"),
        ("compute_metrics", True, "skill ran again"),
        ("update_plan", True, "recorded output fits"),
    ]
    assert _events() == before, "a rerun records nothing and calls no model"


def test_an_edited_template_makes_the_affected_steps_diverge(recorded_run, dags_folder, tmp_path):
    edited = tmp_path / "dags"
    shutil.copytree(dags_folder, edited, ignore=shutil.ignore_patterns("__pycache__"))
    template = edited / "workflows" / "revenue_milestone.yaml"
    text = template.read_text()
    text = text.replace("default: 4167", "default: 5000")  # the target the skill measures against
    text = text.replace("Update the strategic plan.", "Update the strategic plan for the board.")
    text = text.replace("priority: {type: string, enum: [low, medium, high]}", "priority: {type: integer}")
    template.write_text(text)
    verdicts = {v.step: v for v in rerun(EventStore.from_airflow(), recorded_run, edited)}
    assert not verdicts["compute_metrics"].same
    assert verdicts["compute_metrics"].detail == "output differs in attainment_pct, target"
    # 5,313 still reaches a 5,000 target, so it runs; its text quotes the new attainment
    assert (verdicts["announce_milestone"].same, verdicts["announce_milestone"].detail) == (
        False,
        "output differs in body",
    )
    assert not verdicts["update_plan"].same
    assert verdicts["update_plan"].detail.startswith(
        "prompt changed; the output no longer fits the step's output fields: 1 validation error for UpdatePlanOutput"
    )


def test_the_cli_exits_1_when_a_step_diverges(recorded_run, dags_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags_folder))
    assert baton(["replay", recorded_run, "--rerun"]) == 0
    out = capsys.readouterr().out
    assert "rerun with the recorded model outputs (no model is called):" in out
    assert "DIVERGES" not in out
    edited = tmp_path / "dags"
    shutil.copytree(dags_folder, edited, ignore=shutil.ignore_patterns("__pycache__"))
    template = edited / "workflows" / "revenue_milestone.yaml"
    template.write_text(template.read_text().replace("default: 4167", "default: 9000"))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(edited))
    assert baton(["replay", recorded_run, "--rerun"]) == 1
    out = capsys.readouterr().out
    assert "compute_metrics          DIVERGES  output differs in" in out
    assert (
        "announce_milestone       DIVERGES  condition `steps.compute_metrics.milestone_reached` is now False"
        in out
    )
