"""StepOperator in a real ``dag.test()``: offline model, a real OpenAI-compatible server, re-asks
on invalid output, ``when`` skips and joins — one DAG run, many assertions."""

from __future__ import annotations

import hashlib
import json

import pytest
from airflow.providers.common.ai.utils.logging import MODEL_NAME_XCOM_KEY
from sqlalchemy import Text, cast, select

from baton.events import EventStore, schema
from baton.events.replay import fold
from baton.hooks.offline import OFFLINE_MODEL_NAME
from tests.agents.openai_server import OpenAICompatibleServer
from tests.conftest import FIXTURE_DAGS, run_dag_test_in_subprocess

ANSWER = {"verdict": "hold", "score": 3}
SECRET = "sk-PLANTED-7f3a9c21"  # the LLM connections' password
MARKER = "MARKER-4b8e1d"  # written into the remote step's instruction


@pytest.fixture(scope="module")
def server():
    with OpenAICompatibleServer(ANSWER) as srv:
        yield srv


@pytest.fixture(scope="module")
def agent_run(server, airflow_db):
    """One dag.test() of agent_paths in its own process: (the run, the step results, all it printed)."""
    env = {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(
            {
                "conn_type": "pydanticai",
                "host": server.url + path,
                "password": SECRET,
                "extra": {"model": "openai-chat:gpt-local"},
            }
        )
        for conn_id, path in (
            ("local_llm", "/valid/v1"),
            ("local_llm_invalid", "/invalid/v1"),
            ("local_llm_limited", "/invalid-limited/v1"),
        )
    }
    return run_dag_test_in_subprocess(FIXTURE_DAGS, "baton-test-fixtures", "agent_paths", env=env)


def test_offline_model_is_deterministic_and_schema_valid(agent_run):
    _, results, _ = agent_run
    (state_a, a), (state_b, b), (state_other, other) = results["same_a"], results["same_b"], results["other"]
    assert (state_a, state_b, state_other) == ("success", "success", "success")
    assert a == b, "the same instruction must give the same output"
    assert a != other, "a different instruction must give a different output"
    for output in (a, other):
        assert set(output) == {"verdict", "score", "notes"}
        assert output["verdict"] in ("go", "hold")
        assert 0 <= output["score"] <= 10
        assert output["notes"] and all(isinstance(note, str) for note in output["notes"])
    assert "Assess pricing for EMEA" in other["notes"][0]


def test_a_step_without_output_fields_returns_text(agent_run):
    state, output = agent_run[1]["free_text"]
    assert state == "success"
    assert list(output) == ["text"]
    assert output["text"].startswith("Offline answer #") and output["text"].endswith(": Describe pricing")


def test_a_real_openai_compatible_server_gets_the_rendered_prompt_and_schema(agent_run, server):
    state, output = agent_run[1]["remote"]
    assert (state, output) == ("success", ANSWER)
    calls = [body for path, body in server.requests if path.startswith("/valid/")]
    assert len(calls) == 1
    body = calls[0]
    assert body["model"] == "gpt-local"
    assert body["messages"][0] == {"role": "system", "content": "You are the remote analyst."}
    verdict = agent_run[1]["same_a"][1]["verdict"]
    assert body["messages"][-1]["content"] == f"Second opinion on {verdict} for pricing (ref {MARKER})"
    schema = body["tools"][0]["function"]["parameters"]
    assert schema["properties"]["verdict"]["enum"] == ["go", "hold"]
    assert (schema["properties"]["score"]["minimum"], schema["properties"]["score"]["maximum"]) == (0, 10)


def test_the_model_call_is_an_event_not_three_xcoms_per_try(agent_run):
    """common-ai's run metadata (run id, usage, model name) would be three XCom round trips per try: the
    nested call does not push them; the ``model.called`` event carries the same figures."""
    run, _, _ = agent_run
    for step in ("remote", "same_a", "stubborn"):
        for key in ("run_id", "usage", MODEL_NAME_XCOM_KEY):
            assert run.xcom(step, key) is None, (step, key)
    assert run.xcom("remote") == ANSWER, "the step's own output is still its return value"
    calls = {e.step: e.payload for e in _events(run.run_id) if e.type == "model.called"}
    assert calls["same_a"]["model"] == OFFLINE_MODEL_NAME
    assert (
        calls["remote"]["input_tokens"],
        calls["remote"]["output_tokens"],
        calls["remote"]["requests"],
    ) == (
        42,
        7,
        1,
    )


def test_invalid_output_is_asked_again_then_fails_the_step(agent_run, server):
    assert agent_run[1]["stubborn"][0] == "failed"
    calls = [body for path, body in server.requests if path.startswith("/invalid/")]
    assert len(calls) == 3, "one call and output_retries=2 re-asks"
    retry = calls[-1]["messages"][-1]
    assert retry["role"] == "tool" and "verdict" in retry["content"]
    # When the re-asks run out, the step's error names the constraint the last answer broke.
    assert "gave no valid output for step 'stubborn' after 2 re-ask(s)" in agent_run[2]
    assert (
        "the last answer broke: verdict: Field required (got {'unexpected': True}); "
        "unexpected: Extra inputs are not permitted (got True)"
    ) in agent_run[2]


