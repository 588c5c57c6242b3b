"""The browser tools a model calls, driven by a real pydantic-ai Agent whose FunctionModel scripts the
calls, in a real Chromium against the demo web site."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from demo.web import MARKET
from pydantic_ai import Agent
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from baton.browser.artifacts import Artifacts, task_folder
from baton.browser.tools import browser_toolset
from tests.browser.conftest import Events

pytestmark = pytest.mark.integration


def scripted(calls: list[tuple[str, dict[str, Any]]], answers: list[tuple[str, Any]], seen: dict[str, Any]):
    """A model that makes ``calls`` one by one, keeping each tool's answer, then says what it found."""

    def model(messages, info: AgentInfo) -> ModelResponse:
        seen.setdefault("tools", sorted(tool.name for tool in info.function_tools))
        seen.setdefault("instructions", info.instructions)
        answers.extend(
            (part.tool_name, part.content) for part in messages[-1].parts if isinstance(part, ToolReturnPart)
        )
        if len(answers) < len(calls):
            name, args = calls[len(answers)]
            return ModelResponse(parts=[ToolCallPart(name, args)])
        return ModelResponse(parts=[TextPart("Cobalt Insights is the cheapest.")])

    return FunctionModel(model)


@pytest.fixture(scope="module")
def research(web, tmp_path_factory):
    calls = [
        ("goto", {"url": f"{web.url}/market/"}),
        ("read_page", {}),
        ("click", {"selector": "#report"}),  # a link to example.com: blocked, and the page goes back
        ("click", {"selector": "a[href='/market/competitors/cobalt']"}),
        ("extract_table", {"selector": "table.prices"}),
        ("goto", {"url": "https://example.com/pricing?utm=agent"}),
        ("fill", {"selector": "#nowhere", "value": "typed-by-the-model-77"}),
        ("screenshot", {"name": "cobalt_prices"}),
        ("read_page", {}),  # the 9th call: over max_actions
    ]
    answers: list[tuple[str, Any]] = []
    seen: dict[str, Any] = {}
    events = Events()
    artifacts = Artifacts(
        tmp_path_factory.mktemp("artifacts"), task_folder("market", "manual__1", "research")
    )
    toolset = browser_toolset(
        {"allow": [web.host], "max_actions": 8, "action_timeout": 3},
        record=events,
        artifacts=artifacts,
        step="research",
    )
    result = Agent(scripted(calls, answers, seen), toolsets=[toolset]).run_sync(
        "Which competitor is cheapest?"
    )
    return result, answers, seen, events, toolset, artifacts


def test_the_model_sees_the_browser_tools_and_its_allowed_hosts(research, web):
    seen = research[2]
    assert seen["tools"] == [
        "check", "click", "extract_table", "fill", "goto", "read_page", "screenshot", "select"
    ]  # fmt: skip
    assert f"Only these hosts can be opened: {web.host}; anything else is blocked." in seen["instructions"]
    assert "At most 8 browser actions in this task." in seen["instructions"]


def test_each_tool_answers_the_model(research, web):
    result, answers, *_ = research
    assert result.output == "Cobalt Insights is the cheapest."
    names = [name for name, _ in answers]
    assert names == [
        "goto", "read_page", "click", "click", "extract_table", "goto", "fill", "screenshot", "read_page"
    ]  # fmt: skip
    assert answers[0][1] == f"opened, HTTP 200; now at {web.url}/market/ ('Market watch')"
    page = answers[1][1]
    assert (page["title"], page["url"]) == ("Market watch", f"{web.url}/market/")
    assert page["text"].startswith("Demo web CRM Billing Support desk Market\nMarket watch\n")
    assert {"text": "Cobalt Insights", "href": f"{web.url}/market/competitors/cobalt"} in page["links"]
    report = {"text": "State of product analytics 2026 (example.com)", "href": MARKET["report"]["url"]}
    assert report in page["links"]
    refusal = (
        f"example.com is not an allowed host for this agent (allowed: {web.host}); add it to the agent's "
        "browser.allow in the roster, or go to a page on an allowed host"
    )
    assert answers[2][1] == (
        f"blocked: the page tried to go to {MARKET['report']['url']}: {refusal}; now at {web.url}/market/ "
        "('Market watch')"
    )
    assert answers[3][1] == f"clicked; now at {web.url}/market/competitors/cobalt ('Cobalt Insights')"
    cobalt = next(c for c in MARKET["competitors"] if c["slug"] == "cobalt")
    assert answers[4][1] == [{key: str(value) for key, value in plan.items()} for plan in cobalt["plans"]]
    assert answers[5][1] == f"blocked: {refusal}"
    assert answers[6][1] == (
        "error: no element matched within the action_timeout of 3 s (or it never became visible and "
        f"enabled) on {web.url}/market/competitors/cobalt; check the selector, put a wait_for before this "
        "action, or raise the agent's browser.action_timeout"
    )
    assert answers[7][1] == "saved as market/manual__1/research/try-1/cobalt_prices.png"
    assert answers[8][1] == (
        "refused: this task's limit of 8 browser actions is reached; answer with what you have found"
    )


def test_every_call_and_refusal_is_recorded_without_typed_values(research, web):
    *_, events, _, artifacts = research
    actions = events.of("browser.action")
    assert [(a["index"], a["action"], a["ok"], a["mode"]) for a in actions] == [
        (0, "goto", True, "agent"),
        (1, "read_page", True, "agent"),
        (2, "click", True, "agent"),  # done; the navigation it started was blocked
        (3, "click", True, "agent"),
        (4, "extract_table", True, "agent"),
        (5, "goto", False, "agent"),
        (6, "fill", False, "agent"),
        (7, "screenshot", True, "agent"),
        (8, "read_page", False, "agent"),
    ]
    assert actions[8]["error"] == (
        "refused: this task's limit of 8 browser actions is reached; answer with what you have found"
    )
    assert events.of("browser.blocked") == [
        {"host": "example.com", "url": MARKET["report"]["url"], "kind": "navigation", "allowed": [web.host]},
        {
            "host": "example.com",
            "url": "https://example.com/pricing",
            "kind": "navigation",
            "allowed": [web.host],
        },
    ]
    (saved,) = events.of("artifact.saved")
    data = (artifacts.root / saved["path"]).read_bytes()
    assert (saved["sha256"], saved["bytes"]) == (hashlib.sha256(data).hexdigest(), len(data))
    assert "typed-by-the-model-77" not in json.dumps(events.items)
    assert "utm" not in json.dumps(events.items)


def test_the_browser_is_closed_when_the_run_ends(research):
    toolset = research[4]
    assert toolset.session.started is False
    assert toolset.calls == 9
