"""A browser agent in a real Baton run: one ``dag.test()`` of tests/fixtures/browser/dags
(onboarding_forms) against the demo site on 127.0.0.1, in Debian's Chromium.

``crm``, ``billing`` and ``support`` fill the three onboarding forms (each step reads the one before);
``summary`` posts the three account ids; ``stray`` is told to go to a host outside its allowlist;
``research`` is agent-driven: its model (the OpenAI-compatible test server's ``/tools/v1``) calls the
browser tool ``goto``, and what the page showed flows into ``brief``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from demo.http_service import PartnerService
from demo.web import DemoWeb

from baton.events import EventStore
from tests.agents.openai_server import OpenAICompatibleServer
from tests.conftest import own_bundle, run_dag_test_in_subprocess

pytestmark = pytest.mark.integration

BUNDLE = "baton-test-browser"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "browser" / "dags"


@pytest.fixture(scope="module")
def onboarding(airflow_db, tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser") / "dags"
    artifacts = tmp_path_factory.mktemp("artifacts")
    env = {**own_bundle(FIXTURE, folder, BUNDLE), "BATON_ARTIFACTS": str(artifacts)}
    with DemoWeb() as web, PartnerService() as partner:
        tool_call = ("goto", {"url": f"{web.url}/market/"})
        with OpenAICompatibleServer({}, tool_call=tool_call, finish=lambda text: {"page": text}) as llm:
            env["AIRFLOW_CONN_BATON_TEST_BROWSER_LLM"] = json.dumps(
                {
                    "conn_type": "pydanticai",
                    "host": llm.url + "/tools/v1",
                    "password": "sk-browser-test",
                    "extra": {"model": "openai-chat:gpt-local"},
                }
            )
            conf = {"base": web.url, "partner": partner.url("/onboarded")}
            run, results, output = run_dag_test_in_subprocess(
                folder, BUNDLE, "onboarding_forms", conf, env=env
            )
            requests = list(llm.requests)
        submissions = {platform: web.submissions(platform) for platform in ("crm", "billing", "support")}
        posts = partner.posts("/onboarded")
        web_url = web.url
    events = list(EventStore.from_airflow().read(run.run_id))
    return run, results, output, submissions, posts, events, artifacts, requests, web_url


def test_the_forms_are_filled_across_the_three_platforms_once_each(onboarding):
    run, results, output, submissions, posts, *_ = onboarding
    states = {task: state for task, (state, _) in results.items()}
    assert states == {
        "crm": "success",
        "billing": "success",
        "support": "success",
        "summary": "success",
        "stray": "failed",
        "research": "success",
        "brief": "success",
    }, output[-3000:]
    assert [len(submissions[p]) for p in ("crm", "billing", "support")] == [1, 1, 1]
    (crm,), (billing,), (support,) = submissions["crm"], submissions["billing"], submissions["support"]
    assert (crm["name"], crm["plan"], crm["terms"]) == (
        "Ada Lovelace",
        "pro",
        True,
    )
    # billing read the CRM step's output: the account id flowed from one step to the next
    assert billing["company"] == f"Analytical Engines ({crm['id']})"
    assert (billing["currency"], support["role"]) == ("EUR", "admin")
    outputs = {step: results[step][1] for step in ("crm", "billing", "support")}
    assert [outputs[s]["account"] for s in ("crm", "billing", "support")] == [
        crm["id"],
        billing["id"],
        support["id"],
    ]
    ids = {"crm": crm["id"], "billing": billing["id"], "support": support["id"]}
    assert [p["body"] for p in posts if "crm" in p["body"]] == [ids]


def test_a_navigation_outside_the_allowlist_is_refused_and_recorded(onboarding):
    _, _, _, _, _, events, *_ = onboarding
    (blocked,) = [e for e in events if e.type == "browser.blocked"]
    assert (blocked.step, blocked.payload["host"], blocked.payload["kind"]) == (
        "stray",
        "example.com",
        "navigation",
    )
    assert blocked.payload["allowed"] == ["127.0.0.1"]
    (failed,) = [e for e in events if e.type == "step.failed"]  # and nothing else failed
    assert failed.step == "stray"
    assert "example.com" in failed.payload["error"] and "127.0.0.1" in failed.payload["error"]


def test_screenshots_and_downloads_are_artifacts_linked_from_events(onboarding):
    _, _, _, _, _, events, artifacts, *_ = onboarding
    saved = {e.payload["name"]: (e.step, e.payload) for e in events if e.type == "artifact.saved"}
    assert sorted(saved) == ["crm_done", "welcome_pack"]
    for step, payload in saved.values():
        data = (artifacts / payload["path"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (payload["bytes"], payload["sha256"])
        assert payload["path"].startswith("onboarding_forms/") and f"/{step}/try-1/" in payload["path"]
    assert saved["crm_done"][1]["kind"] == "screenshot" and saved["welcome_pack"][1]["kind"] == "download"
    actions = [e for e in events if e.type == "browser.action" and e.step == "crm"]
    assert [a.payload["action"] for a in actions] == [
        "goto", "fill", "fill", "fill", "select", "check", "click", "wait_for", "extract", "screenshot"
    ]  # fmt: skip
    assert "ada@analytical.example" not in json.dumps([e.payload for e in events])  # typed values never


def test_an_agent_driven_step_browses_through_tools_and_its_findings_flow_on(onboarding):
    _, results, _, _, posts, events, _, requests, web_url = onboarding
    first, second = (body for _, body in requests)
    tools = sorted(tool["function"]["name"] for tool in first["tools"])
    assert tools == [
        "check", "click", "extract_table", "fill", "final_result", "goto", "read_page", "screenshot", "select"
    ]  # fmt: skip
    page = results["research"][1]["page"]
    assert page == second["messages"][-1]["content"]  # the tool's answer became the output
    assert page.startswith("opened, HTTP 200;") and f"{web_url}/market/" in page
    assert [p["body"] for p in posts if "seen" in p["body"]] == [{"seen": page}]
    (goto,) = [e for e in events if e.type == "browser.action" and e.step == "research"]
    assert (goto.payload["action"], goto.payload["mode"], goto.payload["ok"]) == ("goto", "agent", True)
    (called,) = [e for e in events if e.type == "tool.called" and e.step == "research"]
    assert (called.payload["tool"], called.payload["ok"]) == ("goto", True)
