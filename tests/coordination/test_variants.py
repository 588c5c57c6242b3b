"""Variants of a step on SQLite and PostgreSQL: runs are assigned to arms by their key (sticky), the arms'
outcomes come from the event store, the sequential test promotes the better arm once and records why, a
person's rejection counts against an arm, and after a decision every run takes the winner."""

from __future__ import annotations

import numpy as np
import pytest

from baton.coordination import variants
from baton.events.event import Event
from baton.plan import plan_workflow
from baton.spec.models import Workflow

TEMPLATE = {
    "workflow": "briefs",
    "version": 1,
    "description": "d",
    "owner": "o",
    "inputs": {"customer": {"type": "string", "default": "c-1"}},
    "steps": [
        {
            "id": "write",
            "agent": "writer",
            "instruction": "Write the brief.",
            "variants": {
                "key": "{{ inputs.customer }}",
                "min_runs": 50,
                "arms": {
                    "plain": {"weight": 1},
                    "concise": {"weight": 1, "instruction": "Write the brief in three lines."},
                },
            },
        }
    ],
}


class Recorder:
    """What StepRun gives ``variants.choose``: the store, and events of this run and step."""

    def __init__(self, store, run_id: str):
        self.store, self.run_id = store, run_id

    def event(self, kind: str, payload: dict) -> Event:
        return Event(
            type=kind, run_id=self.run_id, workflow="briefs", step="write", try_number=1, payload=payload
        )


@pytest.fixture
def step():
    from baton.spec.roster import Agent, Roster

    roster = Roster(agents=[Agent(name="writer", capabilities=["writing"])])
    (compiled,) = plan_workflow(Workflow.model_validate(TEMPLATE), roster).steps
    return compiled


def _run(store, step, n: int, success: dict[str, float], rng, verdict: float | None = None) -> str:
    """One run: its arm (by its customer), and its outcome drawn from the arm's success rate."""
    recorder = Recorder(store, f"run-{n}")
    chosen, assigned = variants.choose(
        step, recorder, {"inputs": {"customer": f"c-{n}"}, "run": {"id": f"run-{n}"}}
    )
    arm = assigned.payload["variant"]
    ok = bool(rng.random() < success[arm])
    events = [assigned, recorder.event("step.succeeded" if ok else "step.failed",
                                       {"duration_s": 1.0} if ok else {"error": "x", "will_retry": False})]  # fmt: skip
    if verdict is not None and ok:
        events.append(
            recorder.event("feedback.recorded", {"score": verdict, "verdict": "reject", "source": "review"})
        )
    store.append(events)
    return arm


def test_runs_are_assigned_by_their_key_and_the_arm_changes_the_instruction(store, step):
    recorder = Recorder(store, "r1")
    scope = {"inputs": {"customer": "acme"}, "run": {"id": "r1"}}
    first, assigned = variants.choose(step, recorder, scope)
    again, same = variants.choose(step, Recorder(store, "r2"), {**scope, "run": {"id": "r2"}})
    assert assigned.payload["variant"] == same.payload["variant"]  # sticky by the customer, not the run
    assert assigned.payload["how"] == "assigned" and len(assigned.payload["key_sha256"]) == 16
    assert "acme" not in str(assigned.payload)  # the key is kept by its hash only
    arms = {variants.choose(step, recorder, {"inputs": {"customer": f"c-{i}"}, "run": {}})[1].payload["variant"]
            for i in range(40)}  # fmt: skip
    assert arms == {"plain", "concise"}
    concise = variants.applied(step, "concise")
    assert (
        concise.spec.instruction == "Write the brief in three lines."
        and step.spec.instruction == "Write the brief."
    )


