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


# Baton's own DAGs in the folder: the compensator (from the loader), the monitor (dags/baton_monitor.py) and
# the incident escalation (dags/baton_incident_escalation.py)
OWN_DAGS = ["baton_compensate", "baton_incident_escalation", "baton_monitor"]


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
    assert sorted(bag.dag_ids) == sorted([*BUNDLED, *SENSOR_DAGS, *OWN_DAGS])
    assert list(bag.import_errors) == ["baton_template_errors.py"]
    error = bag.import_errors["baton_template_errors.py"]
    assert error.startswith(
        f"TemplateError: 2 Baton template file(s) could not be loaded ({len(BUNDLED)} healthy workflow(s) load from "
        "baton_workflows.py): workflows/dependency_cycle.yaml, workflows/unknown_agent.yaml."
    )
    assert "workflows/unknown_agent.yaml:9: steps[1].agent: unknown agent 'sales_bot'" in error
    assert "workflows/dependency_cycle.yaml:8: steps[0].needs: dependency cycle: a -> c -> b -> a" in error


def _naming(folder: Path, agent: str) -> list[str]:
    """The bundled workflows whose template names ``agent`` (a step's or a compensation's agent)."""
    return sorted(
        path.stem
        for path in (folder / "workflows").glob("*.yaml")
        if re.search(rf"^\s+agent:\s*{agent}\s*$", path.read_text(), re.M)
    )


def test_a_broken_agent_fails_only_the_workflows_that_name_it(folder):
    roster = folder / "agents.yaml"
    text = roster.read_text()
    line = text[: text.index("max_concurrency: 4")].count("\n") + 1
    roster.write_text(text.replace("max_concurrency: 4", "max_concurrency: lots", 1))
    naming = _naming(folder, "marketing_lead_generator")
    assert naming == ["lead_qualification"]
    bag = _bag(folder)
    healthy = sorted(set(BUNDLED) - set(naming))
    sensors = [f"{name}__sensor" for name in healthy if f"{name}__sensor" in SENSOR_DAGS]
    assert sorted(bag.dag_ids) == sorted([*OWN_DAGS, *healthy, *sensors])
    error = bag.import_errors["baton_template_errors.py"]
    assert f"agents.yaml:{line}: agents[0].max_concurrency: Input should be a valid integer" in error
    assert (
        "workflows/lead_qualification.yaml:44: steps[0].agent: agent 'marketing_lead_generator' is broken in the "
        "roster (agents[0].max_concurrency: Input should be a valid integer, unable to parse string as an "
        "integer) (fix: fix its entry in dags/agents.yaml (baton validate lists its errors))"
    ) in error


def test_a_duplicated_agent_fails_only_the_workflows_that_name_it(folder):
    roster = folder / "agents.yaml"
    text = roster.read_text()
    start = text.index("  - name: finance_revenue_tracker")
    end = text.index("\n  - name:", start + 1) + 1
    roster.write_text(text[:end] + text[start:end] + text[end:])  # the entry twice, one after the other
    naming = _naming(folder, "finance_revenue_tracker")
    assert naming and len(naming) < len(BUNDLED)
    bag = _bag(folder)
    assert set(bag.dag_ids) & set(naming) == set()
    assert set(BUNDLED) - set(naming) <= set(bag.dag_ids)
    error = bag.import_errors["baton_template_errors.py"]
    assert "agents[1].name: duplicate agent name 'finance_revenue_tracker' (also at agents[2])" in error
    assert "agents[2].name: duplicate agent name 'finance_revenue_tracker' (also at agents[1])" in error
    for name in naming:
        assert f"workflows/{name}.yaml" in error


def test_a_roster_that_is_not_a_roster_fails_every_workflow_naming_an_agent(folder):
    (folder / "agents.yaml").write_text("agents: [name: a\n")
    bag = _bag(folder)
    skill_only = sorted(
        path.stem
        for path in (folder / "workflows").glob("*.yaml")
        if not re.search(r"^\s+(agent|route):", path.read_text(), re.M)
    )
    assert {"compliance_monitoring", "lead_followup"} <= set(skill_only)
    sensors = [f"{name}__sensor" for name in skill_only if f"{name}__sensor" in SENSOR_DAGS]
    assert sorted(bag.dag_ids) == sorted([*OWN_DAGS, *skill_only, *sensors])
    error = bag.import_errors["baton_template_errors.py"]
    assert "agents.yaml:1: YAML syntax error: " in error
    assert (
        "workflows/lead_qualification.yaml:44: steps[0].agent: cannot resolve agent 'marketing_lead_generator':"
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


def test_the_compensators_task_process_compiles_no_template(folder, monkeypatch, caplog):
    # Its task reads the past run and its template itself (saga_for_run): compiling the folder there only
    # cost CPU (0.1 s on the bundled one) and logged every broken template again, once per compensation.
    shutil.copy(BROKEN / "unknown_agent.yaml", folder / "workflows" / "unknown_agent.yaml")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "baton_compensate")
    with caplog.at_level("WARNING", logger="baton.compile.loader"):
        dags = load_dags(folder)
    assert list(dags) == ["baton_compensate"]
    assert [task.task_id for task in dags["baton_compensate"].tasks] == ["compensate"]
    assert caplog.records == []
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID")
    with caplog.at_level("WARNING", logger="baton.compile.loader"):
        assert "baton_compensate" in load_dags(folder)  # the DAG processor still gets it with the others
    assert [r.getMessage().splitlines()[1][:28] for r in caplog.records] == ["workflows/unknown_agent.yaml"]


def test_a_baton_bug_in_one_template_does_not_hide_the_others(folder, monkeypatch, caplog):
    import baton.compile.loader as loader

    real_plan, real_build = loader.plan_workflow, loader.build_dag

    def plan(workflow, roster, reads=None, group=""):
        if workflow.workflow == "daily_operations":
            raise RuntimeError("boom in plan")
        return real_plan(workflow, roster, reads, group)

    def build(plan, canary=None, gated=False):
        if plan.workflow.workflow == "revenue_milestone":
            raise RuntimeError("boom in build")
        return real_build(plan, canary, gated)

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
