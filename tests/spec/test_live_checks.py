"""A step's checks of its live outputs (``evaluate:``): what the template can say is checked where it is
written (a field the output lacks, a check its type can never pass, a person's step, a sample out of (0, 1],
too many checks), and at run time a sampled output is scored into the try's ``feedback.recorded``, a fan-out's
items each, never an evaluation case's and never failing the step."""

from __future__ import annotations

import pytest

from baton.coordination import evaluation, live
from baton.errors import TemplateError
from baton.events.event import Event
from baton.plan import plan_workflow
from baton.spec.loading import load_workflow
from baton.spec.models import Workflow
from baton.spec.roster import Agent, Roster

TEMPLATE = """\
workflow: w
version: 1
description: d
owner: o
steps:
  - id: triage
    agent: assistant
    instruction: Triage it.
    output:
      priority: {type: string, enum: [low, high]}
      summary: string
    evaluate:
      sample: 0.5
      checks:
EVALUATE"""


def _issues(tmp_path, checks: str, **replace: str) -> list[str]:
    text = TEMPLATE.replace("EVALUATE", checks)
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / "w.yaml"
    path.write_text(text)
    with pytest.raises(TemplateError) as caught:
        load_workflow(path, Roster(agents=[Agent(name="assistant", capabilities=["x"])]), root=tmp_path)
    return [str(issue) for issue in caught.value.issues]


def test_checks_the_output_can_never_pass_are_located_with_their_fix(tmp_path):
    checks = "        colour: {equals: red}\n        priority: {equals: urgent, range: [1, 2]}\n"
    assert _issues(tmp_path, checks) == [
        "w.yaml:15: steps[0].evaluate.checks.colour: the step's output has no field 'colour' (fix: use one of: "
        "priority, summary)",
        "w.yaml:16: steps[0].evaluate.checks.priority.range: 'range' never passes on a string field (fix: use a "
        "check a string field can pass: equals, one_of, contains, matches, min_length, max_length)",
        "w.yaml:16: steps[0].evaluate.checks.priority.equals: the field can never be 'urgent' (fix: use one of "
        "its values: 'low', 'high')",
    ]


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ("0", "steps[0].evaluate.sample: Input should be greater than 0"),
        ("1.5", "steps[0].evaluate.sample: Input should be less than or equal to 1"),
        ("often", "steps[0].evaluate.sample: Input should be a valid number"),
    ],
)
def test_a_sample_outside_zero_to_one_is_refused(tmp_path, sample, message):
    (issue,) = _issues(tmp_path, "        summary: {min_length: 1}\n", **{"sample: 0.5": f"sample: {sample}"})
    assert message in issue, issue


def test_no_checks_or_too_many_are_refused(tmp_path):
    (issue,) = _issues(tmp_path, "          {}\n")
    assert "steps[0].evaluate.checks: Dictionary should have at least 1 item" in issue, issue
    many = "".join(f"        f{i}: {{min_length: 1}}\n" for i in range(101))
    (issue,) = _issues(tmp_path, many)
    assert "steps[0].evaluate.checks: Dictionary should have at most 100 items" in issue, issue


class Recorder:
    """What StepRun gives ``live.scored``: the try's fields, and its events."""

    def __init__(self, run_id: str, map_index: int = -1):
        self.common = {"run_id": run_id, "map_index": map_index}

    def event(self, kind: str, payload: dict, discriminator: str = "") -> Event:
        return Event(type=kind, run_id=self.common["run_id"], workflow="w", step="triage", payload=payload,
                     discriminator=discriminator)  # fmt: skip


def _step(sample: float = 1.0, fan_out: bool = False):
    step = {
        "id": "triage",
        "agent": "assistant",
        "instruction": "Triage it.",
        "output": {"priority": {"type": "string", "enum": ["low", "high"]}, "summary": "string"},
        "evaluate": {
            "sample": sample,
            "checks": {"priority": {"one_of": ["high"]}, "summary": {"max_length": 5}},
        },
    }
    steps = [step]
    if fan_out:
        steps = [
            {"id": "load", "skill": "score_leads"},
            {**step, "for_each": {"over": "load.leads"}, "needs": ["load"]},
        ]
    workflow = Workflow.model_validate(
        {"workflow": "w", "version": 1, "description": "d", "owner": "o", "steps": steps}
    )
    roster = Roster(agents=[Agent(name="assistant", capabilities=["x"])])
    return plan_workflow(workflow, roster).steps[-1]