def test_the_better_arm_is_promoted_once_with_why_and_then_every_run_takes_it(store, step):
    rng = np.random.default_rng(11)
    success = {"plain": 0.55, "concise": 0.85}
    n = 0
    while (decision := variants.decided(store, "briefs", "write")) is None:
        _run(store, step, n, success, rng)
        n += 1
        assert n < 2000, "no decision in 2,000 runs"
    assert (decision["status"], decision["variant"], decision["control"]) == ("promoted", "concise", "plain")
    assert "concise" in decision["reason"] and decision["counts"]["concise"]["runs"] >= 50
    assert decision["counts"]["concise"]["success_rate"] > decision["counts"]["plain"]["success_rate"]
    after = [_run(store, step, n + i, success, rng) for i in range(20)]
    assert set(after) == {"concise"}  # every run takes the winner
    decided = list(store.read(types=["variant.decided"]))
    assert len(decided) == 1  # recorded once, however many runs looked
    last = list(store.read(f"run-{n + 19}", types=["variant.assigned"]))[0]
    assert last.payload["how"] == "decided: promoted"


@pytest.fixture
def approved_step():
    """The step of ``step`` with ``approve: true``: its decision waits for a person."""
    from baton.spec.roster import Agent, Roster

    template = {**TEMPLATE, "steps": [{**TEMPLATE["steps"][0]}]}
    template["steps"][0]["variants"] = {**TEMPLATE["steps"][0]["variants"], "approve": True, "min_runs": 20}
    roster = Roster(agents=[Agent(name="writer", capabilities=["writing"])])
    (compiled,) = plan_workflow(Workflow.model_validate(template), roster).steps
    return compiled


def _until_proposed(store, step, success, rng) -> int:
    n = 0
    while variants.proposed(store, "briefs", "write") is None:
        _run(store, step, n, success, rng)
        n += 1
        assert n < 2000, "no proposal in 2,000 runs"
    return n


def test_a_decision_that_waits_for_a_person_is_proposed_and_applies_once_approved(store, approved_step):
    rng, success = np.random.default_rng(11), {"plain": 0.55, "concise": 0.85}
    n = _until_proposed(store, approved_step, success, rng)
    assert variants.decided(store, "briefs", "write") is None
    arms = [_run(store, approved_step, n + i, success, rng) for i in range(40)]
    assert set(arms) == {"plain", "concise"}  # still assigned by weight while a person has not answered
    decision = variants.settle(store, "briefs", "write", "growth.lead", accept=True)
    assert (decision["status"], decision["variant"], decision["by"]) == ("promoted", "concise", "growth.lead")
    assert {_run(store, approved_step, n + 40 + i, success, rng) for i in range(10)} == {"concise"}
    again = variants.settle(
        store, "briefs", "write", "someone.else", accept=False
    )  # a second answer: no change
    assert (again["variant"], again["by"]) == ("concise", "growth.lead")
    assert len(list(store.read(types=["variant.proposed"]))) == 1


def test_a_person_may_keep_the_control_and_nothing_is_settled_before_a_proposal(store, approved_step):
    with pytest.raises(LookupError, match="experiment briefs.write has no decision waiting for a person"):
        variants.settle(store, "briefs", "write", "growth.lead", accept=True)
    n = _until_proposed(store, approved_step, {"plain": 0.55, "concise": 0.85}, np.random.default_rng(11))
    decision = variants.settle(store, "briefs", "write", "growth.lead", accept=False)
    assert (decision["status"], decision["variant"]) == ("stopped", "plain")
    assert decision["reason"] == "growth.lead kept the control plain (proposed: promoted concise)"
    rng = np.random.default_rng(5)
    assert {_run(store, approved_step, n + i, {"plain": 1.0, "concise": 1.0}, rng) for i in range(10)} == {
        "plain"
    }


def test_people_settling_at_once_record_one_decision(store, approved_step):
    from concurrent.futures import ThreadPoolExecutor

    _until_proposed(store, approved_step, {"plain": 0.55, "concise": 0.85}, np.random.default_rng(11))
    with ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(lambda i: variants.settle(store, "briefs", "write", f"p{i}", i % 2 == 0), range(6))
        )
    assert len({(a["status"], a["variant"], a["by"]) for a in answers}) == 1
    assert len(list(store.read(types=["variant.decided"]))) == 1


