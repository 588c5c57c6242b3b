"""The saga over a real store (SQLite and PostgreSQL) and the demo partner API: what it undoes, in
which order, with which retries, and what it does when a compensation keeps failing."""

from __future__ import annotations

import pytest
from demo.http_service import PartnerService
from pydantic import TypeAdapter

from baton.coordination.saga import Saga
from baton.events.event import Event
from baton.plan import CompiledStep, SagaPlan
from baton.spec.roster import Agent
from baton.spec.step import Step

RUN = "manual__saga"


@pytest.fixture
def partner():
    with PartnerService() as service:
        yield service


def _completed(store, step: str, output: dict, try_number: int = 1) -> None:
    common = {"run_id": RUN, "workflow": "orders", "step": step, "try_number": try_number}
    store.append(
        [
            Event(type="step.started", payload={}, **common),
            Event(type="output.recorded", payload=store.output_payload(output), **common),
            Event(type="step.succeeded", payload={}, **common),
        ]
    )


def saga_plan(undo: dict[str, dict], agents: tuple[Agent, ...] = ()) -> SagaPlan:
    """The saga of workflow ``orders`` whose steps declare ``undo`` (step id -> its compensate): the
    compiled steps are all the saga reads, no operator or DAG needed."""
    steps = {
        name: CompiledStep(
            workflow="orders",
            template_version=1,
            spec=TypeAdapter(Step).validate_python({"id": name, "skill": "score_leads", "compensate": spec}),
        )
        for name, spec in undo.items()
    }
    return SagaPlan(workflow="orders", template_version=1, steps=steps, agents={a.name: a for a in agents})


def _saga(store, partner, sleeps: list[float], **kwargs) -> Saga:
    undo_order = {
        "skill": "http_post",
        "with": {"url": partner.url("/orders/cancel"), "json": {"order": "{{ output.order }}"}},
        "retries": 2,
        "retry_delay": 0.5,
    }
    undo_draft = {"agent": "drafter", "instruction": "Withdraw the draft {{ output.title }}", "retries": 0}
    drafter = Agent(name="drafter", description="writes", llm_conn_id="baton_test_offline")
    plan = saga_plan({"order": undo_order, "draft": undo_draft}, (drafter,))
    return Saga(store, RUN, plan, sleep=sleeps.append, **kwargs)


def test_completed_steps_are_undone_newest_first_and_only_once(store, partner):
    _completed(store, "order", {"order": "A-17"})
    _completed(store, "draft", {"title": "Spring launch"})
    _completed(store, "notify", {"sent": True})  # declares no compensation: nothing to undo
    store.append([Event(type="step.failed", run_id=RUN, workflow="orders", step="ship", try_number=2)])
    sleeps: list[float] = []
    saga = _saga(store, partner, sleeps)

    assert [t.name for t in saga.targets()] == ["draft", "order"]
    outcome = saga.run()
    saga.finish(outcome)
    assert (outcome.state, outcome.compensated, outcome.stuck) == ("compensated", ["draft", "order"], None)
    # The agent's compensation ran on the offline model (baton_test_offline); the skill posted.
    assert [p["body"] for p in partner.posts("/orders/cancel")] == [{"order": "A-17"}]
    events = list(store.read(RUN, types=["saga.started", "compensation.succeeded", "saga.completed"]))
    assert [(e.type, e.payload.get("target")) for e in events] == [
        ("saga.started", None),
        ("compensation.succeeded", "draft"),
        ("compensation.succeeded", "order"),
        ("saga.completed", None),
    ]
    assert events[0].payload["failed_steps"] == ["ship"] and events[0].payload["plan"] == ["draft", "order"]
    assert sleeps == []

    again = _saga(store, partner, sleeps, saga_id="manual.2", trigger="manual").run()
    assert (again.compensated, again.already) == ([], ["draft", "order"])
    assert partner.count("/orders/cancel") == 1


def test_a_failing_compensation_is_retried_with_backoff_then_stops_the_saga(store, partner):
    _completed(store, "order", {"order": "B-2"})
    _completed(store, "draft", {"title": "Autumn"})
    partner.fail("/orders/cancel", 2)  # two refusals, then it works: within the 3 tries
    sleeps: list[float] = []
    outcome = _saga(store, partner, sleeps).run()
    assert outcome.compensated == ["draft", "order"]
    assert sleeps == [0.5, 1.0]
    failed = [e.payload for e in store.read(RUN, types=["compensation.failed"])]
    assert [(f["attempt"], f["will_retry"], f["error_class"]) for f in failed] == [
        (1, True, "SkillError"),
        (2, True, "SkillError"),
    ]


def test_a_compensation_failing_every_try_leaves_the_older_ones_untouched(store, partner):
    _completed(store, "order", {"order": "C-9"})  # older
    _completed(store, "draft", {"title": "Winter"})  # newer, undone first
    plan = saga_plan(
        {
            "draft": {"skill": "http_post", "with": {"url": partner.url("/drafts/withdraw")}, "retries": 1},
            "order": {"skill": "http_post", "with": {"url": partner.url("/orders/cancel")}},
        }
    )
    saga = Saga(store, RUN, plan, sleep=lambda _: None)
    partner.fail("/drafts/withdraw", -1)
    outcome = saga.run()
    assert outcome.stuck is not None and outcome.stuck.name == "draft"
    assert outcome.left == ["order"]
    assert outcome.error.startswith(
        "the compensation of draft (skill http_post) failed 2 time(s): SkillError: "
    )
    assert partner.count("/orders/cancel") == 0
    saga.finish(outcome, given_up=[])
    (completed,) = store.read(RUN, types=["saga.completed"])
    assert completed.payload["outcome"] == "partial" and completed.payload["failed"] == ["draft", "order"]

    # A person undid it by hand: the next pass goes on with the older step.
    saga.mark_done(outcome.stuck, "ops@example.com")
    resumed = saga.run()
    assert (resumed.already, resumed.compensated) == (["draft"], ["order"])
    (by_hand,) = [e for e in store.read(RUN, types=["compensation.succeeded"]) if e.payload["by"]]
    assert by_hand.payload == {"target": "draft", "attempt": 0, "by": "ops@example.com", "sha256": ""}
