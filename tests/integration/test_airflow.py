"""A real Airflow: the dag processor files broken templates as import errors while the healthy ones
load; airflow standalone runs a workflow triggered through the REST API with a JWT; alerts (a failed
step, a missed Deadline Alert) reach a Slack webhook recorder on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from demo.http_service import PartnerService

from baton.cli.approve import SETTLE_S
from baton.coordination.tasks import EVAL_STEP
from baton.events import projections
from baton.events.event import Event
from baton.events.replay import fold
from baton.events.store import EventStore, engine_for
from baton.queue import weight_of
from baton.spec.priority import default_max_wait
from devtools.standalone import Standalone
from tests.agents.openai_server import OpenAICompatibleServer
from tests.conftest import airflow_starting_timeout
from tests.integration.shared_airflow import (
    BENCH_PLAIN,
    BENCH_WORKFLOWS,
    HEALTHY,
    HOSTILE_COST,
    HOSTILE_FILES,
    OPERATIONS,
    unpause,
)
from tests.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.integration

# The DAGs these tests run (the others stay paused).
ACTIVE = [
    "baton_compensate",
    "canary_release",
    "crash_recovery",
    "daily_operations",
    "deadline_overrun",
    "escalation",
    "failing_step",
    "gated_release",
    "lead_qualification",
    "monitor_probe",
    "order_saga",
]


# The shared Airflow (tests/integration/shared_airflow.py) and what it talks to, under this module's names.
@pytest.fixture
def server(shared_llm_server: OpenAICompatibleServer) -> OpenAICompatibleServer:
    return shared_llm_server


@pytest.fixture
def otlp(shared_otlp: OtlpReceiver) -> OtlpReceiver:
    return shared_otlp


@pytest.fixture
def slack(shared_slack):  # instead of tests/conftest.py's recorder: the one the shared Airflow posts to
    return shared_slack


def test_the_real_dag_processor_loads_the_healthy_templates_and_files_the_broken_ones(shared_running):
    """What the running Airflow's own dag processor made of the dags folder, read over REST: every healthy
    template and Baton's own DAGs are DAGs; the broken and hostile templates are one import error, of
    baton_template_errors.py, naming each file (the processor files it when it reaches that file)."""
    healthy = HEALTHY + BENCH_WORKFLOWS
    expected = sorted(healthy + BENCH_PLAIN + OPERATIONS)
    deadline = time.monotonic() + 60
    while True:  # shared_running waited for the templates' DAGs; Baton's other DAG files may come later
        listed = sorted(
            d["dag_id"] for d in shared_running.api("GET", "/dags", params={"limit": 100}).json()["dags"]
        )
        errors = shared_running.api("GET", "/importErrors").json()["import_errors"]
        if (listed == expected and errors) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert listed == expected
    assert [error["filename"] for error in errors] == ["baton_template_errors.py"]
    text = errors[0]["stack_trace"]
    broken = 2 + len(HOSTILE_FILES) - 1 + len(HOSTILE_COST)  # upper_extension.YAML is healthy
    assert (
        f"{broken} Baton template file(s) could not be loaded ({len(healthy)} healthy workflow(s) load"
        in text
    )
    assert "workflows/unknown_agent.yaml:9: steps[1].agent: unknown agent 'sales_bot'" in text
    assert "workflows/invalid_cron.yaml:5: schedule: invalid cron expression '0 25 * * *'" in text
    for name in [*HOSTILE_FILES, *(f"{case.name}.yaml" for case in HOSTILE_COST)]:
        if name != "upper_extension.YAML":
            assert f"workflows/{name}" in text, name
    assert "workflows/alias_bomb_with.yaml:15: more than 200,000 values once its aliases" in text
    assert "workflows/huge_file.yaml: the file is 5,000,137 bytes, over the limit" in text


@pytest.fixture(scope="module")
def running(shared_running: Standalone) -> Standalone:
    return unpause(shared_running, ACTIVE)


def test_rest_trigger_with_conf_runs_the_workflow_and_its_outputs_are_readable(running):
    response = running.trigger("lead_qualification", {"region": "na", "min_score": 40})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    assert running.wait_for_run("lead_qualification", run_id)["state"] == "success"
    path = f"/dags/lead_qualification/dagRuns/{run_id}/taskInstances"
    states = {ti["task_id"]: ti["state"] for ti in running.api("GET", path).json()["task_instances"]}
    assert states == {"score_leads": "success", "value_leads": "success"}
    scores = _output(running, "lead_qualification", run_id, "score_leads")
    assert scores["region"] == "na"
    assert {lead["region"] for lead in scores["leads"]} == {"na"}
    assert scores["qualified"] == sum(lead["score"] >= 40 for lead in scores["leads"])


def test_conf_that_breaks_the_inputs_schema_is_refused_naming_the_field(running):
    response = running.trigger("lead_qualification", {"region": "mars"})
    assert 400 <= response.status_code < 500
    assert "region" in response.text and "mars" in response.text, response.text
    response = running.trigger("lead_qualification", {"min_score": 250})
    assert 400 <= response.status_code < 500
    assert "min_score" in response.text and "250" in response.text, response.text


def test_the_scheduler_weighs_tasks_by_baton_priority_and_a_run_sets_its_own_within_allow(running):
    # lead_qualification: priority high, allow [normal, urgent], deadline 30m (dags/workflows)
    for refused in (101, "low", 49, "x" * 5000):
        response = running.trigger("lead_qualification", {"baton_priority": refused})
        assert 400 <= response.status_code < 500 and "baton_priority" in response.text, response.text
    runs = {}
    for level in ("urgent", 50):
        response = running.trigger("lead_qualification", {"baton_priority": level})
        assert response.status_code == 200, response.text
        runs[level] = response.json()["dag_run_id"]
    weights, queued = {}, {}
    for level, run_id in runs.items():
        run = running.wait_for_run("lead_qualification", run_id)
        assert run["state"] == "success"
        queued[level] = datetime.fromisoformat(run["queued_at"])
        path = f"/dags/lead_qualification/dagRuns/{run_id}/taskInstances"
        weights[level] = {
            ti["task_id"]: ti["priority_weight"] for ti in running.api("GET", path).json()["task_instances"]
        }
    # no deadline is near (30 min, runs of seconds): each task must start within its level's age bound
    for level, expected_wait in (("urgent", default_max_wait(100)), (50, default_max_wait(50))):
        assert set(weights[level].values()) == {weight_of(queued[level] + expected_wait)}, (weights, queued)
    assert min(weights["urgent"].values()) > max(weights[50].values())
    (assigned,) = _store(running).read(runs["urgent"], types=["priority.assigned"])
    assert (assigned.payload["level"], assigned.payload["level_from"]) == (100, "run")
    assert assigned.payload["weight"] == weights["urgent"]["score_leads"]
    assert assigned.payload["reason"] == "level 100: waits at most 1.0 min behind more urgent work"


def test_the_coordination_pages_queue_lists_waiting_tasks_in_the_schedulers_order(running):
    headers = {"Authorization": f"Bearer {running.token()}"}
    assert running.api("PATCH", "/dags/lead_qualification", json={"is_paused": True}).status_code == 200
    run_ids = []
    try:
        for _ in range(2):  # a paused DAG's runs stay queued, their tasks created and weighed
            response = running.trigger("lead_qualification", {"region": "na"})
            assert response.status_code == 200, response.text
            run_ids.append(response.json()["dag_run_id"])
        answer = httpx.get(f"{running.url}/baton/api/dashboard/queue", headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        mine = [q for q in answer.json()["queue"] if q["run_id"] in run_ids]
        assert [q["run_id"] for q in mine] == [run_ids[0]] * 2 + [run_ids[1]] * 2  # first queued, first out
        assert [q["weight"] for q in mine] == sorted((q["weight"] for q in mine), reverse=True)
        assert {q["state"] for q in mine} == {"run queued"}
        for q in mine:  # level high, no run started yet: weighed by its age bound from the trigger
            queued = datetime.fromisoformat(q["queued_at"])
            assert abs(datetime.fromisoformat(q["start_by"]) - (queued + default_max_wait(75))) <= timedelta(
                seconds=2
            )
        assert httpx.get(f"{running.url}/baton/api/dashboard/queue", timeout=30).status_code == 401
    finally:
        for run_id in run_ids:
            running.api("DELETE", f"/dags/lead_qualification/dagRuns/{run_id}")
        running.api("PATCH", "/dags/lead_qualification", json={"is_paused": False})


def test_scheduled_workflows_run_on_their_schedule(running):
    dag = running.api("GET", "/dags/daily_operations").json()
    assert dag["is_paused"] is False
    # Unpaused without catchup, the scheduler runs the latest 09:00 at once.
    deadline = time.monotonic() + 60  # unpaused by the fixture: the scheduler creates the run shortly
    while not (
        runs := running.api("GET", "/dags/daily_operations/dagRuns", params={"run_type": "scheduled"}).json()
    )["dag_runs"]:
        assert time.monotonic() < deadline, "no scheduled run of daily_operations after 60 s"
        time.sleep(0.5)
    assert [run["logical_date"][11:16] for run in runs["dag_runs"]] == ["09:00"]
    # its id unique across DAGs: support_triage, every two minutes, runs at 09:00 too (Baton's store keys by id)
    assert re.fullmatch(r"scheduled__\S+T09:00:00\+00:00_[A-Za-z0-9]{8}", runs["dag_runs"][0]["dag_run_id"])
    run = running.wait_for_run("daily_operations", runs["dag_runs"][0]["dag_run_id"])
    assert run["state"] == "success"
    assert dag["timetable_summary"] == "0 9 * * *"
    after = datetime.fromisoformat(dag["next_dagrun_run_after"])
    now = datetime.now(UTC)
    assert after.hour == 9 and after.minute == 0
    assert now - timedelta(days=1) <= after <= now + timedelta(days=1)
    # Baton's listener recorded it as a scheduled run, which the monitor's fold turns into the runs_started
    # signal that baton.ops.monitor.schedules reads
    from baton.ops.monitor import schedules, signals

    store = _store(running)
    # the run may have ended within SETTLE of its start: its events are all committed, so fold as of a
    # moment after that (a tick would fold them at its next minute)
    signals.fold(store, datetime.now(UTC) + signals.SETTLE)
    started = schedules.started(store, "daily_operations", now - timedelta(hours=1))
    assert len(started) == 1 and now.timestamp() - 600 < started[0] <= now.timestamp(), started


def test_a_task_killed_mid_step_leaves_a_consistent_history(running, server):
    response = running.trigger("crash_recovery")
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    store = EventStore(engine_for(f"sqlite:///{running.home / 'baton_store.db'}"))
    deadline = time.monotonic() + 120
    started = []
    while not (started and any(path.startswith("/slow/") for path, _ in server.requests)):
        assert time.monotonic() < deadline, "the first try never reached its model call"
        time.sleep(0.2)
        started = [e for e in store.read(run_id) if e.type == "step.started" and e.try_number == 1]
    os.kill(started[0].payload["pid"], signal.SIGKILL)  # the task process, in the middle of its model call
    server.release()
    assert running.wait_for_run("crash_recovery", run_id)["state"] == "success"

    events = list(store.read(run_id))
    facts = [(e.step, e.try_number, e.type) for e in events]
    assert len(facts) == len(set(facts)), "nothing is recorded twice"
    for fact in [
        ("assess", 1, "step.started"),
        ("assess", 1, "step.failed"),
        ("assess", 1, "step.retried"),
        ("assess", 2, "step.started"),
        ("assess", 2, "model.called"),
        ("assess", 2, "step.succeeded"),
        (None, 0, "run.succeeded"),
    ]:
        assert fact in facts, fact
    assert ("assess", 1, "step.succeeded") not in facts
    lost = next(e for e in events if e.type == "step.failed")
    assert lost.payload["recorded_by"] in ("listener", "next try")
    assert lost.payload["error_class"] == "TaskLost", lost.payload  # whoever saw it first
    state = fold(run_id, events)
    assert (state.state, state.step_states(), state.steps[("assess", -1)].try_number) == (
        "success",
        {"assess": "success"},
        2,
    )
    (ti,) = running.api("GET", f"/dags/crash_recovery/dagRuns/{run_id}/taskInstances").json()[
        "task_instances"
    ]
    assert (ti["state"], ti["try_number"]) == ("success", 2), "Airflow says the same"


def test_a_test_whose_setup_starts_an_airflow_is_given_the_time_for_it(request, running):
    """tests/conftest.py: pytest's timeout covers a test's setup, and the first test here started the shared
    Airflow; a test that starts none keeps pyproject.toml's 600 s (the next one)."""
    assert request.node.get_closest_marker("timeout").args == (airflow_starting_timeout(request.config),)
    assert airflow_starting_timeout(request.config) == 480 + 300 + 600