def test_the_offline_model_answers_a_registered_model_with_a_pattern_and_nested_arrays(agent_run):
    import re

    results = agent_run[1]
    assert results["plan"][0] == "success" and results["build"][0] == "success"
    subtasks = results["plan"][1]["subtasks"]
    assert subtasks and all(re.fullmatch(r"[a-z][a-z0-9_]*", s["id"]) for s in subtasks)
    assert all(s["depends_on"] == [] for s in subtasks)  # optional: the default, not made-up ids
    built = results["build"][1]["results"]
    assert sorted(item["id"] for item in built) == sorted(s["id"] for s in subtasks)
    for item in built:
        output = item["output"]
        assert re.fullmatch(r"[a-z][a-z0-9_]*", output["part"])
        assert len(output["lines"]) >= 2
        for line in output["lines"]:
            assert re.fullmatch(r"[A-Z]{3}-[0-9]{2}", line["sku"]) and 1 <= line["qty"] <= 9
            assert re.fullmatch(r"2026-01-\d\d", line["due"])
        assert output["owner"]["email"].endswith("@example.com") and output["owner"]["team"] in (
            "core",
            "edge",
        )


def test_when_false_skips_the_step_and_its_dependants_but_not_a_join(agent_run):
    results = agent_run[1]
    assert results["skip_me"][0] == "skipped"
    assert results["after_skip"][0] == "skipped"
    state, output = results["join_any"]
    assert state == "success" and output["total"] == 14
    assert agent_run[0].state == "failed"  # because of 'stubborn'


def _events(run_id: str) -> list:
    return list(EventStore.from_airflow().read(run_id))


def test_step_states_rebuilt_from_events_equal_airflows(agent_run):
    run, _, _ = agent_run
    airflow_states = run.task_states
    state = fold(run.run_id, _events(run.run_id))
    assert state.corrupt == []
    assert state.step_states() == airflow_states
    assert airflow_states["after_skip"] == "skipped" and airflow_states["stubborn"] == "failed"
    assert state.state == run.state == "failed"
    assert sorted(state.agents) == [
        "limited_analyst",
        "offline_analyst",
        "remote_analyst",
        "stubborn_analyst",
    ]


def test_each_fact_is_recorded_once_whoever_saw_it(agent_run):
    run, _, _ = agent_run
    keys = [
        (e.step, e.map_index, e.try_number, e.type) for e in _events(run.run_id) if e.type != "model.called"
    ]
    assert len(keys) == len(set(keys))
    recorders = {
        e.step: e.payload.get("recorded_by") for e in _events(run.run_id) if e.type == "step.skipped"
    }
    assert recorders == {"skip_me": "operator", "after_skip": "run end"}


def test_model_calls_are_recorded_with_tokens_and_cost_but_not_the_prompt(agent_run, server):
    run, _, _ = agent_run
    (call,) = [e for e in _events(run.run_id) if e.type == "model.called" and e.step == "remote"]
    prompt = next(body for path, body in server.requests if path.startswith("/valid/"))["messages"][-1][
        "content"
    ]
    assert call.agent == "remote_analyst" and call.template_version == 1
    assert {k: call.payload[k] for k in ("model", "requests", "input_tokens", "output_tokens")} == {
        "model": "gpt-local",
        "requests": 1,
        "input_tokens": 42,
        "output_tokens": 7,
    }
    assert call.payload["cost"] == pytest.approx(42 / 1000 * 0.5 + 7 / 1000 * 1.5)
    assert call.payload["prompt_sha256"] == hashlib.sha256(prompt.encode()).hexdigest()
    assert call.payload["prompt_chars"] == len(prompt)
    (failed,) = [e for e in _events(run.run_id) if e.type == "model.called" and e.step == "stubborn"]
    assert failed.payload["requests"] == 3
    assert failed.payload["model"] == "gpt-local", "a failed try names the model that answered wrongly"


def test_no_secret_or_prompt_text_reaches_the_events_or_the_task_logs(agent_run, server):
    run, _, logs = agent_run
    assert any(MARKER in body["messages"][-1]["content"] for _, body in server.requests), (
        "the marker was sent"
    )
    assert "Step remote (agent remote_analyst): instruction of" in logs, "the task logs were captured"
    e = schema.events.c
    with EventStore.from_airflow().engine.connect() as conn:
        rows = conn.execute(
            select(*(cast(c, Text) for c in schema.events.columns)).where(e.run_id == run.run_id)
        )
        stored = "\n".join(" ".join(str(value) for value in row) for row in rows)
    assert "remote" in stored and "gpt-local" in stored
    for planted in (SECRET, MARKER):
        assert planted not in stored, f"{planted} is in the events table"
        assert planted not in logs, f"{planted} is in the task logs"


def test_a_steps_usage_limits_stop_its_model_calls(agent_run, server):
    run, results, _ = agent_run
    assert results["limited"][0] == "failed"
    assert [path for path, _ in server.requests if path.startswith("/invalid-limited/")] == [
        "/invalid-limited/v1/chat/completions"
    ], "request_limit 1: the re-ask is never sent"
    (failed,) = [e for e in _events(run.run_id) if e.type == "step.failed" and e.step == "limited"]
    assert failed.payload["error_class"] == "AgentError"
    assert failed.payload["error"].startswith(
        "Agent 'limited_analyst' hit the usage limits of step 'limited' ({'request_limit': 1}): "
    )


def test_a_step_failing_before_it_runs_still_records_its_start_and_its_error(agent_run):
    run, results, _ = agent_run
    assert results["bad_condition"][0] == "failed"
    events = [e for e in _events(run.run_id) if e.step == "bad_condition"]
    assert [e.type for e in events] == ["step.started", "step.failed", "alert.raised"]
    assert events[2].payload["kind"] == "step_failed" and events[2].payload["error_class"] == "UndefinedError"
    failed = events[1].payload
    assert (failed["error_class"], failed["recorded_by"]) == ("UndefinedError", "operator")
    assert "missing_field" in failed["error"]
