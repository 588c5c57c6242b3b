"""The question mechanism and its kinds: a failure that calls for a person asks the kind that takes it
(by rank), an answer goes to its kind's handler, and each handler turns the answer into the step's
output (a conflict's into the context write, a compensation's into the saga going on)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred
from pydantic import TypeAdapter

from baton.context.store import ContextEscalation, ContextStore
from baton.coordination import approval, compensation, conflict, partial_failure, questions, spend
from baton.coordination import step as step_module
from baton.coordination.routing import NoCandidate
from baton.errors import AgentError, BudgetExceeded
from baton.plan import CompiledStep
from baton.spec.budgets import Budget
from baton.spec.roster import Agent
from baton.spec.step import Step

ACE = Agent(name="ace", description="writes", model="test", capabilities=["writing"])
BOLT = Agent(name="bolt", description="writes too", model="test", capabilities=["writing"])


def _step(**spec: Any) -> CompiledStep:
    spec = {"id": "draft", "agent": "ace", "instruction": "Draft it", **spec}
    return CompiledStep(
        workflow="flow", template_version=1, spec=TypeAdapter(Step).validate_python(spec), agent=ACE,
        candidates=[ACE, BOLT],
    )  # fmt: skip


class _Run:
    """What a handler reads of a step's try (a ``StepRun``), and what it asked of it."""

    def __init__(self, step: CompiledStep, store: Any = None, try_number: int = 1, tried: dict | None = None):
        ti = SimpleNamespace(run_id="run_q", try_number=try_number, max_tries=1, map_index=-1)
        self.step, self.context = step, {"ti": ti}
        self.recorder = SimpleNamespace(common={"agent": "ace"}, store=store)
        self._tried = tried or {}
        self.calls: list[tuple] = []
        self.log = SimpleNamespace(info=lambda *args: self.calls.append(("log", args)))

    def tried(self) -> dict[str, str]:
        return self._tried

    def call(self, scope: dict, agent: Agent | None = None) -> dict:
        self.calls.append(("call", agent.name if agent else None))
        return {"text": "called"}

    def fan_out(self, scope: dict, versions: dict) -> dict:
        self.calls.append(("fan_out",))
        return {"results": [], "failures": [], "total": 0}

    def fan(self, scope: dict) -> Any:
        done = {"i0": {"id": "i0", "agent": "ace", "output": {"text": "zero"}}}
        return SimpleNamespace(done_before=lambda: dict(done))

    def start(self) -> str:
        self.calls.append(("start",))
        return "started over"


def _answer(kind: str, chosen: list[str], state: dict, params: dict | None = None, by: str = "ana"):
    event = {"chosen_options": chosen, "params_input": params or {}, "responded_by_user": {"name": by}}
    return questions.Answer.of(event, kind, state)


def test_every_kind_has_its_handler_and_an_unknown_kind_is_named():
    assert step_module.ASKS  # the step's kinds, imported with it
    kinds = ["review", "escalation", "conflict", "partial_failure", "budget", "budget_window", "compensation"]
    assert [questions.handler_for(kind).kind for kind in kinds] == kinds
    with pytest.raises(AgentError) as caught:
        questions.handler_for("horoscope")
    assert str(caught.value) == (
        "No handler answers a question of kind 'horoscope' (known: budget, budget_window, compensation, "
        "conflict, escalation, partial_failure, review)"
    )
    with pytest.raises(ValueError, match="Handler names no kind"):
        questions.register(questions.Handler())