def test_a_test_that_starts_no_airflow_keeps_the_usual_timeout(request):
    assert request.node.get_closest_marker("timeout") is None
    assert request.config.getini("timeout") == "600"


def test_the_events_api_is_behind_airflows_authentication(running):
    assert httpx.get(f"{running.url}/baton/api/runs", timeout=30).status_code == 401
    headers = {"Authorization": f"Bearer {running.token()}"}
    runs = httpx.get(f"{running.url}/baton/api/runs", headers=headers, timeout=30)
    assert runs.status_code == 200, runs.text
    lead = next(r for r in runs.json() if r["trigger_id"] == "lead_qualification")
    assert lead["agents_involved"] == ["marketing_lead_generator", "finance_revenue_tracker"]
    timeline = httpx.get(
        f"{running.url}/baton/api/runs/{lead['workflow_id']}/timeline", headers=headers, timeout=30
    )
    assert timeline.json()["steps"] == {"score_leads": "success", "value_leads": "success"}
    assert timeline.json()["events"][0]["type"] == "run.started"
    stats = {
        s["agent"]: s
        for s in httpx.get(f"{running.url}/baton/api/agents/stats", headers=headers, timeout=30).json()
    }
    assert stats["marketing_lead_generator"]["succeeded"] >= 1
    assert (
        httpx.get(f"{running.url}/baton/api/runs/nope/timeline", headers=headers, timeout=30).status_code
        == 404
    )


