"""DAG integrity of every bundled template, and a dag.test() of each asserting what its steps produced."""

from __future__ import annotations

import json

import pytest
from demo.skills.leads import CONVERSION

from baton.alerts import on_task_failure
from tests.compile.test_cache import SENSOR_DAGS
from tests.conftest import ROOT, run_dag_test

DEMO = ROOT / "include" / "demo"
BUNDLED = sorted(p.stem for p in (ROOT / "dags" / "workflows").glob("*.yaml"))


def test_every_template_is_a_dag_without_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert BUNDLED == [
        "compliance_monitoring",
        "content_marketing",
        "customer_onboarding",
        "daily_operations",
        "hr_recruiting",
        "invoice_processing",
        "lead_followup",
        "lead_qualification",
        "market_research",
        "parallel_feature_delivery",
        "revenue_milestone",
        "supply_chain",
        "support_triage",
    ]
    # and the DAGs that compensate a past run and monitor, and one sensor DAG per template with a sensor
    own = ["baton_compensate", "baton_incident_escalation", "baton_monitor"]
    assert sorted(dagbag.dag_ids) == sorted([*own, *BUNDLED, *SENSOR_DAGS])


@pytest.mark.parametrize("dag_id", BUNDLED + SENSOR_DAGS)
def test_integrity(dagbag, dag_id):
    """Every DAG a template makes has an owner, tags, docs, retries, a deadline and alerts."""
    dag = dagbag.dags[dag_id]
    assert dag.doc_md and dag.description
    assert "baton" in dag.tags and len(dag.tags) >= 3
    assert dag.deadline, "a Deadline Alert (the template's deadline)"
    assert all(alert.name.startswith(f"{dag_id}: run within ") for alert in dag.deadline[:1])
    # Retries by default; a template may turn them off for a step a retry cannot help (a bad document).
    if dag_id in SENSOR_DAGS:
        assert all(task.retries >= 1 for task in dag.tasks)
    else:
        assert dag.default_args["retries"] >= 1
    for task in dag.tasks:
        assert task.owner not in ("", "airflow"), task.task_id
        assert task.execution_timeout is not None or dag_id in SENSOR_DAGS, task.task_id
        assert on_task_failure in (task.on_failure_callback or []) or task.task_id == "_compensate", (
            task.task_id
        )
    if dag_id not in SENSOR_DAGS:
        assert "v1" in dag.tags  # every bundled template is at version 1


def test_seed_schedules(dagbag):
    """09:00 daily operations; revenue at 18:00 or when its sensor fires; leads and compliance on
    their sensors; lead_followup when lead_qualification emits qualified_leads."""
    assert dagbag.dags["daily_operations"].timetable.summary == "0 9 * * *"
    revenue = dagbag.dags["revenue_milestone"].timetable
    assert revenue.timetable.summary == "0 18 * * *"
    assert [a.name for a in revenue.asset_condition.objects] == ["sensor.revenue_milestone"]
    for dag_id, assets in (
        ("lead_qualification", ["sensor.lead_qualification"]),
        ("compliance_monitoring", ["sensor.compliance_monitoring"]),
        ("lead_followup", ["qualified_leads"]),
    ):
        assert [a.name for a in dagbag.dags[dag_id].timetable.asset_condition.objects] == assets
    for dag_id in SENSOR_DAGS:
        sensor = dagbag.dags[dag_id]
        assert (type(sensor.timetable).__name__, sensor.max_active_runs) == ("ContinuousTimetable", 1)
        (task,) = sensor.tasks
        assert [o.name for o in task.outlets] == [f"sensor.{dag_id.removesuffix('__sensor')}"]
    emitting = dagbag.dags["lead_qualification"].get_task("value_leads")
    assert [o.name for o in emitting.outlets] == ["qualified_leads"]


def test_lead_qualification_scores_and_values_the_leads(dagbag, airflow_db):
    run, results = run_dag_test(
        dagbag.dags["lead_qualification"], run_conf={"region": "emea", "min_score": 40}
    )
    assert run.state == "success"
    emea = [
        lead for lead in json.loads((DEMO / "leads.json").read_text())["leads"] if lead["region"] == "emea"
    ]
    scores = results["score_leads"][1]
    assert (scores["region"], scores["total"]) == ("emea", len(emea))
    assert {lead["id"] for lead in scores["leads"]} == {lead["id"] for lead in emea}
    assert [lead["score"] for lead in scores["leads"]] == sorted(
        (lead["score"] for lead in scores["leads"]), reverse=True
    )
    for lead in scores["leads"]:
        expected_tier = "hot" if lead["score"] >= 75 else "warm" if lead["score"] >= 40 else "cold"
        assert lead["tier"] == expected_tier, lead
    qualified = [lead for lead in scores["leads"] if lead["tier"] != "cold"]
    assert scores["qualified"] == len(qualified) > 0

    value = results["value_leads"][1]
    expected = round(sum(lead["annual_budget"] * CONVERSION[lead["tier"]] for lead in qualified), 2)
    assert value["expected_revenue"] == pytest.approx(expected)
    assert value["qualified_leads"] == len(qualified)
    assert value["share_of_monthly_target"] == pytest.approx(expected / 12 / 4167, abs=1e-4)
    assert value["top_leads"][0]["expected_value"] == max(t["expected_value"] for t in value["top_leads"])


