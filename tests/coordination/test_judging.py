"""The checks that run code or ask a model: a registered ``evaluator`` (bounded in time, its errors its check's
failure, a hung one never asked again) and a ``rubric`` a judge reads (the offline judge's rule, a judge that
answers nonsense or fails gives no verdict, a huge value cut before the judge reads it), in an evaluation's
scoring and in a step's live checks in a real ``dag.test()``: scored after Airflow knew of the success, the
judge's calls within its budgets, a rubric whose judge has no budget left out of the score."""

from __future__ import annotations

import threading

import pytest
from pydantic_ai.messages import ModelResponse, ToolCallPart

from baton import registry
from baton.coordination import judging
from baton.coordination.judging import Judge, NoVerdict, check_why_not
from baton.evaluate.score import score_case
from baton.hooks import offline
from baton.spec.evals import Case, Dataset
from baton.spec.expect import JUDGED_CHARS, Check, judge_prompt
from baton.spec.roster import Agent

JUDGE = Agent(name="judge", description="Judges rubrics.", llm_conn_id="baton_test_offline")
release = threading.Event()  # lets the hung evaluator's thread end with the test session


def _hangs(request):
    """Never answers (until the module's tests are done)."""
    release.wait(600)
    return True


def _raises(request):
    """Raises, naming the field."""
    raise ValueError(f"cannot read {request.field}")


def _answers_text(request):
    """Answers neither a bool nor a Verdict."""
    return "yes"


def _long_enough(request):
    """The value has args.words words."""
    words = len(request.value.split())
    return registry.Verdict(words >= request.args["words"], f"{words} words, want {request.args['words']}")


@pytest.fixture(scope="module", autouse=True)
def _release():
    yield
    release.set()


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    """This module's evaluators, registered for its tests only (the registry is the process's)."""
    for name, func in (("test_hangs", _hangs), ("test_raises", _raises), ("test_answers_text", _answers_text),
                       ("test_long_enough", _long_enough)):  # fmt: skip
        monkeypatch.setitem(registry._EVALUATORS, name, registry.Evaluator(name, func, func.__doc__ or ""))


def _why(check: Check, value, judge=None, output=None) -> str:
    (kind,) = check.given()
    return check_why_not(kind, check, "reply", value, output or {"reply": value}, judge)


def test_an_evaluator_answers_a_verdict_with_its_reason_and_its_args():
    check = Check(evaluator="test_long_enough", args={"words": 3})
    assert _why(check, "one two three") == ""
    assert _why(check, "one two") == "2 words, want 3"


def test_an_evaluator_that_raises_or_answers_nonsense_fails_its_check_naming_why():
    assert (
        _why(Check(evaluator="test_raises"), "x")
        == "evaluator 'test_raises' raised ValueError: cannot read reply"
    )
    assert _why(Check(evaluator="test_answers_text"), "x") == (
        "evaluator 'test_answers_text' answered a str, not True, False or a Verdict (fix: return one of them)"
    )


def test_an_evaluator_that_hangs_fails_within_its_time_and_is_not_asked_again(monkeypatch):
    monkeypatch.setattr(judging, "EVALUATOR_TIMEOUT_S", 0.5)
    assert _why(Check(evaluator="test_hangs"), "x") == (
        "evaluator 'test_hangs' did not answer within 0.5 s (fix: an evaluator checks the value it is given, "
        "without waiting on anything)"
    )
    threads = {t.name for t in threading.enumerate()}
    assert _why(Check(evaluator="test_hangs"), "x") == (
        "evaluator 'test_hangs' did not answer within 0.5 s earlier and is not asked again"
    )
    hung = [t for t in threading.enumerate() if t.name == "baton-evaluator-test_hangs"]
    assert len(hung) == 1 and {t.name for t in threading.enumerate()} == threads  # no second thread


