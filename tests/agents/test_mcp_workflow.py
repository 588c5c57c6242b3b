"""An MCP tool in a real Baton run: one ``dag.test()`` of tests/fixtures/mcp/dags (mcp_quote), with the
pricing MCP server and the OpenAI-compatible model server on 127.0.0.1.

``price``: pricing_analyst's model (``/tools/v1``) calls ``pricing_get_price`` on the MCP server and
answers with what it returned; ``quote`` reads ``{{ steps.price.* }}``; ``orphan`` and ``stranded``
name an MCP connection that is not defined and one nothing listens on, and fail.
"""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest

from baton.events import EventStore
from tests.agents.openai_server import OpenAICompatibleServer
from tests.conftest import own_bundle, run_dag_test_in_subprocess
from tests.mcp_server import PricingServer

BUNDLE = "baton-test-mcp"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mcp" / "dags"
WIDGET = {"product": "widget", "price_usd": 19.5, "currency": "USD"}  # tests/mcp_server.py's price list
FIX = (
    "Create an Airflow connection of type mcp with host = the server's URL, e.g. "
    'AIRFLOW_CONN_{}=\'{{"conn_type": "mcp", "host": "http://127.0.0.1:3001/mcp"}}\'.'
)


@pytest.fixture(scope="module")
def mcp_run(airflow_db, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mcp") / "dags"
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/mcp"
    tool_call = ("pricing_get_price", {"product": "widget"})
    with PricingServer() as pricing, OpenAICompatibleServer({}, tool_call=tool_call) as llm:
        env = {
            **own_bundle(FIXTURE, folder, BUNDLE),
            "AIRFLOW_CONN_BATON_TEST_MCP_LLM": json.dumps(
                {
                    "conn_type": "pydanticai",
                    "host": llm.url + "/tools/v1",
                    "password": "sk-mcp-test",
                    "extra": {"model": "openai-chat:gpt-local"},
                }
            ),
            "AIRFLOW_CONN_BATON_TEST_MCP_PRICING": json.dumps(pricing.connection()),
            "AIRFLOW_CONN_BATON_TEST_MCP_DEAD": json.dumps({"conn_type": "mcp", "host": dead}),
        }
        run, results, output = run_dag_test_in_subprocess(folder, BUNDLE, "mcp_quote", env=env)
        calls, requests = list(pricing.calls), list(llm.requests)
    events = list(EventStore.from_airflow().read(run.run_id))
    return run, results, output, events, calls, requests, dead


def test_the_mcp_tool_result_reaches_the_model_the_output_and_the_next_step(mcp_run):
    run, results, output, _, calls, requests, _ = mcp_run
    assert run.task_states == {
        "price": "success",
        "quote": "success",
        "orphan": "failed",
        "stranded": "failed",
    }, output[-3000:]
    assert calls == [("get_price", {"product": "widget"})]
    assert results["price"] == ("success", WIDGET)
    state, quote = results["quote"]
    assert state == "success"
    assert quote["text"].endswith(": Quote one widget at 19.5 USD"), quote

    assert [path for path, _ in requests] == ["/tools/v1/chat/completions"] * 2
    first, second = (body for _, body in requests)
    assert sorted(tool["function"]["name"] for tool in first["tools"]) == [
        "final_result",
        "pricing_convert",
        "pricing_get_price",
        "pricing_list_products",
    ]
    assert first["messages"][-1] == {"role": "user", "content": "What does one widget cost?"}
    tool_result = second["messages"][-1]
    assert tool_result["role"] == "tool" and json.loads(tool_result["content"]) == WIDGET


def test_the_tool_call_is_an_event_without_its_arguments(mcp_run):
    run, _, _, events, _, _, _ = mcp_run
    tools = [e for e in events if e.type == "tool.called"]
    assert [(e.step, e.agent, e.try_number) for e in tools] == [("price", "pricing_analyst", 1)]
    payload = tools[0].payload
    arguments = json.dumps({"product": "widget"}, separators=(",", ":"), sort_keys=True)
    assert {k: v for k, v in payload.items() if k != "latency_s"} == {
        "tool": "pricing_get_price",
        "arguments_sha256": hashlib.sha256(arguments.encode()).hexdigest(),
        "ok": True,
    }
    (step,) = [e for e in events if e.type == "step.succeeded" and e.step == "price"]
    assert 0 <= payload["latency_s"] <= step.payload["duration_s"]  # the call's seconds, within its step's
    (model,) = [e for e in events if e.type == "model.called" and e.step == "price"]
    assert (model.payload["model"], model.payload["requests"]) == ("gpt-local", 2)


def test_a_step_whose_mcp_server_cannot_be_used_fails_with_the_fix(mcp_run):
    _, _, _, events, _, _, dead = mcp_run
    failed = {e.step: e.payload for e in events if e.type == "step.failed"}
    assert sorted(failed) == ["orphan", "stranded"]
    assert failed["orphan"]["error_class"] == "McpServerError"
    assert failed["orphan"]["error"] == (
        "Agent 'orphan_analyst' uses the MCP connection 'baton_test_mcp_undefined', which is not defined. "
        + FIX.format("BATON_TEST_MCP_UNDEFINED")
    )
    assert failed["stranded"]["error_class"] == "McpServerError"
    assert failed["stranded"]["error"] == (
        "Agent 'stranded_analyst' could not reach the MCP server of connection 'baton_test_mcp_dead' "
        f"({dead}): RuntimeError: Client failed to connect: All connection attempts failed. Start the "
        "server, or correct the connection: " + FIX.format("BATON_TEST_MCP_DEAD")
    )
