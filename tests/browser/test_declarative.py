"""Declarative browser steps in a real Chromium against the real demo web site."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from urllib.parse import quote, urlsplit

import pytest
from demo.web import MARKET
from playwright.async_api import TimeoutError as PlaywrightTimeout

from baton.browser import BrowserError, NavigationBlocked
from baton.browser.artifacts import Artifacts, task_folder
from baton.browser.runner import run_actions
from tests.browser.conftest import Events, LogText

pytestmark = pytest.mark.integration

TYPED = [
    "Ada Lovelace",
    "ada@engines.example",
    "Analytical Engines Ltd",
    "Charles Babbage",
    "cb@engines.example",
]

ONBOARDING = [
    # CRM
    {"goto": "{{ inputs.base }}/crm/signup"},
    {"fill": {"selector": "#name", "value": "{{ inputs.name }}"}},
    {"fill": {"selector": "#email", "value": "{{ inputs.email }}"}},
    {"fill": {"selector": "#company", "value": "{{ inputs.company }}"}},
    {"select": {"selector": "#plan", "value": "Pro"}},  # by its label
    {"check": "#terms"},
    {"click": "#submit"},
    {"wait_for": "#confirmation"},
    {"extract": {"name": "crm_id", "selector": "#confirmation"}},
    {"wait_for": {"selector": "#loading", "state": "detached"}},  # removed by the page's script after 300 ms
    {"extract": {"name": "crm_ready", "selector": "#ready"}},
    {"extract": {"name": "crm_fields", "selector": "table.summary td", "kind": "all_text"}},
    {"screenshot": "crm_done"},
    # billing, and its welcome pack
    {"goto": "{{ inputs.base }}/billing/account"},
    {"fill": {"selector": "#company", "value": "{{ inputs.company }}"}},
    {"fill": {"selector": "#billing_email", "value": "{{ inputs.email }}"}},
    {"select": {"selector": "#currency", "value": "EUR"}},  # by its value
    {"check": "#auto_pay"},
    {"click": "button[type=submit]"},
    {"extract": {"name": "billing_id", "selector": "#confirmation"}},
    {
        "extract": {
            "name": "pack_href",
            "selector": "a#welcome-pack",
            "kind": "attribute",
            "attribute": "href",
        }
    },
    {"download": {"name": "welcome_pack", "selector": "a#welcome-pack"}},
    # support desk: notify ticked, then cleared again
    {"goto": "{{ inputs.base }}/support/users/new"},
    {"fill": {"selector": "#name", "value": "Charles Babbage"}},
    {"fill": {"selector": "#email", "value": "cb@engines.example"}},
    {"select": {"selector": "#role", "value": "supervisor"}},
    {"check": "#notify"},
    {"check": {"selector": "#notify", "checked": False}},
    {"click": "#submit"},
    {"extract": {"name": "support_id", "selector": "#confirmation"}},
    {"extract": {"name": "support_summary", "selector": "table.summary", "kind": "table"}},
    {"screenshot": {"name": "support_done", "full_page": False}},
]


@pytest.fixture(scope="module")
def onboarding(web, tmp_path_factory):
    """One run of the three forms: (output, events, artifacts, the site's requests, logs)."""
    events = Events()
    artifacts = Artifacts(
        tmp_path_factory.mktemp("artifacts"), task_folder("onboarding", "manual__1", "onboard")
    )
    scope = {"inputs": {"base": web.url, "name": TYPED[0], "email": TYPED[1], "company": TYPED[2]}}
    requests: list[str] = []

    def log_request(handler, code="-", size="-") -> None:  # the site answered a request (its status line)
        requests.append(f"{handler.command} {urlsplit(handler.path).path} {code}")

    with LogText() as logs, pytest.MonkeyPatch.context() as patch:
        patch.setattr(web.server.RequestHandlerClass, "log_request", log_request)
        output = run_actions(
            ONBOARDING, {"allow": [web.host]}, scope=scope, record=events, artifacts=artifacts, step="onboard"
        )
    return output, events, artifacts, requests, logs.lines


def test_onboarding_output(onboarding, web):
    output, *_ = onboarding
    folder = "onboarding/manual__1/onboard/try-1"
    assert output == {
        "crm_id": "CRM-0001",
        "crm_ready": "All set: CRM-0001 is ready to use.",
        "crm_fields": ["Ada Lovelace", "ada@engines.example", "Analytical Engines Ltd", "pro", "yes"],
        "billing_id": "BIL-0001",
        "pack_href": "/billing/accounts/BIL-0001/welcome.csv",
        "support_id": "SUP-0001",
        "support_summary": [
            {"field": "Full name", "value": "Charles Babbage"},
            {"field": "Email", "value": "cb@engines.example"},
            {"field": "Role", "value": "supervisor"},
            {"field": "Email the user their invitation", "value": "no"},
        ],
        "url": f"{web.url}/support/users/SUP-0001",
        "screenshots": {"crm_done": f"{folder}/crm_done.png", "support_done": f"{folder}/support_done.png"},
        "downloads": {"welcome_pack": f"{folder}/welcome_pack.csv"},
    }


def test_each_platform_records_exactly_its_one_submission(onboarding, web):
    assert web.submissions("crm") == [
        {"id": "CRM-0001", "name": "Ada Lovelace", "email": "ada@engines.example",
         "company": "Analytical Engines Ltd", "plan": "pro", "terms": True}
    ]  # fmt: skip
    assert web.submissions("billing") == [
        {"id": "BIL-0001", "company": "Analytical Engines Ltd", "billing_email": "ada@engines.example",
         "currency": "EUR", "auto_pay": True}
    ]  # fmt: skip
    assert web.submissions("support") == [
        {"id": "SUP-0001", "name": "Charles Babbage", "email": "cb@engines.example", "role": "supervisor",
         "notify": False}
    ]  # fmt: skip


def test_one_browser_action_event_per_action(onboarding):
    _, events, *_ = onboarding
    actions = events.of("browser.action")
    assert [(a["index"], a["action"]) for a in actions] == [
        (i, next(iter(declared))) for i, declared in enumerate(ONBOARDING)
    ]
    assert all(a["ok"] and a["error"] == "" and a["mode"] == "declared" for a in actions)
    assert [a["selector"] for a in actions[:8]] == ["", "#name", "#email", "#company", "#plan", "#terms", "#submit",
                                                     "#confirmation"]  # fmt: skip
    assert events.of("browser.blocked") == []


def test_typed_values_never_reach_events_or_logs(onboarding):
    _, events, _, _, logs = onboarding
    recorded, logged = events.text(), "\n".join(logs)
    assert "browser[1] (fill '#name') ok in" in logged  # the logs were captured
    for value in TYPED:
        assert value not in recorded
        assert value not in logged


def test_artifacts_are_saved_with_their_recorded_digest(onboarding):
    output, events, artifacts, *_ = onboarding
    saved = events.of("artifact.saved")
    assert [(s["name"], s["kind"], s["content_type"]) for s in saved] == [
        ("crm_done", "screenshot", "image/png"),
        ("welcome_pack", "download", "text/csv"),
        ("support_done", "screenshot", "image/png"),
    ]
    for payload in saved:
        data = (artifacts.root / payload["path"]).read_bytes()
        assert (payload["sha256"], payload["bytes"]) == (hashlib.sha256(data).hexdigest(), len(data))
    assert (artifacts.root / output["screenshots"]["crm_done"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (artifacts.root / output["downloads"]["welcome_pack"]).read_text() == (
        "account_id,company,billing_email,currency,auto_pay\n"
        "BIL-0001,Analytical Engines Ltd,ada@engines.example,EUR,yes\n"
    )


def test_onboarding_asks_the_site_for_each_page_once(onboarding):
    """What the 32 actions cost, counted on the site instead of timed (a bound of 20 s on a loaded machine):
    each form's page loaded once, posted once, the page it leads to loaded once, the download fetched once;
    nothing reloaded, retried or polled."""
    assert onboarding[3] == [
        "GET /crm/signup 200",
        "POST /crm/signup 303",
        "GET /crm/welcome/CRM-0001 200",
        "GET /billing/account 200",
        "POST /billing/account 303",
        "GET /billing/accounts/BIL-0001 200",
        "GET /billing/accounts/BIL-0001/welcome.csv 200",
        "GET /support/users/new 200",
        "POST /support/users/new 303",
        "GET /support/users/SUP-0001 200",
    ]


# --- market research ---------------------------------------------------------------------------

MARKET_RESEARCH = [
    {"goto": "{{ inputs.base }}/market/"},
    {"extract": {"name": "competitors", "selector": "#competitors a.competitor", "kind": "all_text"}},
    {"extract": {"name": "first_link", "selector": "a.competitor", "kind": "attribute", "attribute": "href"}},
    {"extract": {"name": "heading", "selector": "h1"}},
    {"click": "a[href='/market/competitors/cobalt']"},
    {"extract": {"name": "cobalt_prices", "selector": "table.prices", "kind": "table"}},
    {"goto": "{{ inputs.base }}/market/news"},
    {"extract": {"name": "headlines", "selector": "#news .news-item a", "kind": "all_text"}},
    {"extract": {"name": "nothing", "selector": "#news .missing", "kind": "all_text"}},
]


@pytest.fixture(scope="module")
def research(web, tmp_path_factory):
    events = Events()
    output = run_actions(
        MARKET_RESEARCH,
        {"allow": [web.host]},
        scope={"inputs": {"base": web.url}},
        record=events,
        artifacts=None,
        step="research",
    )
    return output, events


def test_research_extracts_the_market_data(research, web):
    output, _ = research
    cobalt = next(c for c in MARKET["competitors"] if c["slug"] == "cobalt")
    assert output == {
        "competitors": ["Acme Analytics", "Brightlytics", "Cobalt Insights"],
        "first_link": "/market/competitors/acme",
        "heading": "Market watch",
        "cobalt_prices": [{key: str(value) for key, value in plan.items()} for plan in cobalt["plans"]],
        "headlines": [item["title"] for item in MARKET["news"]],
        "nothing": [],
        "url": f"{web.url}/market/news",
        "screenshots": {},
        "downloads": {},
    }
    assert output["cobalt_prices"][0] == {
        "plan": "Starter", "price_usd": "19", "seats": "3", "storage_gb": "20", "support": "community"
    }  # fmt: skip


def test_a_sub_resource_from_another_host_is_blocked_and_recorded(research, web):
    _, events = research
    assert events.of("browser.blocked") == [
        {
            "host": "tracker.localhost.invalid",
            "url": "http://tracker.localhost.invalid/pixel.gif",  # never the query (visitor=...)
            "kind": "request",
            "allowed": [web.host],
        }
    ]
    assert all(a["ok"] for a in events.of("browser.action"))  # a blocked sub-resource fails no action


# --- refusals and failures ---------------------------------------------------------------------


def test_goto_outside_the_allowlist_fails_the_step_after_recording_the_block(web):
    events = Events()
    actions = [{"goto": "{{ inputs.base }}/market/"}, {"goto": "https://example.com/reports/q3?token=abc"}]
    with pytest.raises(NavigationBlocked) as raised:
        run_actions(
            actions, {"allow": [web.host]}, scope={"inputs": {"base": web.url}}, record=events,
            artifacts=None, step="research",
        )  # fmt: skip
    assert str(raised.value) == (
        "Step 'research', browser[1] (goto 'https://example.com/reports/q3'): blocked: example.com is not an "
        f"allowed host for this agent (allowed: {web.host}); add it to the agent's browser.allow in the "
        "roster, or go to a page on an allowed host"
    )
    assert isinstance(raised.value, BrowserError)
    # checked before the browser starts: the first goto never ran
    assert [kind for kind, _ in events.items] == ["browser.blocked", "browser.action"]
    assert events.of("browser.blocked") == [
        {
            "host": "example.com",
            "url": "https://example.com/reports/q3",
            "kind": "navigation",
            "allowed": [web.host],
        }
    ]
    failed = events.of("browser.action")[0]
    assert (failed["index"], failed["action"], failed["ok"]) == (1, "goto", False)
    assert failed["error"] == str(raised.value).split(": ", 1)[1]
    assert "token" not in events.text()


def test_a_click_that_leaves_the_allowlist_fails_and_is_recorded(web):
    events = Events()
    actions = [{"goto": f"{web.url}/market/"}, {"click": "#report"}]
    with pytest.raises(NavigationBlocked) as raised:
        run_actions(actions, {"allow": [web.host]}, scope={}, record=events, artifacts=None)
    report = MARKET["report"]["url"]
    assert str(raised.value) == (
        f"browser[1] (click '#report'): blocked: it led to {report}: example.com is not an allowed host for "
        f"this agent (allowed: {web.host}); add it to the agent's browser.allow in the roster, or go to a "
        "page on an allowed host"
    )
    assert events.of("browser.blocked") == [
        {"host": "example.com", "url": report, "kind": "navigation", "allowed": [web.host]}
    ]


def test_a_redirect_chain_out_of_the_allowlist_is_stopped_by_the_browser_and_recorded(web):
    """Playwright does not route redirects; the host-resolver rules stop them, the request listener
    records them (here: the demo's link tracker redirects to itself, then to example.com)."""
    events = Events()
    inner = "/market/out?to=" + quote("https://example.com/landing?ref=demo", safe="")
    actions = [{"goto": f"{web.url}/market/out?to={quote(inner, safe='')}"}]
    with pytest.raises(NavigationBlocked) as raised:
        run_actions(actions, {"allow": [web.host]}, scope={}, record=events, artifacts=None)
    assert str(raised.value) == (
        f"browser[0] (goto '{web.url}/market/out'): blocked: it led to https://example.com/landing: "
        f"example.com is not an allowed host for this agent (allowed: {web.host}); add it to the agent's "
        "browser.allow in the roster, or go to a page on an allowed host"
    )
    assert events.of("browser.blocked") == [
        {
            "host": "example.com",
            "url": "https://example.com/landing",
            "kind": "navigation",
            "allowed": [web.host],
        }
    ]


def test_a_missing_selector_fails_naming_index_action_and_selector_without_the_typed_value(web):
    events = Events()
    secret = "s3cret-Passphrase-42"
    actions = [
        {"goto": f"{web.url}/crm/signup"},
        {"fill": {"selector": "#name", "value": secret}},
        {"fill": {"selector": "#password", "value": secret}},
        {"click": "#submit"},
    ]
    access = {
        "allow": [web.host],
        "action_timeout": timedelta(seconds=3),
    }  # the fills that exist must pass on a loaded machine (0.4 s did not in CI)
    with pytest.raises(BrowserError) as raised:
        run_actions(actions, access, scope={}, record=events, artifacts=None, step="signup")
    # what stopped the fill: Playwright's timeout of the action_timeout (3 s), not a later one
    assert isinstance(raised.value.__cause__, PlaywrightTimeout)
    assert str(raised.value.__cause__).startswith("Locator.fill: Timeout 3000ms exceeded.")
    assert str(raised.value) == (
        "Step 'signup', browser[2] (fill '#password'): no element matched within the action_timeout of "
        f"3 s (or it never became visible and enabled) on {web.url}/crm/signup; check the selector, put a "
        "wait_for before this action, or raise the agent's browser.action_timeout"
    )
    assert not isinstance(raised.value, NavigationBlocked)
    actions_recorded = events.of("browser.action")
    assert [(a["index"], a["action"], a["selector"], a["ok"]) for a in actions_recorded] == [
        (0, "goto", "", True),
        (1, "fill", "#name", True),
        (2, "fill", "#password", False),
    ]  # the click after the failure never ran
    assert actions_recorded[2]["error"] == str(raised.value).split("): ", 1)[1]
    assert secret not in events.text() and secret not in str(raised.value)


def test_a_page_that_answers_an_error_fails_its_goto(web):
    events = Events()
    with pytest.raises(BrowserError) as raised:
        run_actions([{"goto": f"{web.url}/crm/nowhere"}], {"allow": [web.host]}, scope={}, record=events,
                    artifacts=None)  # fmt: skip
    assert str(raised.value) == (
        f"browser[0] (goto '{web.url}/crm/nowhere'): the page answered HTTP 404 ({web.url}/crm/nowhere)"
    )


def test_an_undefined_jinja_name_fails_before_the_action(web):
    events = Events()
    with pytest.raises(BrowserError) as raised:
        run_actions([{"goto": "{{ inputs.missing }}/x"}], {"allow": [web.host]}, scope={"inputs": {}},
                    record=events, artifacts=None)  # fmt: skip
    assert str(raised.value) == (
        "browser[0] (goto): its arguments do not render: UndefinedError: 'dict object' has no attribute "
        "'missing'; fix the Jinja of the action"
    )
    assert events.of("browser.action")[0]["ok"] is False


def test_duplicate_names_fail_before_any_browser_starts():
    with pytest.raises(BrowserError) as raised:
        run_actions([{"screenshot": "a"}, {"screenshot": "a"}], {"allow": ["x.io"]}, scope={},
                    record=Events(), artifacts=None, step="s")  # fmt: skip
    assert str(raised.value) == (
        "Step 's': browser[1] (screenshot): the name 'a' is already used by browser[0]; give each screenshot "
        "its own name"
    )


def test_a_screenshot_needs_an_artifacts_folder_before_any_action_runs(web):
    events = Events()
    with pytest.raises(BrowserError) as raised:
        run_actions([{"goto": f"{web.url}/"}, {"screenshot": "home"}], {"allow": [web.host]}, scope={},
                    record=events, artifacts=None)  # fmt: skip
    message = "this step was given no artifacts folder to keep files in"
    assert str(raised.value) == f"browser[1] (screenshot): {message}"
    ((kind, payload),) = events.items  # the goto before it never ran: refused before the browser did anything
    assert kind == "browser.action" and payload.pop("latency_s") >= 0.0
    assert payload == {"index": 1, "action": "screenshot", "selector": "", "mode": "declared", "ok": False,
                       "error": message}  # fmt: skip