def test_the_offline_judge_holds_a_rubric_when_the_field_says_every_phrase_it_quotes():
    judge = Judge(JUDGE)
    rubric = Check(rubric='Names the customer ("Acme") and the "refund"')
    assert _why(rubric, "Dear Acme, your refund is on its way.", judge) == ""
    assert _why(rubric, "Dear customer, your refund is on its way.", judge) == (
        "judge 'judge': offline judge: the field does not say 'Acme'"
    )
    assert _why(Check(rubric="Is polite."), "", judge) == "judge 'judge': offline judge: the field is empty"
    spent = judge.spend()
    assert (spent["agent"], spent["calls"], spent["cost"]) == ("judge", 3, 0.0) and spent["tokens"] > 0


def test_a_value_of_ten_megabytes_is_cut_before_the_judge_reads_it():
    value = "Acme " + "x" * 10_000_000
    prompt = judge_prompt('Says "Acme"', "reply", value)
    assert len(prompt) < JUDGED_CHARS + 400
    assert prompt.endswith(f" [cut: {len(value) + 2 - JUDGED_CHARS:,} more characters]")
    assert _why(Check(rubric='Says "Acme"'), value, Judge(JUDGE)) == ""


def test_a_judge_that_answers_nonsense_gives_no_verdict(monkeypatch):
    asked = []

    async def nonsense(messages, info):
        asked.append(info.output_tools[0].name)
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {"verdict": "banana"})])

    monkeypatch.setattr(offline, "REQUEST_HOOKS", [nonsense])
    with pytest.raises(NoVerdict) as caught:
        _why(Check(rubric="Is polite."), "Hello", Judge(JUDGE))
    assert str(caught.value).startswith(
        "judge 'judge' gave no verdict: UnexpectedModelBehavior: Exceeded maximum output retries (1)"
    )
    assert len(asked) == 2  # the question and one re-ask


def test_a_rubric_without_a_judge_gives_no_verdict():
    with pytest.raises(
        NoVerdict, match=r"no judge reads this rubric \(fix: name one with 'judge: <an LLM agent>'\)"
    ):
        _why(Check(rubric="Is polite."), "Hello")


def test_an_evaluation_scores_a_rubric_with_no_verdict_as_a_failed_check_naming_why(monkeypatch):
    async def fails(messages, info):
        raise RuntimeError("the model server is down")

    monkeypatch.setattr(offline, "REQUEST_HOOKS", [fails])
    case = Case(
        id="c1",
        expect={
            "write": {"reply": Check(rubric="Is polite.", evaluator="test_long_enough", args={"words": 1})}
        },
    )
    scored = score_case(case, "success", {"write": {"reply": "Hello there"}}, (), judge=Judge(JUDGE))
    assert [(r.check, r.passed, r.reason) for r in scored.results] == [
        ("evaluator", True, ""),
        ("rubric", False, "judge 'judge' gave no verdict: RuntimeError: the model server is down"),
    ]


def test_a_dataset_with_a_rubric_names_its_judge():
    case = {"id": "c1", "expect": {"write": {"reply": {"rubric": "Is polite."}}}}
    with pytest.raises(ValueError, match="case 'c1' checks write.reply with a rubric and nothing judges it: add "
                       "'judge: <an LLM agent of the roster>' to the dataset"):  # fmt: skip
        Dataset.model_validate({"dataset": "w", "cases": [case]})
    assert Dataset.model_validate({"dataset": "w", "judge": "judge", "cases": [case]}).rubrics() == 1
    with pytest.raises(ValueError, match="'args' are an evaluator's: name it with 'evaluator: <name>'"):
        Check(args={"words": 1}, min_length=1)