def test_a_failure_asks_the_kind_it_calls_for_and_the_catch_all_comes_last():
    step = _step(escalate="on_failure")
    run = _Run(step, try_number=2, tried={"bolt": "failed try 1 of this step"})

    raced = ContextEscalation("a person must decide", "price", 100, 101)
    asked = questions.on_failure(raced, run)
    assert (asked.kind, asked.options) == ("conflict", [conflict.KEEP_CURRENT, conflict.USE_MINE,
                                                       conflict.USE_VALUE, questions.FAIL])  # fmt: skip
    assert asked.state == {"key": "price", "proposed": 101, "output": None}

    first = _Run(step, try_number=1)  # no candidate left: asked at once, retries would find none either
    assert questions.on_failure(NoCandidate("every agent is out", {}), first).kind == "escalation"
    asked = questions.on_failure(NoCandidate("every agent is out", {}), run)
    assert asked.kind == "escalation"
    assert asked.options == [questions.USE_OUTPUT, "Retry with ace", questions.FAIL]  # the template's agent
    assert "**Agents tried:** ace, bolt" in asked.body
    assert asked.state == {"reason": "NoCandidate: every agent is out"}

    ask = Budget(name="b", per="day", tokens=10, at_limit="ask")
    refused = BudgetExceeded("budget 'b' is spent")
    refused.budget, refused.window = ask, "2026-11-25"
    asked = questions.on_failure(refused, run)
    assert (asked.kind, asked.options) == ("budget", [spend.RAISE, questions.FAIL])

    # no escalate: an ordinary failure stands; so does an interrupt, with escalate or not
    assert questions.on_failure(RuntimeError("boom"), _Run(_step(), try_number=2)) is None
    assert questions.on_failure(KeyboardInterrupt(), run) is None
    assert questions.on_failure(RuntimeError("boom"), _Run(step, try_number=1)) is None  # retried first


def test_a_deferring_budget_parks_the_step_until_its_next_window_which_starts_the_try_over():
    recorded = []
    run = _Run(_step())
    run.recorder.event = lambda kind, payload, discriminator: (kind, payload)
    run.recorder.record = recorded.append
    defer = Budget(name="d", per="day", tokens=10, at_limit="defer")
    refused = BudgetExceeded("budget 'd' is spent")
    refused.budget, refused.window = defer, "2026-11-25"
    wrapped = RuntimeError("the call failed")  # the model call's error, the budget's refusal its cause
    wrapped.__cause__ = refused
    parked = questions.on_failure(wrapped, run)
    assert isinstance(parked, TaskDeferred)
    assert parked.kwargs == {"kind": "budget_window", "state": {"budget": "d", "window": "2026-11-25"}}
    assert [kind for kind, _ in recorded] == ["budget.deferred"]
    assert questions.handler_for("budget_window").resume(run, None, parked.kwargs["state"]) == "started over"
    assert run.calls[-1] == ("start",)


def test_a_review_s_answer_is_the_draft_or_the_form_and_its_verdict_judges_the_draft():
    step = _step(escalate="human", output={"total": {"type": "integer"}})
    run, review = _Run(step), approval.Review()
    draft = {"total": 3}
    approved = _answer("review", [approval.APPROVE], {"draft": draft})
    assert review.apply(approved, run, {}, {}) == draft
    edited = _answer("review", [questions.USE_OUTPUT], {"draft": draft}, {"total": 4})
    assert review.apply(edited, run, {}, {}) == {"total": 4}
    assert review.verdict(approved) == {"score": 1.0, "verdict": "approve", "source": "review", "by": "ana"}
    assert review.verdict(edited)["verdict"] == "edit"
    assert review.verdict(_answer("review", [questions.USE_OUTPUT], {"draft": None}, {"total": 4})) is None
    assert approval.Escalation().verdict(approved) is None  # only a review judges a draft
    with pytest.raises(questions.PersonDecided, match="ana chose 'Reject'"):
        _answer("review", [questions.REJECT], {"draft": draft}).raise_if_refused("draft")


def test_an_escalation_s_answer_retries_with_the_chosen_agent_or_takes_the_typed_output():
    run, handler = _Run(_step(escalate="on_failure")), approval.Escalation()
    assert handler.apply(_answer("escalation", ["Retry with bolt"], {}), run, {}, {}) == {"text": "called"}
    assert run.calls == [("call", "bolt")]
    typed = _answer("escalation", [questions.USE_OUTPUT], {}, {"text": "by hand"})
    assert handler.apply(typed, run, {}, {}) == {"text": "by hand"}


