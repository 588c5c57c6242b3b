"""support_triage in real ``dag.test()`` runs, offline: the demo's steady traffic in ``make run``. Its
tickets are filed with a demo partner helpdesk (a PartnerService); one run meets the helpdesk in an outage
(503) on its first try and files every ticket on its retry, once the outage is over.

Runs (one each, shared by the tests): a healthy one, and one through an outage."""

from __future__ import annotations

import pytest
from demo.http_service import Outage, PartnerService

from baton.coordination import live
from baton.events import EventStore
from tests.conftest import DAGS, run_dag_test_in_subprocess

DAG_ID = "support_triage"


@pytest.fixture(scope="module")
def helpdesk():
    with PartnerService(outages=[Outage("/outage/tickets", 0, 5)]) as service:
        yield service


def _run(helpdesk: PartnerService, base: str):
    return run_dag_test_in_subprocess(DAGS, "dags-folder", DAG_ID, {"helpdesk_url": helpdesk.url(base)})


def _events(run_id: str, *types: str) -> list:
    return list(EventStore.from_airflow().read(run_id, types=list(types) or None))


@pytest.fixture(scope="module")
def healthy(helpdesk, airflow_db):
    return _run(helpdesk, "/healthy")


@pytest.fixture(scope="module")
def through_outage(helpdesk, airflow_db):
    return _run(helpdesk, "/outage")


def _version(run_id: str) -> str:
    """The task-id prefix of the version the run was assigned: '' (version 1) or 'v2.'."""
    (assigned,) = _events(run_id, "version.assigned")
    assert assigned.payload["rollout"] == "support_triage:v1->v2"
    return "" if assigned.payload["version"] == 1 else "v2."


def test_a_run_triages_its_tickets_and_files_each_once_with_the_triage(healthy, helpdesk):
    run, results, output = healthy
    assert run.state == "success", output[-4000:]
    v = _version(run.run_id)
    tickets = results[f"{v}load_tickets"][1]["tickets"]
    assert len(tickets) == 3 and len({t["id"] for t in tickets}) == 3
    triage = results[f"{v}triage"][1]
    assert triage["priority"] in ("low", "normal", "high")
    posts = helpdesk.posts("/healthy/tickets")
    assert sorted(p["body"]["ticket"] for p in posts) == sorted(t["id"] for t in tickets)
    assert {p["status"] for p in posts} == {201}
    assert {p["body"]["priority"] for p in posts} == {triage["priority"]}
    assert len(helpdesk.by_key("/healthy/tickets")) == 3  # one idempotency key per ticket


def test_its_triage_is_an_arm_of_the_experiment_and_spends_against_both_budgets(healthy):
    run, _, _ = healthy
    v = _version(run.run_id)
    (assigned,) = _events(run.run_id, "variant.assigned")
    assert assigned.payload["experiment"] == f"support_triage.{v}triage"
    assert assigned.payload["variant"] in ("as_written", "brief")
    (called,) = _events(run.run_id, "model.called")
    tokens = called.payload["input_tokens"] + called.payload["output_tokens"]
    (reserved,) = _events(run.run_id, "budget.reserved")
    (settled,) = _events(run.run_id, "budget.settled")
    assert [name for name, _ in settled.payload["budgets"]] == ["triage-run", "triager-day"]
    assert settled.payload["tokens"] == tokens > 0
    # the reservation (the prompt and 1,024 tokens out) fits the run's budget of 2,000 with room
    assert tokens < reserved.payload["tokens"] <= 1500


def test_its_triage_is_scored_by_its_live_checks_when_its_output_is_sampled(healthy, through_outage):
    # evaluate: a quarter of the triage's outputs, by the hash of the run: of the two runs, those sampled
    for run, _, _ in (healthy, through_outage):
        v = _version(run.run_id)
        judged = [e for e in _events(run.run_id, "feedback.recorded") if e.payload["source"] == "evaluation"]
        if not live.sampled(f"{run.run_id}/triage/-1", 0.25):
            assert judged == []
            continue
        (scored,) = judged
        assert (scored.step, scored.agent, scored.try_number) == (f"{v}triage", "support_triager", 1)
        assert scored.payload == {"score": 1.0, "verdict": "score", "source": "evaluation", "by": "evaluate"}


def test_an_outage_fails_the_first_try_and_the_retry_files_each_ticket_once(through_outage, helpdesk):
    run, results, output = through_outage
    assert run.state == "success", output[-4000:]
    v = _version(run.run_id)
    failed = _events(run.run_id, "subtask.failed")
    assert len(failed) == 3 and {e.agent for e in failed} == {"helpdesk_api"}
    assert {e.payload["error_class"] for e in failed} == {"SkillError"}
    assert all("answered 503 Service Unavailable" in e.payload["error"] for e in failed)
    (step_failed,) = _events(run.run_id, "step.failed")
    assert (step_failed.step, step_failed.agent, step_failed.try_number) == (
        f"{v}file_tickets",
        "helpdesk_api",
        1,
    )
    posts = helpdesk.posts("/outage/tickets")
    assert [p["status"] for p in posts] == [503] * 3 + [201] * 3
    assert sorted(helpdesk.by_key("/outage/tickets").values()) == [1, 1, 1]  # each filed once, on the retry
    filed = results[f"{v}file_tickets"][1]
    assert filed["failures"] == [] and filed["total"] == 3
