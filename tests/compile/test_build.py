"""Unit tests of the compiler: what a template becomes in Airflow (params, retries, pools, schedule)."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from airflow.utils.types import DagRunType
from pendulum import datetime as pendulum_datetime

from baton.compile.build import build_dag
from baton.compile.timetables import UniqueCronTrigger
from baton.plan import describe, plan_workflow
from baton.spec import load_roster, load_workflow
from baton.spec.models import Workflow


@pytest.fixture(scope="module")
def roster(dags_folder):
    return load_roster(dags_folder / "agents.yaml")


@pytest.fixture(scope="module")
def revenue(dags_folder, roster):
    workflow = load_workflow(dags_folder / "workflows" / "revenue_milestone.yaml", roster)
    return build_dag(plan_workflow(workflow, roster))


def test_inputs_become_params_with_the_same_schema(revenue):
    params = revenue.params
    assert params["month"] == "latest"
    target = params.get_param("target")
    assert (target.schema, target.description) == (
        {"type": "number", "minimum": 1},
        "Monthly revenue target in USD.",
    )


def test_defaults_become_default_args(revenue):
    task = revenue.get_task("compute_metrics")
    assert (task.owner, task.retries, task.retry_exponential_backoff) == ("finance", 2, True)
    assert task.retry_delay == timedelta(seconds=30)
    assert task.max_retry_delay == timedelta(minutes=10)
    assert task.execution_timeout == timedelta(minutes=30)


def test_agents_run_in_their_pool_and_skills_in_the_default_pool(revenue, roster):
    assert revenue.get_task("update_plan").pool == "baton_agent_strategy_strategic_planner"
    assert revenue.get_task("announce_milestone").pool == "default_pool"
    assert plan_workflow(load_workflow_from(revenue, roster), roster).pools == {
        "baton_agent_finance_financial_analyst": 2,
        "baton_agent_strategy_strategic_planner": 2,
    }


def load_workflow_from(dag, roster):
    from tests.conftest import DAGS

    return load_workflow(DAGS / "workflows" / f"{dag.dag_id}.yaml", roster)


def test_dependencies_branches_and_docs(revenue):
    assert revenue.get_task("update_plan").upstream_task_ids == {"compute_metrics"}
    assert revenue.get_task("announce_milestone").step.spec.when == "steps.compute_metrics.milestone_reached"
    assert revenue.get_task("update_plan").step.reads == ("compute_metrics",)
    assert revenue.doc_md.startswith("Track month-to-date revenue")
    assert "| `update_plan` | agent strategy_strategic_planner | compute_metrics |" in revenue.doc_md
    assert revenue.tags == {"baton", "finance", "revenue", "strategy", "v1"}


def test_cron_schedule_runs_in_the_templates_timezone(revenue):
    # revenue_milestone runs at 18:00 and whenever its sensor emits: cron OR asset.
    assert type(revenue.timetable).__name__ == "AssetOrTimeSchedule"
    assert [a.name for a in revenue.timetable.asset_condition.objects] == ["sensor.revenue_milestone"]
    revenue = SimpleNamespace(timetable=revenue.timetable.timetable, catchup=revenue.catchup)
    assert isinstance(revenue.timetable, UniqueCronTrigger)
    paris = build_dag(
        plan_workflow(_minimal(schedule={"cron": "0 9 * * 1-5", "timezone": "Europe/Paris"}), None)
    )
    assert (paris.timetable.summary, paris.timetable.serialize()["timezone"]) == (
        "0 9 * * 1-5",
        "Europe/Paris",
    )
    assert (revenue.timetable.summary, revenue.timetable.serialize()["timezone"]) == ("0 18 * * *", "UTC")
    assert revenue.catchup is False


def _minimal(**extra):
    return Workflow.model_validate(
        {
            "workflow": "w",
            "version": 3,
            "description": "Demo.\nMore.",
            "owner": "o",
            "steps": [
                {
                    "id": "a",
                    "skill": "score_leads",
                    "retries": 5,
                    "execution_timeout": "2m",
                    "trigger_rule": "all_done",
                }
            ],
            **extra,
        }
    )


def test_step_overrides_and_unscheduled_workflow():
    dag = build_dag(plan_workflow(_minimal(), None))
    task = dag.get_task("a")
    assert (task.retries, task.execution_timeout, task.trigger_rule) == (5, timedelta(minutes=2), "all_done")
    assert dag.schedule is None
    assert dag.description == "Demo."


def test_optional_input_without_default_accepts_null_and_required_one_has_no_default():
    dag = build_dag(
        plan_workflow(
            _minimal(inputs={"note": {"type": "string"}, "account": {"type": "string", "required": True}}),
            None,
        )
    )
    assert dag.params.get_param("note").schema["type"] == ["string", "null"]
    assert dag.params.get_param("note").value is None
    assert not dag.params.get_param("account").has_value


def test_describe_lists_every_task(revenue, roster):
    rows = describe(plan_workflow(load_workflow_from(revenue, roster), roster))
    assert [row["task"] for row in rows] == ["compute_metrics", "update_plan", "announce_milestone"]
    assert rows[1]["output"] == ["actions", "priority", "summary"]


def test_failure_handling_compiles_to_airflows_own_parts():
    from airflow.sdk.definitions.deadline import AsyncCallback, DeadlineReference

    from baton.alerts import on_task_failure

    workflow = Workflow.model_validate(
        {
            "workflow": "orders",
            "version": 1,
            "description": "Orders.",
            "owner": "o",
            "deadline": "1h",
            "defaults": {"agent_timeout": "45s", "max_retry_delay": "2m"},
            "steps": [
                {"id": "plan", "skill": "score_leads", "compensate": "lead_value", "deadline": "10m"},
                {"id": "book", "needs": ["plan"], "skill": "lead_value", "agent_timeout": 5},
                {"id": "notify", "needs": ["book"], "skill": "score_leads"},
            ],
        }
    )
    dag = build_dag(plan_workflow(workflow, None))
    # The saga's task comes after every step, runs once all are done, and is tried again when a try dies
    # (tests/operators/test_saga.py proves a retry undoes nothing twice).
    saga = dag.get_task("_compensate")
    assert sorted(saga.upstream_task_ids) == ["book", "notify", "plan"]
    assert (saga.trigger_rule, saga.retries, saga.on_failure_callback) == ("all_done", 3, [])
    assert (saga.retry_delay, saga.retry_exponential_backoff) == (timedelta(seconds=5), 2.0)
    assert list(saga.plan.steps) == ["plan"]
    assert saga.plan.steps["plan"].spec.compensate.model_dump(by_alias=True) == {
        "skill": "lead_value",
        "agent": None,
        "instruction": "",
        "with": {},
        "retries": 2,
        "retry_delay": timedelta(seconds=1),
    }
    # Retries with a capped backoff; the agent call's own timeout is Baton's, not Airflow's.
    book, notify = dag.get_task("book"), dag.get_task("notify")
    assert (book.step.agent_timeout, notify.step.agent_timeout) == (5.0, 45.0)
    assert book.max_retry_delay == timedelta(minutes=2) and book.retry_exponential_backoff is True
    assert book.on_failure_callback == [on_task_failure]
    # One Deadline Alert for the run and one for the step, from the run's queued time.
    assert [(d.name, d.reference, d.interval) for d in dag.deadline] == [
        ("orders: run within 1:00:00", DeadlineReference.DAGRUN_QUEUED_AT, timedelta(hours=1)),
        ("orders: step plan within 0:10:00", DeadlineReference.DAGRUN_QUEUED_AT, timedelta(minutes=10)),
    ]
    assert all(isinstance(d.callback, AsyncCallback) for d in dag.deadline)
    assert [d.callback.kwargs for d in dag.deadline] == [
        {"workflow": "orders", "deadline_s": 3600.0},
        {"workflow": "orders", "deadline_s": 600.0, "step": "plan"},
    ]


def test_a_workflow_without_compensations_has_no_saga_task():
    dag = build_dag(plan_workflow(_minimal(), None))
    assert "_compensate" not in dag.task_ids
    assert dag.deadline == []


def test_a_step_reads_the_steps_its_with_and_writes_name():
    from baton.plan import step_reads

    workflow = Workflow.model_validate(
        {
            "workflow": "w",
            "version": 1,
            "description": "d",
            "owner": "o",
            "context": {"total": {}},
            "steps": [
                {"id": "a", "skill": "score_leads"},
                {"id": "b", "needs": ["a"], "skill": "lead_value"},
                {
                    "id": "c",
                    "needs": ["b"],
                    "skill": "http_post",
                    "with": {"url": "https://x/{{ steps.a.region }}"},
                    "writes": {"total": "steps.b"},
                },
            ],
        }
    )
    assert step_reads(workflow)["c"] == ("a", "b")  # a is not a direct need: read for the with


def test_scheduled_runs_of_two_dags_at_the_same_minute_get_different_ids_and_survive_serialization(revenue):
    from airflow.serialization.serialized_objects import DagSerialization

    scheduler_side = DagSerialization.from_dict(DagSerialization.to_dict(revenue)).timetable
    assert type(scheduler_side.timetable) is UniqueCronTrigger  # cron or asset (its sensor): the cron's ids
    assert scheduler_side.timetable.summary == "0 18 * * *"
    at = pendulum_datetime(2026, 11, 28, 18, 0, tz="UTC")
    ids = {scheduler_side.generate_run_id(run_type=DagRunType.SCHEDULED, run_after=at, data_interval=None)
           for _ in range(1000)}  # fmt: skip
    assert len(ids) == 1000
    assert all(re.fullmatch(r"scheduled__2026-11-28T18:00:00\+00:00_[A-Za-z0-9]{8}", i) for i in ids)
    assert DagRunType.from_run_id(ids.pop()) == DagRunType.SCHEDULED
