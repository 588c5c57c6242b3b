"""An agent's MCP servers as toolsets: a real pydantic-ai agent calling tools on a live MCP server
(tests/mcp_server.py) through common-ai's MCPToolset and an Airflow connection of type mcp, each call
recorded as a ``tool.called`` event; the errors of a missing or unreachable server."""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from baton.agents.tools import McpServerError, toolsets
from baton.events.types import EVENT_TYPES
from tests import mcp_server
from tests.conftest import processes_naming
from tests.mcp_server import PricingServer

CONN_ID = "baton_test_mcp_pricing"


@pytest.fixture(scope="module")
def pricing():
    with PricingServer() as server:
        yield server


@pytest.fixture
def connected(pricing, monkeypatch):
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(pricing.connection()))
    pricing.calls.clear()
    return pricing


class Recorded(list):
    """A ``record`` callable keeping what it is given, each payload checked against its event type."""

    def __call__(self, kind: str, payload: dict[str, Any], discriminator: str) -> None:
        EVENT_TYPES[kind](**payload)
        self.append((kind, payload, discriminator))


def scripted(*calls: tuple[str, dict[str, Any]], seen: list) -> FunctionModel:
    """A model that makes ``calls`` one after the other, then answers with the last tool result it got."""
    script = list(calls)

    def respond(messages: list, info: AgentInfo) -> ModelResponse:
        seen.append(sorted(tool.name for tool in info.function_tools))
        last = messages[-1].parts[-1]
        if script:
            name, args = script.pop(0)
            return ModelResponse(parts=[ToolCallPart(name, args)])
        assert isinstance(last, ToolReturnPart), last
        if last.outcome == "retried":  # the tool failed: the model is asked to try again
            return ModelResponse(parts=[TextPart(f"retry: {last.content}")])
        return ModelResponse(parts=[TextPart(json.dumps(last.content))])

    return FunctionModel(respond)


def sha256(arguments: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(arguments, separators=(",", ":"), sort_keys=True).encode()).hexdigest()


def test_an_agent_without_mcp_servers_has_no_toolsets():
    assert toolsets({"name": "plain", "mcp": []}, Recorded()) == []
    assert toolsets({"name": "plain"}, Recorded()) == []