def test_a_sampled_output_is_scored_into_the_tries_feedback_and_an_unsampled_one_is_not():
    scored = live.scored(_step(), {"priority": "high", "summary": "far too long"}, Recorder("r1"))
    assert (scored.type, scored.discriminator) == ("feedback.recorded", "evaluation")
    assert scored.payload == {"score": 0.5, "verdict": "score", "source": "evaluation", "by": "evaluate"}
    runs = [f"run-{n}" for n in range(400)]
    hits = [r for r in runs if live.scored(_step(0.25), {"priority": "high", "summary": "ok"}, Recorder(r))]
    assert 0.18 < len(hits) / len(runs) < 0.32  # a quarter, by the runs' hashes
    assert all(live.sampled(f"{r}/triage/-1", 0.25) for r in hits)  # the same answer in every process


def test_a_fan_outs_items_are_each_scored_and_an_evaluation_case_is_not():
    batch = {"results": [{"id": "0", "output": {"priority": "high", "summary": "ok"}},
                         {"id": "1", "output": {"priority": "low"}}], "failures": [], "total": 2}  # fmt: skip
    scored = live.scored(_step(fan_out=True), batch, Recorder("r1", map_index=0))
    assert scored.payload["score"] == 0.5  # of four checks, the first item's two held
    assert (
        live.scored(_step(fan_out=True), {"results": [], "failures": [{"id": "0"}]}, Recorder("r2")) is None
    )
    with evaluation.case("c", {}):
        assert live.scored(_step(), {"priority": "high", "summary": "ok"}, Recorder("r3")) is None


def test_a_steps_checks_read_back_from_its_dump_are_the_same_checks():
    # A step travels inside its DAG's serialised operators and the validation cache as JSON: a check read back
    # had every check it did not give "given" as null (one_of: null, then a TypeError scoring it).
    step = _step()
    again = type(step).model_validate_json(step.model_dump_json())
    assert again.spec.evaluate.checks["priority"].given() == ["one_of"]
    assert again.spec.evaluate.checks["summary"].given() == ["max_length"]
    output = {"priority": "high", "summary": "far too long"}
    assert (
        live.scored(again, output, Recorder("r1")).payload
        == live.scored(step, output, Recorder("r1")).payload
    )


def test_a_judge_that_is_no_llm_agent_of_the_roster_and_an_unknown_evaluator_are_located(tmp_path):
    checks = "        summary: {rubric: 'Names \"Acme\"', evaluator: no_such_check}\n"
    judged = {"sample: 0.5": "sample: 0.5\n      judge: oracle"}
    assert _issues(tmp_path, checks, **judged) == [
        "w.yaml:16: steps[0].evaluate.checks.summary.evaluator: unknown evaluator 'no_such_check' (fix: register "
        "it with @evaluator in an extension module (BATON_EXTENSIONS); known: no_contact_details, word_count)",
        "w.yaml:14: steps[0].evaluate.judge: the roster has no agent 'oracle' to judge the rubrics (fix: name one "
        "of its LLM agents: assistant)",
    ]
    skilled = Roster(
        agents=[Agent(name="assistant", capabilities=["x"]), Agent(name="oracle", skill="notify")]
    )
    path = tmp_path / "w.yaml"
    path.write_text(
        TEMPLATE.replace("EVALUATE", "        summary: {rubric: ok}\n").replace(*judged.popitem())
    )
    with pytest.raises(TemplateError) as caught:
        load_workflow(path, skilled, root=tmp_path)
    assert [str(issue) for issue in caught.value.issues] == [
        "w.yaml:14: steps[0].evaluate.judge: agent 'oracle' runs skill 'notify' and cannot read a rubric (fix: "
        "name one of the roster's LLM agents: assistant)"
    ]
    assert _issues(tmp_path, "        summary: {rubric: ok}\n") == [
        "w.yaml:12: steps[0].evaluate: the check of 'summary' has a rubric and nothing judges it: add 'judge: <an "
        "LLM agent>'"
    ]