@pytest.mark.parametrize(("month", "reached"), [("2026-10", True), ("2026-09", False)])
def test_revenue_milestone_branches_on_the_target(dagbag, airflow_db, month, reached):
    run, results = run_dag_test(dagbag.dags["revenue_milestone"], run_conf={"month": month})
    assert run.state == "success"
    rows = [
        t for t in json.loads((DEMO / "revenue.json").read_text())["transactions"] if t["date"][:7] == month
    ]
    metrics = results["compute_metrics"][1]
    assert metrics["mtd_revenue"] == sum(t["amount"] for t in rows)
    assert metrics["milestone_reached"] is reached
    assert metrics["attainment_pct"] == round(metrics["mtd_revenue"] / 4167 * 100, 1)
    plan = results["update_plan"][1]
    assert plan["priority"] in ("low", "medium", "high")
    assert f"Month {month}: revenue ${metrics['mtd_revenue']}" in plan["summary"]
    state, announcement = results["announce_milestone"]
    if reached:
        assert state == "success"
        assert announcement["headline"] == f"Revenue milestone reached for {month}"
        assert f"${metrics['mtd_revenue']:,.0f}" in announcement["body"]
    else:
        assert (state, announcement) == ("skipped", None)


def test_daily_operations_classifies_systems_and_coordinates(dagbag, airflow_db):
    run, results = run_dag_test(dagbag.dags["daily_operations"])
    assert run.state == "success"
    snapshot = results["collect_status"][1]
    states = {system["system"]: system["state"] for system in snapshot["systems"]}
    assert states == {
        "order_intake": "healthy",
        "invoice_queue": "failing",
        "support_desk": "degraded",
        "lead_sync": "failing",
        "nightly_reports": "healthy",
    }
    assert (snapshot["healthy"], snapshot["degraded"], snapshot["failing"]) == (2, 1, 2)
    assert snapshot["needs_attention"] == ["invoice_queue", "support_desk", "lead_sync"]
    plan = results["coordinate"][1]
    assert plan["status"] in ("green", "amber", "red")
    assert plan["follow_ups"]
    assert "2 systems healthy, 1 degraded, 2 failing" in plan["summary"]


def test_parallel_feature_delivery_decomposes_routes_merges_and_reviews(dagbag, airflow_db):
    """Seed 003's example: one run, offline, with the events that tell how it went."""
    from baton.context import ContextStore
    from baton.events import EventStore
    from baton.events.replay import fold

    run, results = run_dag_test(dagbag.dags["parallel_feature_delivery"])
    assert run.state == "success", results
    plan = results["decompose"][1]
    assert plan["task"] == "user-authentication"
    assert [(s["id"], s["capabilities"]) for s in plan["subtasks"]] == [
        ("backend_api", ["api", "server"]),
        ("frontend_ui", ["ui", "react"]),
        ("integration_tests", ["testing", "integration"]),
    ]

    store = EventStore.from_airflow()
    events = [e for e in store.read(run.run_id)]
    kinds = [e.type for e in events]
    planned = next(e for e in events if e.type == "fanout.planned")
    assert planned.payload["subtasks"] == ["backend_api", "frontend_ui", "integration_tests"]
    assert (planned.payload["total"], planned.payload["concurrency"]) == (3, 3)

    routed = {e.payload["subtask"]: e for e in events if e.type == "agent.selected" and e.step == "implement"}
    assert {sid: e.agent for sid, e in routed.items()} == {
        "backend_api": "backend_specialist",
        "frontend_ui": "frontend_specialist",
        "integration_tests": "testing_specialist",
    }
    for e in routed.values():  # the only capable agent, ranked with its score and reasons
        assert e.payload["candidates"] == [e.agent]
        assert "prefer reliable: success" in e.payload["reason"] and e.agent in e.payload["scores"]
    assert kinds.count("subtask.succeeded") == 3 and "subtask.failed" not in kinds
    assert sorted(r["agent"] for r in results["implement"][1]["results"]) == sorted(
        routed_agents := ["backend_specialist", "frontend_specialist", "testing_specialist"]
    )
    assert results["implement"][1]["failures"] == []

    # The three specialists wrote the same keys from the same version: two conflicts per key, resolved.
    conflicts = [e.payload for e in events if e.type == "context.conflict"]
    resolved = [e.payload for e in events if e.type == "context.resolved"]
    for key, strategy in (("changes", "merge"), ("release_notes", "three_way_merge")):
        assert sum(c["key"] == key and c["strategy"] == strategy for c in conflicts) == 2, conflicts
        assert [r["outcome"] for r in resolved if r["key"] == key] == ["merged", "merged"]
    context = ContextStore(store).snapshot(run.run_id)
    assert sorted(context["changes"].value) == ["backend_api", "frontend_ui", "integration_tests"]
    assert context["release_notes"].value == (
        "# user-authentication\nbackend_api: done\nfrontend_ui: done\nintegration_tests: done\n"
    )
    for sid in ("backend_api", "frontend_ui", "integration_tests"):  # each subtask's own namespace
        assert context[f"changes[{sid}]"].value == {sid: context["changes"].value[sid]}

    integrate = next(e for e in events if e.type == "agent.selected" and e.step == "integrate")
    assert integrate.agent == "testing_specialist"  # the one agent with 'integration'
    review = results["review"][1]
    assert review == {"passed": True, "findings": [], "subtasks_done": 3, "subtasks_failed": 0}
    state = fold(run.run_id, events)
    assert state.step_states() == {
        "decompose": "success",
        "implement": "success",
        "integrate": "success",
        "review": "success",
    }
    assert set(routed_agents) <= set(state.agents)