def test_baton_cost_is_on_the_api_behind_airflows_authentication(running):
    url, headers = f"{running.url}/baton/api/cost", {"Authorization": f"Bearer {running.token()}"}
    assert httpx.get(url, timeout=30).status_code == 401
    answer = httpx.get(url, headers=headers, params={"by": "agent", "days": 30}, timeout=30)
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert (document["by"], document["budgets_error"]) == ("agent", None)
    assert all({"key", "calls", "cost", "tokens"} == set(line) for line in document["spend"])
    budgets = {row["budget"]: row for row in document["budgets"]}  # the shared dags' bench/budget.py file
    assert {"b-day", "worker-day"} <= set(budgets) and budgets["b-day"]["per"] == "day"
    assert budgets["b-day"]["limit_cost"] > 0 and budgets["worker-day"]["limit_tokens"] > 0
    for params in (
        {"days": 0},
        {"days": 10**6},
        {"days": "7; DROP TABLE baton_events"},
        {"days": "9" * 5000},
        {"by": "team"},
        {"by": "workflow' OR '1'='1"},
    ):
        refused = httpx.get(url, headers=headers, params=params, timeout=30)
        assert refused.status_code == 422, (params, refused.status_code, refused.text[:300])


def test_error_patterns_are_on_the_api_behind_airflows_authentication(running):
    url, headers = f"{running.url}/baton/api/errors", {"Authorization": f"Bearer {running.token()}"}
    assert httpx.get(url, timeout=30).status_code == 401
    # three kinds of failure of a workflow of this test's own (a name of this run's, so that a second run in
    # the same Airflow home counts its own), as the listener records them: 5 timeouts that differ in numbers
    # and addresses, 2 refusals that name a person, 1 schema error
    probe = f"errors_probe_{uuid.uuid4().hex[:8]}"
    messages = [f"timed out after {30 + i} s calling https://erp.example/orders/{i}" for i in range(5)]
    messages += [f"refused for {who}@example.com" for who in ("ann", "bob")] + ["'total' is not a number"]
    _store(running).append([
        Event(type="step.failed", run_id=f"{probe}-{i}", workflow=probe, step="post", try_number=1,
              agent="poster", payload={"error_class": "AgentError", "error": message})
        for i, message in enumerate(messages)
    ])  # fmt: skip
    params = {"hours": 48, "recent": 2, "workflow": probe, "limit": 2}
    answer = httpx.get(url, headers=headers, params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert (document["hours"], document["recent_hours"], document["total"]) == (48, 2, 3)
    assert [(p["count"], p["message"], p["change"]) for p in document["patterns"]] == [
        (5, "timed out after <n> s calling <url>", "new"),
        (2, "refused for <email>", "new"),
    ]  # the two most frequent of three; the addresses masked
    assert document["patterns"][0]["runs"] == [
        f"{probe}-{i}" for i in (4, 3, 2)
    ]  # newest first, three at most
    for params in (
        {"hours": 0},
        {"hours": "nan"},
        {"hours": 10**9},
        {"recent": "-1"},
        {"workflow": "w" * 5000},
        {"limit": 0},
        {"limit": 10**6},
        {"limit": "all"},
    ):
        refused = httpx.get(url, headers=headers, params=params, timeout=30)
        assert refused.status_code == 422, (params, refused.status_code, refused.text[:300])


def test_a_score_for_a_step_is_recorded_through_the_api_as_the_logged_in_user(running):
    store = _store(running)
    executions = projections.executions(store, limit=500)
    run_id = next(r["workflow_id"] for r in executions if r["trigger_id"] == "lead_qualification")
    url = f"{running.url}/baton/api/dags/lead_qualification/runs/{run_id}/feedback"
    headers = {"Authorization": f"Bearer {running.token()}"}
    assert httpx.post(url, json={"step": "score_leads", "score": 0.8}, timeout=30).status_code == 401
    answer = httpx.post(url, headers=headers, json={"step": "score_leads", "score": 0.8}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "dag_id": "lead_qualification", "run_id": run_id, "step": "score_leads", "score": 0.8, "by": "admin"
    }  # fmt: skip
    (recorded,) = store.read(run_id, types=["feedback.recorded"])
    assert (recorded.step, recorded.payload) == (
        "score_leads", {"score": 0.8, "verdict": "score", "source": "api", "by": "admin"}
    )  # fmt: skip
    for body, status, said in (
        ({"step": "score_leads", "score": 1.5}, 422, "less than or equal to 1"),
        ({"step": "score_leads", "score": "NaN"}, 422, "finite number"),
        ({"step": "score_leads", "score": 0.5, "note": "x" * 10_000}, 422, "Extra inputs are not permitted"),
        ({"step": "s" * 5000, "score": 0.5}, 422, "at most 250 characters"),
        ({"step": "write_posting", "score": 0.5}, 422, f"run '{run_id}' has no step 'write_posting'"),
        ({"step": "score_leads'; DROP TABLE baton_events; --", "score": 0.5}, 422, "has no step"),
    ):
        refused = httpx.post(url, headers=headers, json=body, timeout=30)
        assert (refused.status_code, said in refused.text) == (status, True), (body, refused.text[:300])
    elsewhere = url.replace("/dags/lead_qualification/", "/dags/revenue_milestone/")  # not this run's DAG
    refused = httpx.post(elsewhere, headers=headers, json={"step": "score_leads", "score": 0.5}, timeout=30)
    assert (refused.status_code, refused.json()["detail"]) == (
        404,
        f"no run '{run_id}' of 'revenue_milestone'",
    )
    nowhere = url.replace(run_id, "no-such-run")
    refused = httpx.post(nowhere, headers=headers, json={"step": "score_leads", "score": 0.5}, timeout=30)
    assert refused.status_code == 404
    assert len(list(store.read(run_id, types=["feedback.recorded"]))) == 1  # nothing refused was recorded


def _output(running: Standalone, dag_id: str, run_id: str, task_id: str) -> Any:
    """A step's output, read through the REST API."""
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    entry = running.api("GET", path, params={"deserialize": True})
    assert entry.status_code == 200, entry.text
    value = entry.json()["value"]
    return json.loads(value) if isinstance(value, str) else value


def _awaiting_person(running: Standalone, dag_id: str, run_id: str, task_id: str) -> tuple[str, dict]:
    """Wait until the step asks a person; its hitlDetails path and content."""
    deadline = time.monotonic() + 120
    state_path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
    while (state := running.api("GET", state_path).json().get("state")) != "awaiting_input":
        if state in ("failed", "success", "upstream_failed"):
            logs = sorted(running.home.glob(f"logs/dag_id={dag_id}/run_id={run_id}/task_id={task_id}/*.log"))
            raise AssertionError(
                f"{task_id} ended {state} instead of asking a person:\n"
                + "\n".join(f"{path.name}: {path.read_text()[-4000:]}" for path in logs)
            )
        assert time.monotonic() < deadline, f"{task_id} never asked a person (state {state})"
        time.sleep(0.5)
    path = f"{state_path}/-1/hitlDetails"
    # as `baton approve` does: an answer in the first seconds after the park can hit Airflow 3.3's
    # requeue race (the resumed try is failed as "state mismatch"); see baton.cli.approve.SETTLE_S
    time.sleep(SETTLE_S)
    return path, running.api("GET", path).json()


def test_when_every_agent_fails_a_person_answers_through_the_rest_api_and_the_run_goes_on(running):
    response = running.trigger("escalation")
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    hitl, detail = _awaiting_person(running, "escalation", run_id, "draft")
    assert detail["options"] == [
        "Use the output below",
        "Retry with ghost_writer_a",
        "Retry with ghost_writer_b",
        "Fail the step",
    ]
    assert "every agent failed" in detail["subject"]
    assert "ghost_writer_a, ghost_writer_b" in detail["body"]  # both tries, one agent each
    assert list(detail["params"]) == ["headline"]

    headline = "Baton ships parallel agents"
    answer = running.api(
        "PATCH",
        hitl,
        json={"chosen_options": ["Use the output below"], "params_input": {"headline": headline}},
    )
    assert answer.status_code == 200, answer.text

    # escalate: human — the agent drafts, a person approves (the Required Actions page, here REST)
    review, detail = _awaiting_person(running, "escalation", run_id, "sign_off")
    assert detail["options"] == ["Approve", "Use the output below", "Reject"]
    proposed = detail["params"]["decision"]["value"]
    assert proposed in ("ship", "wait")  # the agent's draft, filled into the form
    assert f"Sign off the launch of {headline}" in detail["body"]
    # ... here with `baton approve` over the running Airflow's REST API (issue 17)
    approved = running.command(
        "baton",
        "approve",
        run_id,
        "sign_off",
        "--api",
        running.url,
        "--password",
        running.password,
        "--by",
        "lead",
    )
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert f"answered sign_off of {run_id} through {running.url}: Approve" in approved.stdout
    try:
        assert running.wait_for_run("escalation", run_id)["state"] == "success"
    except TimeoutError:  # say where it stands: the tasks' states and the sign-off's log
        states = running.api("GET", f"/dags/escalation/dagRuns/{run_id}/taskInstances").json()
        logs = sorted(running.home.glob(f"logs/dag_id=escalation/run_id={run_id}/task_id=sign_off/*.log"))
        raise AssertionError(
            f"{[(ti['task_id'], ti['state']) for ti in states.get('task_instances', [])]}\n"
            + "\n".join(f"{path.name}: {path.read_text()[-3000:]}" for path in logs)
        ) from None

    assert _output(running, "escalation", run_id, "sign_off") == {"decision": proposed}
    assert _output(running, "escalation", run_id, "draft") == {"headline": headline}
    published = _output(running, "escalation", run_id, "publish")
    assert f"Publish {headline}" in published["text"]  # the person's answer flowed into the next step

    events = list(EventStore(engine_for(f"sqlite:///{running.home / 'baton_store.db'}")).read(run_id))
    selected = [(e.try_number, e.agent) for e in events if e.type == "agent.selected" and e.step == "draft"]
    assert selected == [(1, "ghost_writer_a"), (2, "ghost_writer_b")]  # reassigned on the next try
    second = next(e for e in events if e.type == "agent.selected" and e.try_number == 2)
    assert second.payload["excluded"] == {"ghost_writer_a": "failed try 1 of this step"}
    asked = next(e for e in events if e.type == "approval.requested" and e.step == "draft")
    assert (asked.payload["kind"], asked.try_number, asked.payload["timeout_s"]) == ("escalation", 2, 600.0)
    answered = next(e for e in events if e.type == "approval.answered" and e.step == "draft")
    assert answered.payload["chosen"] == ["Use the output below"] and answered.payload["fields"] == [
        "headline"
    ]
    assert answered.payload["by"] == "admin"  # the REST user
    draft_states = [e.type for e in events if e.step == "draft" and e.type.startswith("step.")]
    assert draft_states[-1] == "step.succeeded" and "step.failed" in draft_states
    signed_off = [
        (e.type, e.payload.get("kind"), e.payload.get("chosen")) for e in events if e.step == "sign_off"
    ]
    assert ("approval.requested", "review", None) in signed_off
    assert ("approval.answered", None, ["Approve"]) in signed_off
    assert signed_off[-1][0] == "step.succeeded"


def test_a_new_version_that_fails_more_is_rolled_back_by_itself_and_each_run_stays_on_its_version(running):
    store, rollout = _store(running), "rollout:canary_release:v1->v2"
    runs: list[str] = []
    deadline = time.monotonic() + 240
    while not list(store.read(rollout, types=["rollout.rolled_back"])):  # rounds of runs side by side
        assert time.monotonic() < deadline and len(runs) < 60, f"no rollback after {len(runs)} runs"
        batch = [
            running.trigger("canary_release", {}).json()["dag_run_id"] for _ in range(10 if not runs else 4)
        ]
        for run_id in batch:
            running.wait_for_run("canary_release", run_id)
        runs += batch
    (back,) = store.read(rollout, types=["rollout.rolled_back"])
    assert back.payload["share"] == 0.0 and back.payload["reason"].startswith("v2 rolled back: ")
    counts = back.payload["counts"]
    assert counts["canary"]["failure_rate"] == 1.0 and counts["stable"]["failure_rate"] == 0.0, counts
    assert [e.type for e in store.read(rollout)] == ["rollout.started", "rollout.rolled_back"]
    # every run ran its own version's task and skipped the other's, and ended as that version does
    for run_id in runs:
        (assigned,) = store.read(run_id, types=["version.assigned"])
        path = f"/dags/canary_release/dagRuns/{run_id}/taskInstances"
        states = {ti["task_id"]: ti["state"] for ti in running.api("GET", path).json()["task_instances"]}
        if assigned.payload["arm"] == "canary":
            assert (states["v2.announce"], states["announce"]) == ("failed", "skipped"), states
        else:
            assert (states["announce"], states["v2.announce"]) == ("success", "skipped"), states
    # from the rollback on, every new run takes the current version
    after = [running.trigger("canary_release", {}).json()["dag_run_id"] for _ in range(3)]
    for run_id in after:
        assert running.wait_for_run("canary_release", run_id)["state"] == "success"
        (assigned,) = store.read(run_id, types=["version.assigned"])
        assert (assigned.payload["arm"], assigned.payload["how"]) == ("stable", "rolled back")
    # the same on Baton's API, behind Airflow's authentication (and a hostile filter refused)
    url = f"{running.url}/baton/api/rollouts"
    assert httpx.get(url, timeout=30).status_code == 401
    headers = {"Authorization": f"Bearer {running.token()}"}
    (shown,) = httpx.get(url, params={"workflow": "canary_release"}, headers=headers, timeout=30).json()[
        "rollouts"
    ]
    assert (shown["status"], shown["share"], shown["in_flight"]) == (
        "rolled back",
        0.0,
        {"stable": 0, "canary": 0},
    )
    assert shown["runs"]["canary"]["failures"] >= counts["canary"]["failures"]  # and any that ended since
    assert httpx.get(url, params={"workflow": "x" * 5000}, headers=headers, timeout=30).status_code == 422


def test_a_planted_regression_keeps_a_gated_rollouts_new_version_from_every_run(running, monkeypatch, capsys):
    # gated_release has a dataset (evals/), so its rollout starts only once version 2, as the dag processor
    # built it, passed it against version 1; version 2 is the planted regression (shared_airflow.py).
    from baton.cli import main as baton

    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(running.dags_folder))
    monkeypatch.setenv("AIRFLOW_CONN_BATON_STORE", running.store_url())
    status = baton(["eval", "gated_release", "--version", "2", "--record", "--workers", "2"])
    out = capsys.readouterr().out
    assert status == 1, out
    assert "a regression: v2 held 0.0 % of the checks, stable 100.0 % (tolerance 5.0 %)" in out
    store = _store(running)
    ((*_, evaluated),) = store.step_history("gated_release", EVAL_STEP, ["evaluation.completed"], 10)
    assert (evaluated["passed"], evaluated["held"], evaluated["held_stable"], evaluated["version"]) == (
        False,
        0,
        10,
        2,
    )
    assert len(evaluated["regressed"]) == 10
    runs = [running.trigger("gated_release", {"topic": "pricing"}).json()["dag_run_id"] for _ in range(3)]
    for run_id in runs:
        assert running.wait_for_run("gated_release", run_id)["state"] == "success"
        (assigned,) = store.read(run_id, types=["version.assigned"])
        assert (assigned.payload["arm"], assigned.payload["version"]) == (
            "stable",
            1,
        )  # start: 100 % if it ran
        assert assigned.payload["how"].startswith(f"v2 (digest {evaluated['digest']}) has no passing")
    rollout = "rollout:gated_release:v1->v2"
    (gated,) = store.read(rollout, types=["rollout.gated"])  # once, for the digest the evaluation recorded
    assert gated.payload["digest"] == evaluated["digest"]  # what eval read is what the dag processor built
    assert [e.type for e in store.read(rollout)] == ["rollout.gated"]


