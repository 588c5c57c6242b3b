"""AgentOperator in a real ``dag.test()``: offline model, a real OpenAI-compatible server, re-asks
on invalid output, ``when`` skips and joins — one DAG run, many assertions."""

from __future__ import annotations

import json

import pytest
from airflow.providers.common.ai.utils.logging import MODEL_NAME_XCOM_KEY

from baton.agents.offline import OFFLINE_MODEL_NAME
from tests.agents.openai_server import OpenAICompatibleServer
from tests.conftest import run_dag_test

ANSWER = {"verdict": "hold", "score": 3}


@pytest.fixture(scope="module")
def server():
    with OpenAICompatibleServer(ANSWER) as srv:
        yield srv


@pytest.fixture(scope="module")
def agent_run(fixture_dagbag, server, airflow_db):
    conns = {"local_llm": "/valid/v1", "local_llm_invalid": "/invalid/v1"}
    mp = pytest.MonkeyPatch()
    for conn_id, path in conns.items():
        mp.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}",
            json.dumps(
                {
                    "conn_type": "pydanticai",
                    "host": server.url + path,
                    "password": "sk-local-test",
                    "extra": {"model": "openai-chat:gpt-local"},
                }
            ),
        )
    assert fixture_dagbag.import_errors == {}
    run, results = run_dag_test(fixture_dagbag.dags["agent_paths"])
    mp.undo()
    return run, results


def test_offline_model_is_deterministic_and_schema_valid(agent_run):
    _, results = agent_run
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
    assert body["messages"][-1]["content"] == f"Second opinion on {verdict} for pricing"
    schema = body["tools"][0]["function"]["parameters"]
    assert schema["properties"]["verdict"]["enum"] == ["go", "hold"]
    assert (schema["properties"]["score"]["minimum"], schema["properties"]["score"]["maximum"]) == (0, 10)


def test_common_ai_run_metadata_comes_along(agent_run):
    run, _ = agent_run
    ti = run.get_task_instance("remote")
    assert ti.xcom_pull(task_ids="remote", key=MODEL_NAME_XCOM_KEY) == "gpt-local"
    assert ti.xcom_pull(task_ids="same_a", key=MODEL_NAME_XCOM_KEY) == OFFLINE_MODEL_NAME
    usage = ti.xcom_pull(task_ids="remote", key="usage")
    assert (usage["input_tokens"], usage["output_tokens"], usage["requests"]) == (42, 7, 1)


def test_invalid_output_is_asked_again_then_fails_the_step(agent_run, server):
    assert agent_run[1]["stubborn"][0] == "failed"
    calls = [body for path, body in server.requests if path.startswith("/invalid/")]
    assert len(calls) == 3, "one call and output_retries=2 re-asks"
    retry = calls[-1]["messages"][-1]
    assert retry["role"] == "tool" and "verdict" in retry["content"]


def test_when_false_skips_the_step_and_its_dependants_but_not_a_join(agent_run):
    results = agent_run[1]
    assert results["skip_me"][0] == "skipped"
    assert results["after_skip"][0] == "skipped"
    state, output = results["join_any"]
    assert state == "success" and output["total"] == 14
    assert agent_run[0].state == "failed"  # because of 'stubborn'