def test_live_checks_score_after_the_success_and_the_judge_spends_within_its_budget(airflow_db):
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from baton.events import EventStore
    from tests.conftest import FIXTURE_DAGS, run_dag_test_in_subprocess

    run, results, output = run_dag_test_in_subprocess(FIXTURE_DAGS, "baton-test-fixtures", "judged_notes")
    assert run.state == "success", output[-3000:]
    events = list(EventStore.from_airflow().read(run.run_id))
    scores = {e.step: e for e in events if e.type == "feedback.recorded"}
    # note: the rubric (the offline judge: the text names "Acme"), the evaluator and the enum all hold
    assert scores["note"].payload == {
        "score": 1.0,
        "verdict": "score",
        "source": "evaluation",
        "by": "evaluate",
    }
    (judged,) = [e for e in events if e.type == "model.called" and e.agent == "fixture_judge"]
    assert (judged.step, judged.key.rsplit("|", 1)[1], judged.payload["offline"]) == ("note", "judge-1", True)
    (settled,) = [e for e in events if e.type == "budget.settled" and e.agent == "fixture_judge"]
    tokens = judged.payload["input_tokens"] + judged.payload["output_tokens"]
    assert ([name for name, _ in settled.payload["budgets"]], settled.payload["tokens"]) == (
        ["judge-run"],
        tokens,
    )
    # reminder: its judge's budget fits no call, so its rubric is left out: min_length holds, max_length fails
    assert scores["reminder"].payload["score"] == 0.5
    (refused,) = [e for e in events if e.type == "budget.refused"]
    where = refused.key.rsplit("|", 1)[1]
    assert (refused.step, refused.agent, where) == ("reminder", "thrifty_judge", "refused:judge-1")
    assert not [e for e in events if e.type == "model.called" and e.agent == "thrifty_judge"]
    # scored once Airflow knew of the success: after the task instance's end
    with create_session() as session:
        ended = {
            ti.task_id: ti.end_date
            for ti in session.scalars(select(TaskInstance).where(TaskInstance.run_id == run.run_id))
        }
    assert all(scores[step].ts >= ended[step] for step in ("note", "reminder")), (ended, scores)


def test_a_live_judge_makes_at_most_its_bound_of_calls_and_the_rest_of_its_rubrics_are_left_out():
    from baton.coordination import live

    judge = Judge(JUDGE, max_calls=live.MAX_JUDGED)
    items = [{"reply": f"Dear Acme, item {i}"} for i in range(live.MAX_JUDGED + 5)]  # a fan-out's outputs
    checks = {"reply": Check(rubric='Names "Acme"', min_length=1)}
    assert live.held(checks, items, judge) == (live.MAX_JUDGED + len(items), live.MAX_JUDGED + len(items))
    assert judge.spend()["calls"] == live.MAX_JUDGED
    with pytest.raises(NoVerdict, match=f"judge 'judge' was asked its most calls here, {live.MAX_JUDGED}"):
        _why(Check(rubric="Is polite."), "Hello", judge)


def test_one_judge_and_one_evaluator_asked_from_many_threads_count_every_call_once():
    # baton eval scores its cases in --workers threads, all with the one judge
    from tests.threads import run_threads

    judge = Judge(JUDGE, max_calls=40)
    start = threading.Barrier(8)

    def score(i: int):
        def call():
            start.wait()
            rubric = _why(Check(rubric='Names "Acme"'), f"Dear {'Acme' if i % 2 else 'Bo'}", judge)
            return rubric, _why(Check(evaluator="test_long_enough", args={"words": 2}), "one two", judge)

        return call

    answers = run_threads([score(i) for i in range(8)], start=start)
    assert [rubric == "" for rubric, _ in answers] == [i % 2 == 1 for i in range(8)]
    assert {evaluated for _, evaluated in answers} == {""}
    alone = Judge(JUDGE)  # the same eight calls one after another: the same tokens, none lost to a race
    for i in range(8):
        _why(Check(rubric='Names "Acme"'), f"Dear {'Acme' if i % 2 else 'Bo'}", alone)
    assert judge.spend() == alone.spend() and alone.spend()["calls"] == 8 and alone.spend()["tokens"] > 0