def _store(running: Standalone) -> EventStore:
    return EventStore(engine_for(f"sqlite:///{running.home / 'baton_store.db'}"))


def _raised_alerts(running: Standalone, run_id: str, count: int, timeout: float = 30) -> list:
    """The run's ``alert.raised`` events, once there are ``count`` of them (each is recorded after its post)."""
    deadline = time.monotonic() + timeout
    while len(raised := list(_store(running).read(run_id, types=["alert.raised"]))) < count:
        assert time.monotonic() < deadline, f"{len(raised)} alert.raised event(s) after {timeout} s"
        time.sleep(0.2)
    return raised


def _alert_fields(text: str) -> dict[str, str]:
    """``*Name:* `value``` lines of an alert's Slack text -> {name: value}."""
    fields = {}
    for line in text.splitlines():
        if line.startswith("*") and ":* " in line:
            name, value = line[1:].split(":* ", 1)
            fields[name] = value.strip("`")
    return fields


def test_a_failed_step_alerts_slack_with_workflow_run_step_error_class_attempt_and_link(running, slack):
    response = running.trigger("failing_step")
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    assert running.wait_for_run("failing_step", run_id)["state"] == "failed"
    post = slack.wait_for(lambda body: f"`{run_id}`" in body["text"], timeout=60)
    failed = next(e for e in _store(running).read(run_id) if e.type == "step.failed")
    assert failed.payload["error_class"]
    link = f"{running.url}/dags/failing_step/runs/{quote(run_id, safe='')}"
    assert post["text"].splitlines()[0] == ":rotating_light: *Baton: step failed*"
    assert _alert_fields(post["text"]) == {
        "Workflow": "failing_step",
        "Run": run_id,
        "Step": "draft",
        "Error class": failed.payload["error_class"],
        "Attempt": "1",
    }
    assert post["text"].endswith(f"<{link}|open the run in Airflow>")
    assert httpx.get(link, timeout=30).status_code == 200  # the UI page of the run
    (raised,) = _raised_alerts(running, run_id, count=1)
    assert (raised.step, raised.payload["kind"], raised.payload["delivered"]) == (
        "draft",
        "step_failed",
        True,
    )