class _Clock:
    """The tool calls' clock, of the test's own: each reading a quarter of a second after the one before."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        self.now += 0.25
        return self.now


def test_a_model_calls_a_prefixed_tool_on_the_live_server_and_the_call_is_recorded(connected, monkeypatch):
    monkeypatch.setattr(sys.modules[toolsets.__module__], "time", _Clock())  # read before and after the call
    record, seen = Recorded(), []
    agent_toolsets = toolsets(
        {"name": "pricing_analyst", "mcp": [{"conn_id": CONN_ID, "prefix": "pricing"}]}, record
    )
    model = scripted(("pricing_get_price", {"product": "gadget"}), seen=seen)

    result = Agent(model, toolsets=agent_toolsets).run_sync("What does a gadget cost?")

    assert json.loads(result.output) == {"product": "gadget", "price_usd": 42.0, "currency": "USD"}
    assert connected.calls == [("get_price", {"product": "gadget"})]
    assert seen[0] == ["pricing_convert", "pricing_get_price", "pricing_list_products"]
    assert len(record) == 1
    kind, payload, discriminator = record[0]
    assert (kind, discriminator) == ("tool.called", "1:pricing_get_price")
    assert payload["tool"] == "pricing_get_price"
    assert payload["arguments_sha256"] == sha256({"product": "gadget"})
    assert payload["ok"] is True
    assert payload["latency_s"] == 0.25  # the call's seconds on the clock (was: under 5 s of wall clock)
    assert set(payload) == {"tool", "arguments_sha256", "ok", "latency_s"}  # no arguments, no result


def test_every_call_has_its_own_event_and_a_failed_call_says_so(connected):
    record, seen = Recorded(), []
    agent_toolsets = toolsets({"name": "pricing_analyst", "mcp": [CONN_ID]}, record)
    model = scripted(
        ("list_products", {}),
        ("convert", {"amount": 19.5, "to": "EUR"}),
        ("get_price", {"product": "unobtainium"}),
        seen=seen,
    )

    result = Agent(model, toolsets=agent_toolsets).run_sync("Price an unobtainium")

    assert seen[0] == ["convert", "get_price", "list_products"]  # no prefix: the server's own names
    assert result.output == (
        "retry: Error executing tool get_price: unknown product 'unobtainium'; known: gadget, gizmo, widget"
    )
    assert connected.calls == [
        ("list_products", {}),
        ("convert", {"amount": 19.5, "to": "EUR"}),
        ("get_price", {"product": "unobtainium"}),
    ]
    assert [(d, p["tool"], p["arguments_sha256"], p["ok"]) for _, p, d in record] == [
        ("1:list_products", "list_products", sha256({}), True),
        ("2:convert", "convert", sha256({"amount": 19.5, "to": "EUR"}), True),
        ("3:get_price", "get_price", sha256({"product": "unobtainium"}), False),
    ]


def test_a_stdio_server_is_started_for_the_run_and_stopped_after_it(monkeypatch, tmp_path):
    marker = f"baton-test-stdio-{tmp_path.name}"  # on the server's command line, to find its process
    connection = {
        "conn_type": "mcp",
        "extra": {"transport": "stdio", "command": sys.executable, "args": [mcp_server.__file__, marker]},
    }
    monkeypatch.setenv("AIRFLOW_CONN_BATON_TEST_MCP_STDIO", json.dumps(connection))
    record, seen, alive, left = Recorded(), [], [], []

    def during_the_run(messages: list, info: AgentInfo) -> ModelResponse:
        alive.append(len(processes_naming(marker)))
        left.extend(_left_by(marker))
        return model.function(messages, info)

    model = scripted(("get_price", {"product": "gizmo"}), seen=seen)
    agent_toolsets = toolsets({"name": "pricing_analyst", "mcp": ["baton_test_mcp_stdio"]}, record)
    scratch = agent_toolsets[0].wrapped.scratch
    result = Agent(FunctionModel(during_the_run), toolsets=agent_toolsets).run_sync("A gizmo?")

    assert json.loads(result.output) == {"product": "gizmo", "price_usd": 7.25, "currency": "USD"}
    assert [(p["tool"], p["ok"]) for _, p, _ in record] == [("get_price", True)]
    assert alive == [1, 1]  # one server process, for both model requests
    deadline = time.monotonic() + 10
    while processes_naming(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_naming(marker) == [], "the stdio MCP server outlived the run"
    # what the server left in its TMPDIR (a folder of the step's own) went with the folder
    assert {path.parent for path in left} == {scratch.path} and scratch.path.name.startswith("baton-mcp-")
    assert not scratch.path.exists() and _left_by(marker) == []


def _left_by(marker: str) -> list[Path]:
    """What a server started with ``marker`` left in the temp folder or one folder down."""
    temp = Path(tempfile.gettempdir())
    return [*temp.glob(f"{marker}-*"), *temp.glob(f"*/{marker}-*")]


def test_a_stdio_server_that_cannot_start_leaves_no_temp_folder(monkeypatch):
    connection = {"conn_type": "mcp", "extra": {"transport": "stdio", "command": sys.executable,
                  "args": ["-c", "import sys; sys.exit(3)"], "timeout": 10}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_BATON_TEST_MCP_EXITS", json.dumps(connection))
    agent_toolsets = toolsets({"name": "pricing_analyst", "mcp": ["baton_test_mcp_exits"]}, Recorded())
    scratch = agent_toolsets[0].wrapped.scratch
    model = FunctionModel(lambda messages, info: ModelResponse(parts=[TextPart("never asked")]))
    with pytest.raises(McpServerError) as raised:
        Agent(model, toolsets=agent_toolsets).run_sync("anything")
    assert "could not reach the MCP server of connection 'baton_test_mcp_exits'" in str(raised.value)
    assert scratch.given and not scratch.path.exists()


def test_two_steps_stdio_servers_get_temp_folders_of_their_own_and_an_http_server_none(connected):
    first, second = (
        toolsets({"name": "pricing_analyst", "mcp": ["baton_test_mcp_stdio"]}, Recorded())[0].wrapped.scratch
        for _ in range(2)
    )
    assert first.path != second.path and first.path.parent == second.path.parent == Path(
        tempfile.gettempdir()
    )
    record = Recorded()
    agent_toolsets = toolsets({"name": "pricing_analyst", "mcp": [CONN_ID]}, record)
    scratch = agent_toolsets[0].wrapped.scratch
    model = scripted(("get_price", {"product": "gadget"}), seen=[])
    result = Agent(model, toolsets=agent_toolsets).run_sync("A gadget?")
    assert json.loads(result.output)["price_usd"] == 42.0
    assert not scratch.given and not scratch.path.exists()


FIX = (
    "Create an Airflow connection of type mcp with host = the server's URL, e.g. "
    'AIRFLOW_CONN_{}=\'{{"conn_type": "mcp", "host": "http://127.0.0.1:3001/mcp"}}\'.'
)


def _run_with(conn_id: str) -> McpServerError:
    agent_toolsets = toolsets({"name": "pricing_analyst", "mcp": [conn_id]}, Recorded())
    model = FunctionModel(lambda messages, info: ModelResponse(parts=[TextPart("never asked")]))
    with pytest.raises(McpServerError) as raised:
        Agent(model, toolsets=agent_toolsets).run_sync("anything")
    return raised.value


def test_a_missing_connection_names_the_agent_the_connection_and_the_fix(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_BATON_TEST_MCP_MISSING", raising=False)
    error = _run_with("baton_test_mcp_missing")
    assert str(error) == (
        "Agent 'pricing_analyst' uses the MCP connection 'baton_test_mcp_missing', which is not defined. "
        + FIX.format("BATON_TEST_MCP_MISSING")
    )


def test_an_unreachable_server_names_the_agent_the_connection_its_url_and_the_fix(monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/mcp"
    monkeypatch.setenv("AIRFLOW_CONN_BATON_TEST_MCP_DEAD", json.dumps({"conn_type": "mcp", "host": url}))
    error = _run_with("baton_test_mcp_dead")
    assert str(error) == (
        f"Agent 'pricing_analyst' could not reach the MCP server of connection 'baton_test_mcp_dead' ({url}): "
        "RuntimeError: Client failed to connect: All connection attempts failed. Start the server, or "
        "correct the connection: " + FIX.format("BATON_TEST_MCP_DEAD")
    )


def test_a_connection_without_a_host_is_refused_with_common_ais_reason_and_the_fix(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BATON_TEST_MCP_NOHOST", json.dumps({"conn_type": "mcp"}))
    error = _run_with("baton_test_mcp_nohost")
    assert str(error) == (
        "Agent 'pricing_analyst': the MCP connection 'baton_test_mcp_nohost' is unusable: Connection "
        "'baton_test_mcp_nohost' requires a host URL for HTTP transport. "
        + FIX.format("BATON_TEST_MCP_NOHOST")
    )


def test_removing_a_servers_temp_folder_does_not_follow_its_links_out(tmp_path):
    from baton.agents.tools import ScratchDir

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the server's")
    scratch = ScratchDir()
    assert scratch.env() == {"TMPDIR": str(scratch.path)} and scratch.path.is_dir()
    (scratch.path / "link").symlink_to(outside)  # what a hostile or careless server might leave
    (scratch.path / "deep" / "er").mkdir(parents=True)
    scratch.remove()
    assert not scratch.path.exists() and (outside / "keep.txt").read_text() == "not the server's"
    scratch.remove()  # twice (the step left the toolset after the server failed): nothing to do