def test_a_persons_rejections_count_against_an_arm(store, step):
    rng = np.random.default_rng(3)
    for i in range(120):
        _run(store, step, i, {"plain": 1.0, "concise": 1.0}, rng, verdict=0.0 if i % 2 else None)
    outcomes = variants.outcomes(store, "briefs", "write")
    rejected = [ok for i, (_, ok, _, _) in enumerate(outcomes) if i % 2]
    assert rejected and not any(rejected)  # delivered, but a person rejected it: not a success of its arm
    assert all(ok for i, (_, ok, _, _) in enumerate(outcomes) if not i % 2)


@pytest.mark.parametrize(
    ("variants_spec", "said"),
    [
        ({"arms": {"only": {}}}, "variants.arms: Dictionary should have at least 2 items"),
        (
            {"arms": {f"a{i}": {} for i in range(11)}},
            "variants.arms: Dictionary should have at most 10 items",
        ),
        (
            {"arms": {"a": {"weight": -1}, "b": {}}},
            "variants.arms.a.weight: Input should be greater than or equal to 0",
        ),
        ({"arms": {"a": {}, "b": {}}, "control": "c"}, "control 'c' is not one of the arms (a, b)"),
        (
            {"arms": {"a": {}, "B!": {}}},
            "variants.arms.B!: String should match pattern '^[a-z][a-z0-9_]{0,62}$' (fix: use lowercase letters",
        ),
        (
            {"arms": {"a": {}, "b": {"agent": "ghost"}}},
            "steps[0].variants.arms.b.agent: unknown agent 'ghost'",
        ),
        ({"arms": {"a": {}, "b": {"instruction": "{{ ''.__class__ }}"}}}, "unsafe Jinja"),
        ({"arms": {"a": {}, "b": {}}, "key": "{{ inputs.nobody }}"}, "references unknown input 'nobody'"),
        (
            {"arms": {"a": {}, "b": {}}, "alpha": 0.5},
            "variants.alpha: Input should be less than or equal to 0.2",
        ),
        (
            {"arms": {"a": {}, "b": {}}, "approve": "maybe"},
            "variants.approve: Input should be a valid boolean, unable to interpret input",
        ),
        (
            {"arms": {"a": {}, "b": {}}, "approve": [True]},
            "variants.approve: Input should be a valid boolean",
        ),
    ],
)
def test_a_bad_experiment_is_refused_naming_it(variants_spec, said, tmp_path):
    import yaml

    from baton.errors import TemplateError
    from baton.spec.loading import load_roster, load_workflow

    template = {**TEMPLATE, "steps": [{**TEMPLATE["steps"][0], "variants": variants_spec}]}
    (tmp_path / "briefs.yaml").write_text(yaml.safe_dump(template))
    (tmp_path / "agents.yaml").write_text("agents:\n  - {name: writer, capabilities: [writing]}\n")
    with pytest.raises(TemplateError) as refused:
        load_workflow(tmp_path / "briefs.yaml", load_roster(tmp_path / "agents.yaml"))
    assert said in str(refused.value)


def test_variants_on_a_skill_step_or_a_routed_steps_agent_are_refused(tmp_path):
    import yaml

    from baton.errors import TemplateError
    from baton.spec.loading import load_workflow

    skill = {"id": "write", "skill": "http_post", "variants": {"arms": {"a": {}, "b": {}}}}
    routed = {"id": "write", "route": {"capabilities": ["writing"]}, "instruction": "W.",
              "variants": {"arms": {"a": {}, "b": {"agent": "writer"}}}}  # fmt: skip
    for step, said in (
        (skill, "steps[0].variants: variants change what an agent is asked, or the agent"),
        (routed, "steps[0].variants.arms.b.agent: a routed step's agent is chosen by its route"),
    ):
        (tmp_path / "briefs.yaml").write_text(yaml.safe_dump({**TEMPLATE, "steps": [step]}))
        with pytest.raises(TemplateError) as refused:
            load_workflow(tmp_path / "briefs.yaml", None)
        assert said in str(refused.value)