def test_a_run_that_overruns_its_deadlines_alerts_slack_through_airflow_deadline_alerts(running, slack):
    response = running.trigger("deadline_overrun")
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    try:
        # The scheduler finds the missed deadlines (5 s for the run, 6 s for sign_off, both after the
        # run was queued); the triggerer runs baton.alerts.deadline_missed, which posts to Slack.
        run_post = slack.wait_for(
            lambda body: f"`{run_id}`" in body["text"] and "*Step:*" not in body["text"], timeout=90
        )
        step_post = slack.wait_for(
            lambda body: f"`{run_id}`" in body["text"] and "*Step:* `sign_off`" in body["text"], timeout=30
        )
        for post in (run_post, step_post):
            assert post["text"].splitlines()[0] == ":rotating_light: *Baton: deadline missed*"
            assert _alert_fields(post["text"])["Workflow"] == "deadline_overrun"
            assert _alert_fields(post["text"])["Run"] == run_id
            assert post["text"].endswith(
                f"<{running.url}/dags/deadline_overrun/runs/{quote(run_id, safe='')}|open the run in Airflow>"
            )
        assert "> the run had not finished 0:00:05 after the run was queued" in run_post["text"]
        assert "> step sign_off was not done 0:00:06 after the run was queued" in step_post["text"]
        raised = _raised_alerts(running, run_id, count=2)  # recorded just after the post
        assert sorted((e.step or "", e.payload["kind"], e.payload["delivered"]) for e in raised) == [
            ("", "deadline_missed", True),
            ("sign_off", "deadline_missed", True),
        ]

        # The person answers late; the run goes on and ends well, with no further alert.
        review, _ = _awaiting_person(running, "deadline_overrun", run_id, "sign_off")
        answer = running.api("PATCH", review, json={"chosen_options": ["Approve"], "params_input": {}})
        assert answer.status_code == 200, answer.text
        assert running.wait_for_run("deadline_overrun", run_id)["state"] == "success"
        assert len([post for post in slack.posts if f"`{run_id}`" in post["text"]]) == 2
    finally:
        run = running.api("GET", f"/dags/deadline_overrun/dagRuns/{run_id}").json()
        if run.get("state") not in ("success", "failed"):  # nothing left waiting for a person
            running.api("PATCH", f"/dags/deadline_overrun/dagRuns/{run_id}", json={"state": "failed"})