def test_a_conflict_s_answer_is_the_context_write_and_the_step_keeps_its_output(store):
    contexts = ContextStore(store)
    run = _Run(_step(), store=store)
    handler = conflict.Conflict()
    assert handler.finishes is False  # the write is the answer: the step writes no context again
    state = {"key": "price", "proposed": 101, "output": {"text": "priced"}}

    def current() -> Any:
        entry = contexts.get("run_q", "price")
        return entry.value if entry else None

    assert handler.apply(_answer("conflict", [conflict.KEEP_CURRENT], state), run, {}, {}) == {
        "text": "priced"
    }
    assert current() is None  # kept: nothing written
    handler.apply(_answer("conflict", [conflict.USE_MINE], state), run, {}, {})
    assert current() == 101
    handler.apply(_answer("conflict", [conflict.USE_VALUE], state, {"value": 99}), run, {}, {})
    assert current() == 99


def test_a_partial_failure_s_answer_continues_retries_or_takes_the_given_outputs():
    run, handler = _Run(_step()), partial_failure.PartialFailure()
    failures = [{"id": "i1", "error": "boom", "agents": ["ace"]}, {"id": "i2", "error": "bust", "agents": []}]
    state = {"failures": failures, "batch": None}
    went_on = handler.apply(_answer("partial_failure", [partial_failure.CONTINUE], state), run, {}, {})
    assert (went_on["failures"], went_on["total"]) == (failures, 3)
    assert [r["id"] for r in went_on["results"]] == ["i0"]
    given = _answer("partial_failure", [questions.USE_OUTPUT], state, {"outputs": {"i1": {"text": "one"}}})
    output = handler.apply(given, run, {}, {})
    assert output["results"][-1] == {"id": "i1", "agent": None, "output": {"text": "one"}}
    assert ([f["id"] for f in output["failures"]], output["total"]) == (["i2"], 3)
    handler.apply(_answer("partial_failure", [partial_failure.RETRY_FAILED], state), run, {}, {})
    assert run.calls == [("fan_out",)]
    question = partial_failure.partial_failure_question(run.step, run.context, failures, 3, [0, 3])
    assert question.subject == "flow.draft: 2 of 3 subtasks failed" and question.state["batch"] == [0, 3]


class _Saga:
    def __init__(self):
        self.marked: list[tuple[str, str]] = []
        self.skipped: list[set[str]] = []

    def targets(self) -> list[Any]:
        return [SimpleNamespace(name="ship"), SimpleNamespace(name="bill")]

    def mark_done(self, target: Any, by: str) -> None:
        self.marked.append((target.name, by))

    def run(self, skip: set[str] = frozenset()) -> str:
        self.skipped.append(set(skip))
        return "outcome"


@pytest.mark.parametrize(
    ("chosen", "marked", "given_up"),
    [
        ([compensation.DONE_BY_HAND], [("ship", "ana")], ["bill"]),
        ([compensation.RETRY], [], ["bill"]),
        ([compensation.LEAVE], [], ["bill", "ship"]),
        ([], [], ["bill", "ship"]),  # a timeout with no default leaves it undone
    ],
)
def test_a_compensation_s_answer_marks_retries_or_gives_up_and_the_saga_goes_on(chosen, marked, given_up):
    saga, concluded = _Saga(), []
    host = SimpleNamespace(
        saga=saga, log=SimpleNamespace(info=lambda *args: None),
        conclude=lambda outcome, left: concluded.append((outcome, left)) or "concluded",
    )  # fmt: skip
    event = {"chosen_options": chosen, "responded_by_user": {"name": "ana"}}
    state = {"target": "ship", "given_up": ["bill"]}
    assert questions.handler_for("compensation").resume(host, event, state) == "concluded"
    assert saga.marked == marked
    assert concluded == [("outcome", given_up)] and saga.skipped == [set(given_up)]


def test_a_question_parks_the_task_with_its_kind_and_state_for_the_resume():
    question = questions.Question(
        kind="review",
        subject="s",
        body="b",
        options=["Approve"],
        timeout=timedelta(minutes=5),
        state={"a": 1},
    )
    parked = questions.awaiting(question)
    assert (parked.method_name, parked.kwargs) == ("resume_escalation", {"kind": "review", "state": {"a": 1}})
    assert questions.requested_payload(question) == {
        "subject": "s", "options": ["Approve"], "kind": "review", "reason": "", "timeout_s": 300.0,
    }  # fmt: skip
