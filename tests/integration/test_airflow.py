"""A real Airflow: the dag processor files broken templates as import errors while the healthy ones
load; airflow standalone runs a workflow triggered through the REST API with a JWT."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from baton.standalone import Standalone

pytestmark = pytest.mark.integration

BROKEN = Path(__file__).parents[1] / "spec" / "broken"
HEALTHY = ["daily_operations", "lead_qualification", "revenue_milestone"]


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, dags_folder):
    """Bundled dags + two broken templates; a migrated home; one dag-processor pass; then standalone."""
    root = tmp_path_factory.mktemp("airflow")
    dags = root / "dags"
    shutil.copytree(dags_folder, dags, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("unknown_agent.yaml", "invalid_cron.yaml"):
        shutil.copy(BROKEN / name, dags / "workflows" / name)
    airflow = Standalone(root / "home", dags_folder=dags)
    migrate = airflow.command("airflow", "db", "migrate")
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    processor = airflow.command("airflow", "dag-processor", "-n", "1")
    assert processor.returncode == 0, processor.stderr[-2000:]
    airflow.processor_pass = processor
    try:
        yield airflow
    finally:
        airflow.stop()
        assert airflow.leftover_pids() == [], "an Airflow process outlived the test"


def _json_lines(stdout: str):
    """The JSON an ``airflow ... -o json`` command printed (warnings may come before it)."""
    return json.loads(next(line for line in stdout.splitlines() if line.startswith(("[", "{"))))


def test_the_real_dag_processor_loads_the_healthy_templates_and_files_the_broken_ones(airflow):
    listed = airflow.command("airflow", "dags", "list", "-o", "json")
    assert sorted(dag["dag_id"] for dag in _json_lines(listed.stdout)) == HEALTHY
    errors = _json_lines(airflow.command("airflow", "dags", "list-import-errors", "-o", "json").stdout)
    assert [error["filepath"] for error in errors] == ["baton_template_errors.py"]
    text = errors[0]["error"]
    assert "2 Baton template file(s) could not be loaded (3 healthy workflow(s) load" in text
    assert "workflows/unknown_agent.yaml:9: steps[1].agent: unknown agent 'sales_bot'" in text
    assert "workflows/invalid_cron.yaml:5: schedule: invalid cron expression '0 25 * * *'" in text


@pytest.fixture(scope="module")
def running(airflow):
    airflow.start()
    pools = airflow.command("baton", "pools", "sync")
    assert pools.returncode == 0, pools.stderr[-2000:]
    for dag_id in HEALTHY:
        airflow.wait_for_dag(dag_id)
    return airflow


def test_rest_trigger_with_conf_runs_the_workflow_and_its_outputs_are_readable(running):
    response = running.trigger("lead_qualification", {"region": "na", "min_score": 40})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    assert running.wait_for_run("lead_qualification", run_id)["state"] == "success"
    path = f"/dags/lead_qualification/dagRuns/{run_id}/taskInstances"
    states = {ti["task_id"]: ti["state"] for ti in running.api("GET", path).json()["task_instances"]}
    assert states == {"score_leads": "success", "value_leads": "success"}
    entry = running.api("GET", f"{path}/score_leads/xcomEntries/return_value", params={"deserialize": True})
    assert entry.status_code == 200, entry.text
    scores = entry.json()["value"]
    scores = json.loads(scores) if isinstance(scores, str) else scores
    assert scores["region"] == "na"
    assert {lead["region"] for lead in scores["leads"]} == {"na"}
    assert scores["qualified"] == sum(lead["score"] >= 40 for lead in scores["leads"])


def test_conf_that_breaks_the_inputs_schema_is_refused_naming_the_field(running):
    response = running.trigger("lead_qualification", {"region": "mars"})
    assert 400 <= response.status_code < 500
    assert "region" in response.text and "mars" in response.text, response.text
    response = running.trigger("lead_qualification", {"min_score": 250})
    assert 400 <= response.status_code < 500
    assert "min_score" in response.text and "250" in response.text, response.text


def test_import_errors_are_on_the_rest_api_too(running):
    errors = running.api("GET", "/importErrors").json()["import_errors"]
    assert [error["filename"] for error in errors] == ["baton_template_errors.py"]
    assert "unknown agent 'sales_bot'" in errors[0]["stack_trace"]


def test_scheduled_workflows_run_on_their_schedule(running):
    dag = running.api("GET", "/dags/daily_operations").json()
    assert dag["is_paused"] is False
    # Unpaused without catchup, the scheduler runs the latest 09:00 at once.
    runs = running.api("GET", "/dags/daily_operations/dagRuns", params={"run_type": "scheduled"}).json()
    assert [run["logical_date"][11:16] for run in runs["dag_runs"]] == ["09:00"]
    run = running.wait_for_run("daily_operations", runs["dag_runs"][0]["dag_run_id"])
    assert run["state"] == "success"
    assert dag["timetable_summary"] == "0 9 * * *"
    after = datetime.fromisoformat(dag["next_dagrun_run_after"])
    now = datetime.now(UTC)
    assert after.hour == 9 and after.minute == 0
    assert now - timedelta(days=1) <= after <= now + timedelta(days=1)
