"""A step's ``require:`` guards (issue 17): checked before the work on the run's scope, after it on the
output, refusing the step for good with the template's message; a fan-out item is refused alone."""

from __future__ import annotations

import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException
from pydantic import TypeAdapter

from baton.coordination.fanout import FanOut
from baton.coordination.requirements import check_requirements, reads_output
from baton.coordination.subtasks import BatchResult, subtasks_of
from baton.errors import RequirementFailed, TemplateError
from baton.events.recorder import StepRecorder
from baton.plan import CompiledStep, FanOutPlan
from baton.spec.loading import load_workflow
from baton.spec.roster import Agent
from baton.spec.step import Step

REQUIRE = [
    {
        "check": "inputs.quantity <= 1000",
        "message": "{{ inputs.quantity }} units is over the 1,000 we may order",
    },
    {"check": "output.total > 0", "message": "the total must be positive, got {{ output.total }}"},
]


def _step(**extra) -> CompiledStep:
    spec = TypeAdapter(Step).validate_python(
        {"id": "order", "skill": "score_leads", "require": REQUIRE, **extra}
    )
    return CompiledStep(workflow="orders", template_version=1, spec=spec)


def test_a_condition_on_the_inputs_is_checked_before_and_one_on_the_output_after():
    assert [reads_output(need.check) for need in _step().spec.require] == [False, True]
    step = _step()
    check_requirements(step, {"inputs": {"quantity": 10}}, after=False)
    with pytest.raises(RequirementFailed) as refused:
        check_requirements(step, {"inputs": {"quantity": 1200}}, after=False)
    assert str(refused.value) == (
        "step 'order' refused by require[0] (inputs.quantity <= 1000): 1200 units is over the 1,000 we may order"
    )
    assert isinstance(refused.value, AirflowFailException)  # final: Airflow does not retry it
    check_requirements(
        step, {"inputs": {"quantity": 1200}, "output": {"total": 5}}, after=True
    )  # only output's
    with pytest.raises(
        RequirementFailed, match=r"require\[1\] \(output.total > 0\): the total must be positive, got 0"
    ):
        check_requirements(step, {"inputs": {}, "output": {"total": 0}}, after=True)


def test_a_fan_out_item_that_breaks_a_requirement_fails_alone_and_is_not_reassigned(store):
    scorer = Agent(name="scorer", capabilities=["scoring"], skill="score_leads", max_concurrency=4)
    spec = TypeAdapter(Step).validate_python(
        {
            "id": "score",
            "route": {"capabilities": ["scoring"]},
            "for_each": "src.items",
            "require": [{"check": "item.region != 'mars'", "message": "no leads on {{ item.region }}"}],
        }
    )
    step = CompiledStep(
        workflow="w",
        template_version=1,
        spec=spec,
        candidates=(scorer,),
        fan_out=FanOutPlan(
            source="src", field="items", concurrency=2, batch_size=None, partial_failure="continue"
        ),
    )
    ti = SimpleNamespace(run_id="run_guard", task_id="score", map_index=-1, try_number=1, max_tries=1)
    context = {"ti": ti, "dag_run": SimpleNamespace(run_type="manual", conf={}), "logical_date": None}
    recorder = StepRecorder(store, context, workflow="w", template_version=1)
    scope = {
        "inputs": {"region": "all", "min_score": 50},
        "steps": {},
        "context": {},
        "run": {"id": "run_guard"},
    }
    fan = FanOut(step, context, scope, recorder, timedelta(hours=1), logging.getLogger("test"))
    items = [{"id": "a", "region": "emea"}, {"id": "b", "region": "mars"}]
    result = fan.run(subtasks_of(items), BatchResult())
    assert sorted(result.results) == ["a"]
    assert result.failures["b"]["error"] == (
        "RequirementFailed: item b of step 'score' refused by require[0] (item.region != 'mars'): no leads on mars"
    )
    started = [e.payload["subtask"] for e in store.read("run_guard") if e.type == "subtask.started"]
    assert started == ["a"]  # refused before any agent was asked


def test_require_is_checked_at_validate_time_like_any_jinja(tmp_path, dags_folder):
    from baton.spec.loading import load_roster

    (tmp_path / "guarded.yaml").write_text(
        "workflow: guarded\nversion: 1\ndescription: d\nowner: o\ninputs:\n  quantity: {type: integer, default: 1}\n"
        "steps:\n  - id: a\n    skill: score_leads\n    require:\n"
        "      - {check: 'inputs.quantty <= 1000', message: 'too many'}\n"
        "      - {check: 'output.__class__', message: 'x'}\n"
        "      - {check: 'steps.zz.total', message: '{{ nope }}'}\n"
    )
    with pytest.raises(TemplateError) as caught:
        load_workflow(tmp_path / "guarded.yaml", load_roster(dags_folder / "agents.yaml"))
    assert [str(issue).split(": ", 1)[1] for issue in caught.value.issues] == [
        "steps[0].require[0].check: references unknown input 'quantty' (fix: did you mean 'quantity'? known: "
        "quantity)",
        "steps[0].require[1].check: unsafe Jinja: it reads the private attribute '__class__' (fix: templates "
        "read values; they never reach Python internals or change data)",
        "steps[0].require[2].check: references unknown step 'zz' (fix: known: a)",
        "steps[0].require[2].message: unknown name 'nope' in Jinja (fix: use inputs.<name>, steps.<step id>."
        "<field>, context.<key> or run.<id|logical_date|ds>, or output)",
    ]
