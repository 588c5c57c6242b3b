"""The loader: every healthy template loads; broken ones become one import error naming each file."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import BundleDagBag

from baton.compile.loader import ERRORS_DAG_ID, load_dags, load_template_errors
from tests.compile.test_cache import BUNDLED, SENSOR_DAGS

BROKEN = Path(__file__).parents[1] / "spec" / "broken"


@pytest.fixture
def folder(tmp_path, dags_folder) -> Path:
    """A copy of the bundled dags folder that a test may break."""
    shutil.copytree(dags_folder, tmp_path / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "dags"


def _bag(folder: Path) -> BundleDagBag:
    return BundleDagBag(dag_folder=str(folder), bundle_path=folder, bundle_name="test")


def test_healthy_templates_load_and_broken_ones_are_the_errors_files_import_error(folder):
    for name in ("unknown_agent.yaml", "dependency_cycle.yaml"):
        shutil.copy(BROKEN / name, folder / "workflows" / name)
    bag = _bag(folder)
    assert sorted(bag.dag_ids) == sorted([*BUNDLED, *SENSOR_DAGS, "baton_compensate"])
    assert list(bag.import_errors) == ["baton_template_errors.py"]
    error = bag.import_errors["baton_template_errors.py"]
    assert error.startswith(
        f"TemplateError: 2 Baton template file(s) could not be loaded ({len(BUNDLED)} healthy workflow(s) load from "
        "baton_workflows.py): workflows/dependency_cycle.yaml, workflows/unknown_agent.yaml."
    )
    assert "workflows/unknown_agent.yaml:9: steps[1].agent: unknown agent 'sales_bot'" in error
    assert "workflows/dependency_cycle.yaml:8: steps[0].needs: dependency cycle: a -> c -> b -> a" in error


def test_a_broken_roster_is_reported_with_every_workflow_that_needs_it(folder):
    roster = folder / "agents.yaml"
    roster.write_text(roster.read_text().replace("max_concurrency: 4", "max_concurrency: lots", 1))
    bag = _bag(folder)
    # Only the workflows whose steps are all skills load: they need no agent of the roster.
    skill_only = sorted(
        path.stem
        for path in (folder / "workflows").glob("*.yaml")
        if not re.search(r"^\s+(agent|route):", path.read_text(), re.M)
    )
    assert {"compliance_monitoring", "lead_followup"} <= set(skill_only)
    assert "lead_qualification" not in skill_only
    sensors = [f"{name}__sensor" for name in skill_only if f"{name}__sensor" in SENSOR_DAGS]
    assert sorted(bag.dag_ids) == sorted(["baton_compensate", *skill_only, *sensors])
    error = bag.import_errors["baton_template_errors.py"]
    assert "agents.yaml:11: agents[0].max_concurrency: Input should be a valid integer" in error
    assert (
        "workflows/lead_qualification.yaml:42: steps[0].agent: cannot resolve agent 'marketing_lead_generator':"
        " the roster has errors"
    ) in error


def test_no_errors_dag_when_everything_is_healthy(dags_folder):
    assert load_template_errors(dags_folder) == {}
    assert sorted(load_dags(dags_folder)) == sorted([*BUNDLED, *SENSOR_DAGS, "baton_compensate"])


def test_a_task_process_compiles_only_its_own_template(dags_folder, monkeypatch):
    # What the task runner sets before it parses the DAG file (airflow.sdk get_parsing_context).
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "lead_qualification")
    assert list(load_dags(dags_folder)) == ["lead_qualification", "lead_qualification__sensor"]
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "lead_qualification__sensor")
    assert list(load_dags(dags_folder)) == ["lead_qualification", "lead_qualification__sensor"]


def test_a_baton_bug_in_one_template_does_not_hide_the_others(folder, monkeypatch, caplog):
    import baton.compile.loader as loader

    real_plan, real_build = loader.plan_workflow, loader.build_dag

    def plan(workflow, roster, reads=None):
        if workflow.workflow == "daily_operations":
            raise RuntimeError("boom in plan")
        return real_plan(workflow, roster, reads)

    def build(plan):
        if plan.workflow.workflow == "revenue_milestone":
            raise RuntimeError("boom in build")
        return real_build(plan)

    monkeypatch.setattr(loader, "plan_workflow", plan)
    monkeypatch.setattr(loader, "build_dag", build)
    loaded = set(BUNDLED) - {"daily_operations", "revenue_milestone"} | {"baton_compensate"}
    loaded |= set(SENSOR_DAGS) - {"revenue_milestone__sensor"}
    assert sorted(load_dags(folder)) == sorted(loaded)
    assert "Building workflows/revenue_milestone.yaml failed" in caplog.text
    assert "RuntimeError: boom in build" in caplog.text
    # The errors file validates and plans, but builds no DAG: it names the planning failure.
    message = str(load_template_errors(folder)[ERRORS_DAG_ID].template_error)
    assert "workflows/daily_operations.yaml: RuntimeError: boom in plan (fix: this is a Baton bug" in message
    assert "revenue_milestone" not in message