@pytest.fixture(scope="module")
def partner():
    """The demo partner API: charging and cancelling a plan are refused under /i1."""
    with PartnerService(fail={"/i1/charge": -1, "/i1/plan/cancel": -1}) as service:
        yield service


def test_a_stuck_compensation_alerts_and_asks_a_person_and_the_run_ends_failed_with_its_saga(
    running, partner, slack
):
    response = running.trigger("order_saga", {"service": partner.url("/i1")})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    hitl, detail = _awaiting_person(running, "order_saga", run_id, "_compensate")
    # The three reservations were released, newest first; cancelling the plan failed both tries.
    reserved = [p["body"]["part"] for p in partner.posts("/i1/reserve")]
    assert [p["body"]["part"] for p in partner.posts("/i1/release")] == list(reversed(reserved))
    assert [p["status"] for p in partner.posts("/i1/plan/cancel")] == [500, 500]
    assert detail["options"] == ["I undid it by hand", "Retry the compensation", "Leave it undone"]
    assert detail["subject"] == "order_saga: the compensation of plan keeps failing"
    post = slack.wait_for(lambda body: f"`{run_id}`" in body["text"] and "CompensationFailed" in body["text"])
    assert _alert_fields(post["text"])["Step"] == "plan"

    answer = running.api("PATCH", hitl, json={"chosen_options": ["I undid it by hand"], "params_input": {}})
    assert answer.status_code == 200, answer.text
    assert running.wait_for_run("order_saga", run_id)["state"] == "failed"
    path = f"/dags/order_saga/dagRuns/{run_id}/taskInstances"
    states = {ti["task_id"]: ti["state"] for ti in running.api("GET", path).json()["task_instances"]}
    assert states == {
        "plan": "success",
        "reserve": "success",
        "charge": "failed",
        "ship": "upstream_failed",
        "_compensate": "failed",
    }
    events = list(_store(running).read(run_id))
    undone = [(e.payload["target"], e.payload["by"]) for e in events if e.type == "compensation.succeeded"]
    assert undone == [(f"reserve[{part}]", "") for part in reversed(reserved)] + [("plan", "admin")]
    (completed,) = [e for e in events if e.type == "saga.completed"]
    assert completed.payload["outcome"] == "compensated"
    asked = [e for e in events if e.type == "approval.requested" and e.step == "_compensate"]
    assert [e.payload["kind"] for e in asked] == ["compensation"]

    # From the UI: the baton_compensate DAG, triggered with the run's id, finds nothing left to undo.
    response = running.trigger("baton_compensate", {"run_id": run_id, "reason": "audit"})
    assert response.status_code == 200, response.text
    again = response.json()["dag_run_id"]
    assert running.wait_for_run("baton_compensate", again)["state"] == "success"
    summary = _output(running, "baton_compensate", again, "compensate")
    assert summary["outcome"] == "compensated" and summary["compensated"] == [t for t, _ in undone]
    assert len(partner.posts("/i1/release")) == 3


def test_baton_compensate_from_the_ui_undoes_a_successful_run(running, partner):
    response = running.trigger("order_saga", {"service": partner.url("/i2")})
    run_id = response.json()["dag_run_id"]
    assert running.wait_for_run("order_saga", run_id)["state"] == "success"
    response = running.trigger("baton_compensate", {"run_id": run_id})
    assert response.status_code == 200, response.text
    undo = response.json()["dag_run_id"]
    assert running.wait_for_run("baton_compensate", undo)["state"] == "success"
    accepted = [p["path"] for p in partner.posts() if p["path"].startswith("/i2/") and p["status"] < 300]
    # The run's conf (the partner's URL) came from Airflow: the undo reached the same partner.
    assert accepted[-6:] == [
        "/i2/ship/cancel",
        "/i2/refund",
        "/i2/release",
        "/i2/release",
        "/i2/release",
        "/i2/plan/cancel",
    ]


# --- the monitor (issue 18; its incident's whole course: test_monitor_airflow.py), last: it reads every event
# the tests above left


def _incident(store: EventStore, where: str, statuses: set[str], timeout: float) -> dict:
    """The incident at ``where`` once its latest transition is one of ``statuses``."""
    from baton.ops.monitor import record

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [
            row for row in record.incidents(store) if row["where"] == where and row["status"] in statuses
        ]
        if found:
            return found[0]
        time.sleep(2)
    raise AssertionError(f"no {statuses} incident at {where} after {timeout} s: {record.incidents(store)}")


