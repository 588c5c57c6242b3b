"""Baton's weight rule (baton.queue) and its policy hook (baton.plugin.policy): the start-by time of a task from
its level, its age bound, its deadline and the predicted duration; what Airflow's own machinery does with them
(serialization, a task instance's weight, the mutation hook registered by the installed package)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from airflow.models.taskinstance import TaskInstance
from airflow.sdk.definitions.param import ParamValidationError
from airflow.serialization.serialized_objects import DagSerialization

from baton import queue
from baton.compile.build import build_dag
from baton.coordination.prediction import Remaining
from baton.plan import plan_workflow
from baton.queue import (
    REFERENCE,
    RULE,
    TOP,
    BatonPriority,
    is_baton_rule,
    run_deadline_s,
    run_level,
    standing,
    task_standing,
    template_priority,
    weight_of,
)
from baton.spec.models import Workflow
from baton.spec.priority import PARAM, default_max_wait, wait_at

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _remaining(p50: float, p90: float, runs: int = 40) -> Remaining:
    return Remaining(p10=p50 / 2, p50=p50, p90=p90, p95=p90 * 1.1, runs=runs)


def _stand(level=50, queued=T0, deadline_s=None, remaining=None, now=None, wait_s=None):
    return standing(
        level=level,
        level_from="template",
        wait_s=wait_s if wait_s is not None else default_max_wait(level).total_seconds(),
        queued_at=queued,
        deadline_s=deadline_s,
        remaining=remaining,
        now=now or queued,
    )


def test_the_weight_is_the_start_by_time_earlier_heavier_to_the_second_within_airflows_integer():
    assert weight_of(REFERENCE) == TOP
    assert weight_of(REFERENCE + timedelta(seconds=1)) == TOP - 1
    assert weight_of(T0) > weight_of(T0 + timedelta(seconds=1))
    assert weight_of(T0) == weight_of(T0 + timedelta(milliseconds=999)) + 0  # the same second: a tie
    assert weight_of(datetime(1900, 1, 1, tzinfo=UTC)) == 2**31 - 1
    assert weight_of(datetime(2200, 1, 1, tzinfo=UTC)) == 1


def test_without_a_deadline_a_task_must_start_by_its_age_bound():
    got = _stand(level=25)
    assert got.start_by == (T0 + default_max_wait(25)).isoformat()
    assert got.reason == "level 25: waits at most 102.5 min behind more urgent work"
    assert (got.deadline_at, got.miss_risk, got.predicted_p90_s) == (None, None, None)


def test_a_deadline_moves_the_start_by_time_to_the_deadline_less_the_predicted_p90():
    got = _stand(level=50, deadline_s=600, remaining=_remaining(200, 450))
    assert got.start_by == (T0 + timedelta(seconds=150)).isoformat()
    assert got.reason.startswith(
        "deadline 2026-11-28T12:10:00+00:00: must start by 2026-11-28T12:02:30+00:00"
    )
    assert (got.predicted_p50_s, got.predicted_p90_s, got.history_runs) == (200, 450, 40)
    assert got.predicted_finish == (T0 + timedelta(seconds=200)).isoformat()
    assert 0 < got.miss_risk < 0.5


def test_a_deadline_later_than_the_age_bound_leaves_the_age_bound():
    got = _stand(level=100, deadline_s=4 * 3600, remaining=_remaining(60, 120))
    assert got.start_by == (T0 + timedelta(minutes=1)).isoformat()
    assert got.reason.startswith("level 100")


def test_a_deadline_already_past_no_longer_counts_and_says_so():
    queued = T0 - timedelta(hours=2)
    got = _stand(level=50, queued=queued, deadline_s=600, remaining=_remaining(200, 450), now=T0)
    assert got.start_by == (queued + default_max_wait(50)).isoformat()
    assert got.reason.endswith("its deadline has passed, so only its level orders it")


def test_a_deadline_without_history_orders_by_the_deadline_itself():
    got = _stand(level=50, deadline_s=300, remaining=None)
    assert got.start_by == (T0 + timedelta(seconds=300)).isoformat()
    assert "no history to predict from yet" in got.reason


def test_an_urgent_run_arriving_later_goes_ahead_but_a_bulk_run_that_waited_its_bound_is_not_starved():
    bulk = _stand(level=0, wait_s=600)  # queued at T0, must start within 10 min
    urgent_soon = _stand(level=100, queued=T0 + timedelta(minutes=5))  # must start by T0 + 6 min
    urgent_late = _stand(level=100, queued=T0 + timedelta(minutes=10))  # must start by T0 + 11 min
    assert urgent_soon.weight > bulk.weight > urgent_late.weight


def test_runs_at_risk_keep_their_place_as_they_wait_least_slack_first():
    # two runs with the same prediction: the one whose deadline is sooner is ahead, whenever it was queued
    tight = _stand(queued=T0 + timedelta(minutes=2), deadline_s=300, remaining=_remaining(100, 200))
    loose = _stand(queued=T0, deadline_s=900, remaining=_remaining(100, 200))
    assert tight.weight > loose.weight


def test_a_thousand_runs_queued_in_the_same_second_tie_and_airflow_orders_them_by_their_date():
    weights = {_stand(queued=T0 + timedelta(microseconds=i)).weight for i in range(1000)}
    assert weights == {weight_of(T0 + default_max_wait(50))}


# --- what the scheduler knows of a task ----------------------------------------------------------------


def _workflow(**extra) -> Workflow:
    return Workflow.model_validate(
        {
            "workflow": "w_priority",
            "version": 1,
            "description": "Demo.",
            "owner": "o",
            "steps": [
                {"id": "a", "skill": "score_leads"},
                {"id": "b", "skill": "score_leads", "needs": ["a"]},
            ],
            **extra,
        }
    )


@pytest.fixture(scope="module")
def urgent_dag():
    return build_dag(
        plan_workflow(
            _workflow(
                priority={"level": "high", "allow": ["normal", "urgent"], "max_wait": "10m"}, deadline="15m"
            ),
            None,
        )
    )


def test_the_template_level_wait_range_and_deadline_reach_the_scheduler_through_serialization(urgent_dag):
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(urgent_dag))
    assert (
        urgent_dag.get_task("a").weight_rule == RULE == "baton.queue.BatonPriority"
    )  # by name: see BatonPriority
    assert isinstance(serialized.get_task("a").weight_rule, BatonPriority)
    for dag in (urgent_dag, serialized):
        task = dag.get_task("a")
        assert is_baton_rule(task.weight_rule)
        assert template_priority(dag, task) == (75, 600.0, (50, 100))
        assert run_deadline_s(dag) == 900.0
    data = DagSerialization.to_dict(urgent_dag)["dag"]["tasks"][0]["__var"]
    assert (data["weight_rule"], data["priority_weight"]) == ("baton.queue.BatonPriority", 75)


def test_the_schedulers_dag_holds_deadline_ids_and_the_stored_rows_give_the_deadline(urgent_dag):
    from airflow.models.serialized_dag import SerializedDagModel

    data = DagSerialization.to_dict(urgent_dag)
    stored = SerializedDagModel._generate_deadline_uuids(data)  # what Airflow does as it stores a DAG
    scheduler_side = DagSerialization.from_dict(data)
    assert all(isinstance(alert, str) for alert in scheduler_side.deadline)
    assert run_deadline_s(scheduler_side) is None  # the rule alone cannot know it (the rows are Airflow's)
    rows = {uuid: alert["callback"] for uuid, alert in stored.items()}  # deadline_alert.callback_def, by id
    assert run_deadline_s(scheduler_side, rows) == 900.0
    assert run_deadline_s(scheduler_side, {next(iter(rows)): {"__data__": "not a dict"}}) is None


def test_a_template_without_priority_is_normal_with_its_levels_bound_and_no_param():
    dag = build_dag(plan_workflow(_workflow(), None))
    assert PARAM not in dag.params
    assert template_priority(dag, dag.get_task("a")) == (50, None, None)
    assert run_deadline_s(dag) is None


def test_a_triggered_run_may_set_its_level_only_within_allow(urgent_dag):
    assert run_level({PARAM: "urgent"}, 75, (50, 100)) == (100, "run")
    assert run_level({PARAM: 60}, 75, (50, 100)) == (60, "run")
    assert run_level({PARAM: 10}, 75, (50, 100)) == (75, "template")  # below allow
    assert run_level({PARAM: "top"}, 75, (50, 100)) == (75, "template")
    assert run_level({PARAM: "x" * 100_000}, 75, (50, 100)) == (75, "template")  # logged cut to 40 characters
    assert run_level({PARAM: 100}, 75, None) == (75, "template")  # the template allows no change
    assert run_level(None, 75, (50, 100)) == (75, "template")
    assert _validated(urgent_dag, "urgent")[PARAM] == "urgent"
    assert _validated(urgent_dag, 50)[PARAM] == 50
    for refused in (101, "low", 49, 75.5, True, "x" * 10_000, {"nested": [1] * 1000}):
        with pytest.raises(ParamValidationError, match=PARAM):
            _validated(urgent_dag, refused)


def _validated(dag, level):
    """The run's params as Airflow checks a trigger's conf (its ParamsDict, a value set, then validated)."""
    params = copy.deepcopy(dag.params)
    params[PARAM] = level
    return params.validate()


def test_airflows_task_instance_gets_the_strategys_weight(urgent_dag, monkeypatch):
    monkeypatch.setattr(queue, "remaining_of", lambda workflow, step: _remaining(120, 300))
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(urgent_dag))
    task = serialized.get_task("a")
    before = datetime.now(UTC)
    ti = TaskInstance(task=task, run_id="r1", map_index=-1, dag_version_id=None)  # Airflow calls get_weight
    after = datetime.now(UTC)
    # deadline 15 min less p90 5 min: must start 10 min after now; the age bound (10 min at high) ties it
    assert (
        weight_of(after + timedelta(minutes=10))
        <= ti.priority_weight
        <= weight_of(before + timedelta(minutes=10))
    )


def test_a_runs_own_level_weighs_its_tasks_from_when_it_was_queued(urgent_dag, monkeypatch):
    monkeypatch.setattr(queue, "remaining_of", lambda workflow, step: _remaining(120, 300))
    run = SimpleNamespace(conf={PARAM: "urgent"}, queued_at=T0, run_id="r1")
    got = task_standing(urgent_dag.get_task("a"), run, now=T0)
    assert (got.level, got.level_from) == (100, "run")
    assert got.weight == weight_of(T0 + timedelta(seconds=min(wait_at(100, 75, 600.0), 900 - 300)))
    assert task_standing(urgent_dag.get_task("a"), SimpleNamespace(conf={}, queued_at=T0), now=T0).level == 75


def test_a_failing_prediction_leaves_the_template_level_and_never_raises(urgent_dag, monkeypatch, caplog):
    def broken(workflow, step):
        raise RuntimeError("boom")

    monkeypatch.setattr(queue, "remaining_of", broken)
    task = urgent_dag.get_task("a")
    ti = SimpleNamespace(task=task, dag_id=urgent_dag.dag_id, task_id="a")
    assert BatonPriority().get_weight(ti) == 75
    assert "Baton's priority of w_priority.a failed: its template level alone" in caplog.text


def test_an_unreadable_store_gives_no_prediction_and_is_not_read_again_until_its_time(monkeypatch, caplog):
    class Unreachable:
        @property
        def engine(self):
            raise ConnectionError("store down")

    monkeypatch.setattr(queue, "_store", Unreachable)
    monkeypatch.setattr(queue, "_models", {})
    assert queue.remaining_of("w_priority", "a") is None
    assert "no prediction for w_priority: the store could not be read" in caplog.text
    caplog.clear()
    assert queue.remaining_of("w_priority", "b") is None
    assert caplog.text == ""  # not read again within MODEL_TTL_S


def test_a_task_without_a_deadline_is_weighed_without_reading_the_store(monkeypatch):
    def unexpected(workflow, step):
        raise AssertionError(f"the store was read for {workflow}.{step}")

    monkeypatch.setattr(queue, "remaining_of", unexpected)
    dag = build_dag(plan_workflow(_workflow(priority="low"), None))
    got = task_standing(dag.get_task("a"), SimpleNamespace(conf={}, queued_at=T0), now=T0)
    assert got.weight == weight_of(T0 + default_max_wait(25))


def test_the_runs_priority_is_a_param_of_the_dag_not_an_input_of_its_steps():
    from baton.coordination.scope import jinja_scope

    workflow = _workflow(
        priority={"level": "high", "allow": ["normal", "urgent"]}, inputs={"region": {"default": "na"}}
    )
    step = plan_workflow(workflow, None).steps[0]
    context = {
        "ti": SimpleNamespace(xcom_pull=lambda task_ids: None, try_number=1),
        "dag_run": SimpleNamespace(run_id="r1"),
        "params": {"region": "emea", PARAM: "urgent"},
    }
    assert jinja_scope(step, context)["inputs"] == {"region": "emea"}


def test_a_mapped_tasks_rule_survives_serialization_by_name_and_loads_as_batons():
    # a for_each with batch_size: StepOperator.partial(...).expand(...); Airflow serializes partial_kwargs by value
    from airflow.task.priority_strategy import validate_and_load_priority_weight_strategy

    fan = _workflow(
        steps=[
            {"id": "a", "skill": "score_leads"},
            {
                "id": "b",
                "skill": "score_leads",
                "needs": ["a"],
                "for_each": {"over": "a.leads", "batch_size": 2},
            },
        ]
    )
    scheduler_side = DagSerialization.from_dict(DagSerialization.to_dict(build_dag(plan_workflow(fan, None))))
    assert build_dag(plan_workflow(fan, None)).get_task("b").weight_rule == RULE  # in partial_kwargs, by name
    mapped = scheduler_side.get_task("b")
    assert is_baton_rule(mapped.weight_rule)
    assert isinstance(validate_and_load_priority_weight_strategy(mapped.weight_rule), BatonPriority)