def test_runs_starting_at_once_record_the_decision_once(store, step):
    """Eight runs start at the moment the experiment can decide: each judges it, one decision is stored
    (its event's key is the experiment's), and every one of them gets the same verdict."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(5)
    recorder = Recorder(store, "x")
    for i in range(400):  # outcomes enough for a decision, without asking for one
        arm = "concise" if i % 2 else "plain"
        ok = bool(rng.random() < (0.9 if arm == "concise" else 0.5))
        store.append([
            Event(type="variant.assigned", run_id=f"p-{i}", workflow="briefs", step="write", try_number=1,
                  payload={"experiment": "briefs.write", "variant": arm}),
            Event(type="step.succeeded" if ok else "step.failed", run_id=f"p-{i}", workflow="briefs", step="write",
                  try_number=1, payload={"duration_s": 1.0} if ok else {"error": "x", "will_retry": False}),
        ])  # fmt: skip
    assert recorder and variants.decided(store, "briefs", "write") is None
    with ThreadPoolExecutor(8) as pool:
        verdicts = list(pool.map(lambda _: variants.judge(store, step), range(8)))
    assert {(v["status"], v["variant"]) for v in verdicts} == {("promoted", "concise")}
    assert len(list(store.read(types=["variant.decided"]))) == 1


def test_an_arm_gets_runs_once_it_passed_the_workflows_dataset_as_built(store, step):
    # A workflow with an evaluation dataset: the step holds its template's digest (compile.loader.gate_variants).
    from baton.coordination.tasks import EVAL_STEP

    gated = step.model_copy(update={"evaluated": "d1"})
    rng = np.random.default_rng(3)
    arms = [_run(store, gated, n, {"plain": 0.9, "concise": 0.9}, rng) for n in range(40)]
    assert set(arms) == {"plain"}  # the control only: concise has not passed
    (first,) = store.read("run-0", types=["variant.assigned"])
    assert first.payload["gated"] == ["concise"]

    def evaluated(passed: bool, digest: str, variant: str = "write:concise", n: int = 0) -> None:
        payload = {"version": 1, "digest": digest, "variant": variant, "passed": passed, "against": "stable",
                   "cases": 10, "checks": 10, "held": 10 if passed else 6}  # fmt: skip
        store.append([Event(type="evaluation.completed", run_id=f"evaluation:briefs:v1:{variant}:{n}",
                            workflow="briefs", step=EVAL_STEP, payload=payload)])  # fmt: skip

    evaluated(False, "d1", n=1)  # it failed the dataset: never a run
    evaluated(True, "d0", n=2)  # it passed an older template: not this one
    evaluated(True, "d1", variant="other:concise", n=3)  # another step's arm of that name
    assert {_run(store, gated, n, {"plain": 0.9, "concise": 0.9}, rng) for n in range(40, 80)} == {"plain"}
    evaluated(True, "d1", n=4)
    arms = [_run(store, gated, n, {"plain": 0.9, "concise": 0.9}, rng) for n in range(80, 200)]
    assert 0.3 < arms.count("concise") / len(arms) < 0.7  # both arms, by the runs' keys
    (later,) = store.read("run-80", types=["variant.assigned"])
    assert later.payload["gated"] == []
    # an ungated step (a workflow without a dataset) assigns both arms from its first run
    assert {_run(store, step, n, {"plain": 0.9, "concise": 0.9}, rng) for n in range(200, 260)} == {
        "plain",
        "concise",
    }