def _eventually(check: Any, what: str, timeout: float = 60) -> None:
    """``check()`` becomes true within ``timeout`` seconds (what a tick does after it recorded a step)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(1)


def _probe(running: Standalone) -> tuple[str, list]:
    """One run of monitor_probe (it succeeds: a failed item goes to the other agent); its events."""
    response = running.trigger("monitor_probe")
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    assert running.wait_for_run("monitor_probe", run_id)["state"] == "success"
    return run_id, list(_store(running).read(run_id))


def test_a_person_answers_an_incident_on_the_required_actions_page_and_through_baton_api(
    running, monkeypatch
):
    """An incident opened on this Airflow's store (a tick of the monitor over a burst of failures of an agent
    no workflow names). Its runbook's escalate step asks a person on the Required Actions page (a run of
    baton_incident_escalation, asked once however often the step is carried out); the person stops the
    runbook there. Then Baton's API under /baton: listed, its report read, acknowledged by the logged-in
    user (admin), once; what it refuses, refused."""
    from baton.ops.incidents import Action
    from baton.ops.monitor import loop, paging, record, signals
    from baton.spec.monitoring import Monitoring
    from tests.ops.test_monitor import _calls

    store = _store(running)
    store.append(_calls("api_probe_agent", datetime.now(UTC) - timedelta(minutes=10), 10, 6, 0.5, seed=7))
    # The tick folds events in sequence order up to the first younger than the settle time: Airflow's
    # own, appended just before these, must have settled.
    time.sleep(signals.SETTLE.total_seconds() + 1)
    opened = loop.tick(store, Monitoring(), datetime.now(UTC))
    (incident_id,) = {t.incident_id for t in opened.transitions if t.where == "agent:api_probe_agent"}

    # The escalate step, carried out as the monitor's tick does, with the connection to this Airflow's API
    assert running.api("GET", f"/dags/{paging.DAG_ID}").json()["is_paused"] is False  # active from the start
    api = {"conn_type": "http", "host": running.url, "login": "admin", "password": running.password}
    monkeypatch.setenv("AIRFLOW_CONN_BATON_AIRFLOW_API", json.dumps(api))
    with store.engine.begin() as conn:
        book = record.read_book(conn)
    step = Action(
        id=f"{incident_id}/9", incident_id=incident_id, step=9, do="escalate", target="agent:api_probe_agent",
        params={"to": "on-call"},
    )  # fmt: skip
    run_id = f"incident__{incident_id}__9"
    where = f"on Airflow's Required Actions page ({paging.DAG_ID} run {run_id})"
    assert paging.request(step, book) == f"escalated to on-call: Slack, and asked {where}"
    assert paging.request(step, book) == f"escalated to on-call: Slack, and had asked already {where}"
    hitl, detail = _awaiting_person(running, paging.DAG_ID, run_id, "ask")
    assert detail["options"] == list(paging.OPTIONS)
    assert detail["subject"] == f"Incident {incident_id}: failure_rate at agent:api_probe_agent (critical)"
    assert "calls bad in the last 15m" in detail["body"]
    answer = running.api("PATCH", hitl, json={"chosen_options": ["Stop the runbook"], "params_input": {}})
    assert answer.status_code == 200, answer.text
    assert running.wait_for_run(paging.DAG_ID, run_id)["state"] == "success"
    stopped = [
        e.payload["detail"] for e in record.timeline(store, incident_id) if e.type == "incident.updated"
    ]
    assert {"stopped_by": "admin"} in stopped, stopped
    # Anyone who may trigger the DAG by hand is held to its params: a malformed id, a huge or empty text
    for conf in (
        {"incident_id": "inc-1; DROP TABLE baton_events"},
        {"incident_id": incident_id, "body": "x" * 100_000},
        {"incident_id": incident_id, "subject": ""},
    ):
        body = {"logical_date": None, "conf": conf}
        refused = running.api("POST", f"/dags/{paging.DAG_ID}/dagRuns", json=body)
        assert refused.status_code == 400 and "Invalid input for param" in refused.text, refused.text[:300]

    url, headers = f"{running.url}/baton/api/incidents", {"Authorization": f"Bearer {running.token()}"}
    assert httpx.get(url, timeout=30).status_code == 401
    assert httpx.post(f"{url}/{incident_id}/ack", timeout=30).status_code == 401
    listed = httpx.get(url, headers=headers, params={"limit": 1000}, timeout=30)
    assert listed.status_code == 200, listed.text
    (row,) = [r for r in listed.json() if r["id"] == incident_id]
    assert (row["status"], row["kind"], row["where"]) == (
        "updated",
        "failure_rate",
        "agent:api_probe_agent",
    )  # stopped
    report = httpx.get(f"{url}/{incident_id}", headers=headers, timeout=30).json()
    assert report["report"]["affected_agents"] == ["api_probe_agent"] and report["report"]["mttr_s"] is None
    assert report["report"]["mttd_s"] > 0 and report["timeline"][0]["type"] == "incident.opened"

    acts = [
        httpx.post(f"{url}/{incident_id}/{verb}", headers=headers, timeout=30)
        for verb in ("ack", "ack", "stop")
    ]
    assert [(a.status_code, a.json()["by"], a.json()["changed"]) for a in acts] == [
        (200, "admin", 1),
        (200, "admin", 0),  # twice changes nothing
        (200, "admin", 0),  # stopped already, on the Required Actions page
    ]
    kinds = [(e.type, (e.payload.get("detail") or {}).get("by")) for e in record.timeline(store, incident_id)]
    assert ("incident.acknowledged", "admin") in kinds, kinds
    # refused: a malformed id or verb, a limit out of range, an incident that is not open
    for method, path, params in (
        ("GET", "/inc-XYZ", {}),
        ("POST", f"/{incident_id}/delete", {}),
        ("POST", "/inc-../ack", {}),
        ("GET", "", {"limit": 0}),
        ("GET", "", {"limit": 10**6}),
    ):
        answer = httpx.request(method, f"{url}{path}", headers=headers, params=params, timeout=30)
        assert answer.status_code in (404, 422), (path, answer.status_code, answer.text)
    unknown = httpx.post(f"{url}/inc-000000000000/ack", headers=headers, timeout=30)
    assert unknown.status_code == 409 and "no open incident 'inc-000000000000'" in unknown.json()["detail"]
    assert httpx.get(f"{url}/inc-000000000000", headers=headers, timeout=30).status_code == 404


def test_spans_of_the_step_its_items_and_their_model_calls_arrive_nested_under_the_task_span(running, otlp):
    run_id, _ = _probe(running)

    def tree_of_the_run(spans) -> bool:
        task = [
            s
            for s in spans
            if s.name == "worker.assess" and s.attributes.get("airflow.dag_run.run_id") == run_id
        ]
        return bool(task) and any(s.parent_id == task[0].span_id for s in spans) and len(spans) > 20

    spans = otlp.wait_for(tree_of_the_run, timeout=60)
    (task,) = [
        s for s in spans if s.name == "worker.assess" and s.attributes["airflow.dag_run.run_id"] == run_id
    ]
    (step,) = [s for s in spans if s.name == "baton.step" and s.parent_id == task.span_id]
    assert step.trace_id == task.trace_id
    assert (step.attributes["baton.workflow"], step.attributes["baton.step"]) == ("monitor_probe", "assess")
    items = [s for s in spans if s.name == "baton.subtask" and s.parent_id == step.span_id]
    assert len({s.attributes["baton.item"] for s in items}) == 14  # one per lead, each under the step
    by_id = {i.span_id: i for i in items}
    # Every item's agent call (OpenTelemetry's GenAI conventions), under its item's span, by its agent.
    calls = [s for s in spans if s.name.startswith("invoke_agent ") and s.parent_id in by_id]
    assert len(calls) >= 14
    for call in calls:
        agent = by_id[call.parent_id].attributes["baton.agent"]
        assert call.name == f"invoke_agent {agent}" and agent in {"flaky_prober", "steady_prober"}
        assert call.attributes["gen_ai.operation.name"] == "invoke_agent"
        assert call.attributes["gen_ai.agent.name"] == agent
        assert (call.attributes["baton.workflow"], call.attributes["baton.step"]) == (
            "monitor_probe",
            "assess",
        )
    answered = [c for c in calls if "gen_ai.usage.input_tokens" in c.attributes]
    assert answered  # a call whose model server refused it has no usage: its span says the error's class
    for call in answered:
        assert call.attributes["gen_ai.usage.input_tokens"] > 0 and call.attributes["gen_ai.request.model"]
        assert call.attributes["gen_ai.provider.name"] and call.attributes["baton.cost"] >= 0
    # pydantic-ai's span of each model request, under its call's
    call_ids = {c.span_id for c in calls}
    chats = [s for s in spans if s.name.startswith("chat ") and s.parent_id in call_ids]
    assert {c.parent_id for c in chats} >= {c.span_id for c in answered}
    assert all(c.attributes["gen_ai.operation.name"] == "chat" for c in chats)
    # no instruction, prompt or output in any attribute: messages keep their roles and parts' kinds only
    texts = [str(v) for s in spans for v in s.attributes.values()]
    assert not [t for t in texts if "Assess lead" in t]
    for chat in chats:
        for key in ("gen_ai.input.messages", "gen_ai.output.messages"):
            parts = [p for m in json.loads(chat.attributes.get(key, "[]")) for p in m["parts"]]
            assert not [p for p in parts if {"content", "arguments", "result"} & set(p)], parts
        assert "gen_ai.system_instructions" not in chat.attributes


def test_baton_verify_on_the_running_airflow_repairs_a_deleted_run_end_and_reports_a_planted_run(running):
    from sqlalchemy import delete

    from baton.events import schema

    run_id, _ = _probe(running)
    store, ghost = _store(running), "manual__planted_by_the_test"
    e = schema.events.c
    with store.engine.begin() as conn:
        conn.execute(delete(schema.events).where(e.run_id == run_id, e.type == "run.succeeded"))
    store.append([Event(type="run.started", run_id=ghost, workflow="monitor_probe")])

    verified = running.command("baton", "verify", "--since", "2h")
    assert verified.returncode == 1, verified.stdout + verified.stderr[-2000:]
    lines = verified.stdout.splitlines()
    assert (
        f"repaired  missing_run_end    monitor_probe  {run_id}: ended success in Airflow; the store has no end"
        in lines
    ), lines
    assert (
        f"REPORTED  unknown_to_airflow monitor_probe  {ghost}: the store has it; Airflow has no such run"
        in lines
    ), lines
    (end,) = store.read(run_id, types=["run.succeeded"])
    assert end.payload["recorded_by"] == "verify"


def test_runbook_actions_pause_resume_and_retry_through_airflows_rest_api(running, monkeypatch):
    from baton.ops.airflow_api import AirflowApiError
    from baton.ops.incidents import Action
    from baton.ops.monitor import actions

    store, now = _store(running), datetime.now(UTC)

    def act(do: str, target: str, **params) -> str:
        incident = f"inc-test-{target.partition(':')[2]}"  # a pause and its undoing: one incident's step
        action = Action(
            id=f"{incident}/{do}", incident_id=incident, step=0, do=do, target=target, params=params
        )
        return actions.carry_out(store, action, now)

    # Without the connection nothing changes, and the outcome says what is missing.
    monkeypatch.delenv("AIRFLOW_CONN_BATON_AIRFLOW_API", raising=False)
    assert act("pause_workflow", "workflow:lead_qualification") == (
        "not carried out: pause_workflow needs the Airflow connection baton_airflow_api (Airflow's REST API)"
    )
    api = {"conn_type": "http", "host": running.url, "login": "admin", "password": running.password}
    monkeypatch.setenv("AIRFLOW_CONN_BATON_AIRFLOW_API", json.dumps(api))

    assert act("pause_workflow", "workflow:lead_qualification") == "paused workflow lead_qualification"
    assert running.api("GET", "/dags/lead_qualification").json()["is_paused"] is True
    assert act("resume_workflow", "workflow:lead_qualification") == "resumed workflow lead_qualification"
    assert running.api("GET", "/dags/lead_qualification").json()["is_paused"] is False
    # A workflow a person paused before the incident stays paused when the incident resolves.
    assert running.api("GET", "/dags/lead_followup").json()["is_paused"] is True  # never unpaused here
    assert (
        act("pause_workflow", "workflow:lead_followup")
        == "paused workflow lead_followup (it was paused already)"
    )
    assert act("resume_workflow", "workflow:lead_followup") == (
        "left workflow lead_followup paused: it was paused before the incident"
    )
    assert running.api("GET", "/dags/lead_followup").json()["is_paused"] is True

    # A failed run since the incident opened is cleared and runs again (its step's second try).
    since = datetime.now(UTC)
    response = running.trigger("failing_step")
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    assert running.wait_for_run("failing_step", run_id)["state"] == "failed"
    outcome = act("retry_failed_runs", "workflow:failing_step", failed_since=since.isoformat(), max_runs=5)
    assert outcome == f"retried 1 failed run(s): failing_step/{run_id}"
    path = f"/dags/failing_step/dagRuns/{quote(run_id, safe='')}/taskInstances/draft"
    deadline = time.monotonic() + 120
    while running.api("GET", path).json()["try_number"] < 2 and time.monotonic() < deadline:
        time.sleep(1)
    assert running.api("GET", path).json()["try_number"] == 2
    assert running.wait_for_run("failing_step", run_id)["state"] == "failed"  # its agent still fails

    # A wrong password is an error naming Airflow's answer, not a silent no-op.
    monkeypatch.setenv("AIRFLOW_CONN_BATON_AIRFLOW_API", json.dumps({**api, "password": "wrong"}))
    with pytest.raises(AirflowApiError, match=r"POST /auth/token: Airflow answered 401"):
        act("pause_workflow", "workflow:lead_qualification")
