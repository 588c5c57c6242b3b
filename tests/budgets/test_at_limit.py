"""What happens at a budget's limit besides failing (issue 19): ``defer`` parks the step, deferred, until the
budget's next window and goes on there with the items it held back; ``ask`` puts a Required Action to a
person, who may raise the limit once per window, in a real ``dag.test()`` answered with ``baton approve``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from baton.budgets.ledger import Ledger, Spend
from baton.coordination import spend
from baton.coordination.fanout import BatchResult
from baton.errors import BudgetExceeded
from baton.spec.budgets import Budget
from tests.budgets.test_fanout_budget import PER_CALL, WRITER, _fan, _items, offline_llm  # noqa: F401 (autouse)
from tests.threads import run_threads

NIGHT = datetime(2026, 11, 25, 22, 30, tzinfo=UTC)


def _nobody(question):
    raise AssertionError(f"no person is asked when a budget defers: {question.subject}")


def test_a_deferring_budget_parks_the_fan_out_until_its_next_window_and_goes_on_there(store):
    budget = Budget(name="leads-day", scope="agent:writer", per="day", tokens=12 * PER_CALL.tokens,
                    at_limit="defer", warn_at=None)  # fmt: skip
    items = _items(20)
    fan = _fan(store, "run_d1", [budget])
    fan.guard.clock = lambda: NIGHT
    result = fan.run(items, BatchResult())
    with pytest.raises(TaskDeferred) as caught:
        fan.join(items, result, {}, None, _nobody)
    deferred = caught.value
    assert deferred.trigger.moment == datetime(2026, 11, 26, 0, 0, 1, tzinfo=UTC)  # the window's end
    assert (deferred.method_name, deferred.kwargs) == (
        "resume_escalation",
        {"kind": "budget_window", "state": {"budget": "leads-day", "window": "2026-11-25"}},
    )
    assert len(result.results) == 12 and len(result.failures) == 8
    (event,) = [e for e in store.read("run_d1") if e.type == "budget.deferred"]
    assert event.payload["until"] == "2026-11-26T00:00:01+00:00"
    assert sorted(event.payload["items"]) == sorted(result.failures)

    # the next window: the resumed try reuses the twelve and runs the eight it held back
    later = _fan(store, "run_d1", [budget])
    later.guard.clock = lambda: NIGHT + timedelta(hours=2)
    again = BatchResult(results=later.done_before())
    output = later.join(items, later.run(items, again), {}, None, _nobody)
    assert (len(output["results"]), output["failures"], output["total"]) == (20, [], 20)
    ledger = Ledger(store)
    assert ledger.spent(budget, "2026-11-25") == (Spend(pytest.approx(12 * PER_CALL.cost), 1440), Spend())
    assert ledger.spent(budget, "2026-11-26") == (Spend(pytest.approx(8 * PER_CALL.cost), 960), Spend())


def test_a_fan_out_an_ask_budget_holds_back_asks_a_person_once_per_window(store):
    budget = Budget(name="leads-run", scope="workflow:leads", per="run", tokens=5 * PER_CALL.tokens,
                    at_limit="ask", warn_at=None)  # fmt: skip
    items = _items(9)
    fan = _fan(store, "run_a1", [budget])
    asked = []

    def person(question):
        asked.append(question)
        return RuntimeError("parked")

    result = fan.run(items, BatchResult())
    with pytest.raises(RuntimeError, match="parked"):
        fan.join(items, result, {}, None, person)
    (question,) = asked
    assert (question.kind, question.options) == ("budget", [spend.RAISE, "Fail the step"])
    assert (
        question.subject
        == "leads.assess: budget 'leads-run' (workflow:leads, per run, window run:run_a1) is spent"
    )
    assert "so 4 item(s) of the fan-out did not run" in question.body
    assert question.state == {"budget": "leads-run", "window": "run:run_a1", "reason": question.reason}
    assert question.serialized_params()["raise_by_percent"]["value"] == 50

    # once raised (by 40 %: two more calls), a second ask in the window is not made: the failures stand
    answer = type("Answer", (), {"state": question.state, "params": {"raise_by_percent": 40}, "by": "ana"})
    spend.raise_once(answer, [budget], fan.recorder)
    spend.raise_once(answer, [budget], fan.recorder)  # a second person at once: raised once
    again = BatchResult(results=fan.done_before())
    output = fan.join(items, fan.run(items, again), {}, None, _nobody)
    assert (len(output["results"]), len(output["failures"])) == (7, 2)
    assert Ledger(store).raised(budget, "run:run_a1") == Spend(0.0, 240)
    raised = [e.payload for e in store.read("run_a1") if e.type == "budget.raised"]
    assert [(r["percent"], r["tokens"], r["by"], r["first"]) for r in raised] == [(40, 240, "ana", True)]
    assert "of 840 tokens spent (raised once by a person)" in output["failures"][0]["error"]


@pytest.mark.parametrize("percent", [0, 1001, 2.5, "50", True, None, "9" * 10_000])
def test_a_raise_that_is_not_a_whole_percentage_is_refused_and_raises_nothing(store, percent):
    budget = Budget(name="b", per="day", tokens=100, at_limit="ask")
    fan = _fan(store, "run_a2", [budget])
    params = {} if percent is None else {"raise_by_percent": percent}
    answer = type(
        "Answer", (), {"state": {"budget": "b", "window": "2026-11-25"}, "params": params, "by": ""}
    )
    if percent is None:  # the form's default
        spend.raise_once(answer, [budget], fan.recorder)
        assert Ledger(store).raised(budget, "2026-11-25") == Spend(0.0, 50)
        return
    with pytest.raises(BudgetExceeded) as caught:
        spend.raise_once(answer, [budget], fan.recorder)
    assert str(caught.value) == (
        f"raise_by_percent {str(percent)[:40]!r} is not a whole number from 1 to 1000: budget 'b' was not raised"
    )
    assert Ledger(store).raised(budget, "2026-11-25") == Spend()
    gone = type("Answer", (), {"state": {"budget": "gone", "window": "w"}, "params": {}, "by": ""})
    with pytest.raises(BudgetExceeded, match="budget 'gone' is no longer in budgets.yaml: nothing to raise"):
        spend.raise_once(gone, [budget], fan.recorder)


def test_a_single_step_is_deferred_or_asked_and_fails_for_good_once_raised(store):
    from types import SimpleNamespace

    from pydantic import TypeAdapter

    from baton.agents.llm import run_llm_step
    from baton.coordination.spend import guard_for
    from baton.events.recorder import StepRecorder
    from baton.plan import CompiledStep
    from baton.spec.step import Step
    from tests.test_tracing import _TaskInstance

    spec = {"id": "assess", "agent": "writer", "instruction": "Assess",
            "usage_limits": {"input_tokens_limit": 100, "output_tokens_limit": 20}}  # fmt: skip
    step = CompiledStep(
        workflow="leads", template_version=1, spec=TypeAdapter(Step).validate_python(spec), agent=WRITER
    )
    ti = _TaskInstance(
        dag_id="leads", task_id="assess", run_id="run_s", map_index=-1, try_number=1, max_tries=3
    )
    context = {"ti": ti, "task_instance": ti, "dag_run": SimpleNamespace(run_type="manual", conf={}),
               "logical_date": None}  # fmt: skip
    recorder = StepRecorder(store, context, workflow="leads", template_version=1, agent="writer")
    full = {"per": "day", "tokens": 10, "warn_at": None}  # smaller than one call
    for at_limit in ("defer", "ask"):
        budget = Budget(name=at_limit, at_limit=at_limit, **full)
        guard = guard_for(recorder, context, timedelta(hours=1), [budget])
        with pytest.raises(BudgetExceeded) as caught:
            run_llm_step(step, WRITER, "Assess.", context, recorder, guard)
        assert not isinstance(caught.value, AirflowFailException)  # the try decides: defer or ask
        assert spend.held(caught.value) is caught.value and caught.value.budget is budget
    window = budget.window("run_s", datetime.now(UTC))
    Ledger(store).raise_once(budget, window, Spend(0.0, 1), "ana")  # raised, and still too small
    with pytest.raises(BudgetExceeded) as caught:
        run_llm_step(step, WRITER, "Assess.", context, recorder, guard)
    assert isinstance(caught.value, AirflowFailException) and spend.held(caught.value) is None
    assert "of 11 tokens spent (raised once by a person)" in str(caught.value)


def test_a_person_raises_a_run_s_budget_once_in_a_real_run(airflow_db):
    from baton.events import EventStore
    from tests.conftest import FIXTURE_DAGS, run_dag_test_in_subprocess
    from tests.hitl import Person

    person = Person("budget_ask", "assess", [spend.RAISE], {"raise_by_percent": 100}, user="finance")
    extra = {"model": "baton:offline", "offline_usage": {"input_tokens": 100, "output_tokens": 20}}
    conn = json.dumps({"conn_type": "pydanticai", "extra": extra})
    run, results, output = run_dag_test_in_subprocess(
        FIXTURE_DAGS,
        "baton-test-fixtures",
        "budget_ask",
        env={"AIRFLOW_CONN_BUDGET_LLM": conn},
        person=person,
    )
    assert person.asked is not None, output[-3000:]
    assert person.asked["subject"].startswith(
        "budget_ask.assess: budget 'ask-run' (workflow:budget_ask, per run"
    )
    assert person.asked["options"] == [spend.RAISE, "Fail the step"]
    state, assessed = results["assess"]
    assert state == "success", output[-3000:]
    leads = len(results["leads"][1]["leads"])
    # 5 calls fit, the person doubled the limit once (5 more), the rest failed without asking again
    assert (len(assessed["results"]), len(assessed["failures"]), assessed["total"]) == (10, leads - 10, leads)
    events = list(EventStore.from_airflow().read(run.run_id))
    kinds = [e.type for e in events]
    assert (kinds.count("model.called"), kinds.count("approval.requested"), kinds.count("budget.raised")) == (
        10,
        1,
        1,
    )
    (raised,) = [e.payload for e in events if e.type == "budget.raised"]
    assert (raised["percent"], raised["tokens"], raised["by"]) == (100, 600, "finance")
    tokens = sum(
        e.payload["input_tokens"] + e.payload["output_tokens"] for e in events if e.type == "model.called"
    )
    assert tokens == 1200  # the raised limit, to the token


def test_a_routed_step_whose_agent_s_budget_falls_back_goes_once_to_the_cheapest_that_fits(
    store, tmp_path, monkeypatch
):
    from types import SimpleNamespace

    from pydantic import TypeAdapter

    from baton.coordination.step import StepRun
    from baton.plan import CompiledStep
    from baton.spec.step import Step
    from tests.budgets.test_fanout_budget import _premium_and_thrifty
    from tests.test_tracing import _TaskInstance

    url = store.engine.url.set(drivername=store.engine.url.drivername.split("+")[0])
    monkeypatch.setenv("AIRFLOW_CONN_BATON_STORE", url.render_as_string(hide_password=False))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))
    (tmp_path / "budgets.yaml").write_text(  # premium's own budget is spent before its first call
        "budgets:\n  - {name: premium-day, scope: 'agent:premium', per: day, cost: 0.01, at_limit: fallback}\n"
    )
    premium, thrifty = _premium_and_thrifty(store)
    spec = {"id": "assess", "route": {"capabilities": ["assess"], "prefer": "reliable"}, "instruction": "Go."}
    step = CompiledStep(workflow="leads", template_version=1, spec=TypeAdapter(Step).validate_python(spec),
                        candidates=(premium, thrifty))  # fmt: skip
    ti = _TaskInstance(
        dag_id="leads", task_id="assess", run_id="run_fb", map_index=-1, try_number=1, max_tries=3
    )
    context = {"ti": ti, "task_instance": ti, "dag_run": SimpleNamespace(run_type="manual", conf={}),
               "logical_date": None}  # fmt: skip
    output = StepRun(step, context).call({"inputs": {}, "steps": {}, "context": {}, "run": {"id": "run_fb"}})
    assert "text" in output
    events = list(store.read("run_fb"))
    selected = [e for e in events if e.type == "agent.selected"]
    assert [e.agent for e in selected] == ["premium", "thrifty"]  # the router's choice, then the fallback
    assert selected[1].payload["reason"].startswith("prefer cheap: ")
    assert selected[1].payload["excluded"] == {"premium": "budget 'premium-day' refused its call"}
    refused = [e.payload for e in events if e.type == "budget.refused"]
    assert [(r["agent"], r["budget"], r["at_limit"]) for r in refused] == [
        ("premium", "premium-day", "fallback")
    ]
    assert [e.agent for e in events if e.type == "model.called"] == ["thrifty"]


def test_two_people_raising_a_budget_at_the_same_moment_raise_it_once(store):
    import threading

    budget = Budget(name="both", per="day", tokens=1000, at_limit="ask")
    ledger, barrier = Ledger(store), threading.Barrier(8)

    def answer(who: str) -> bool:
        barrier.wait(timeout=60)
        return ledger.raise_once(budget, "2026-11-25", Spend(0.0, 500), who)

    raised = run_threads([partial(answer, f"person{i}") for i in range(8)], start=barrier)
    assert sorted(raised) == [False] * 7 + [True]  # one raise, whoever was first
    assert ledger.raised(budget, "2026-11-25") == Spend(0.0, 500)
