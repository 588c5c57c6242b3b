"""URLs a browser agent is tricked with (a backslash, credentials), read as Chromium reads them: refused by
``baton validate`` and at run time, in a real Chromium; host names pinned to their checked address."""

from __future__ import annotations

import asyncio
import html
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

import pytest
from demo.serving import ThreadedServer

from baton.browser import NavigationBlocked
from baton.browser.runner import run_actions
from baton.cli import main as baton
from baton.egress.browser import Allowlist
from tests.browser.conftest import Events

# urlsplit (what the checks used) reads 127.0.0.1 as the host; the URL standard, and Chromium, evil.example
TRICKS = ["http://evil.example\\@127.0.0.1/crm", "http://user@evil.example\\@127.0.0.1/crm"]
NOT_ALLOWED = (
    "evil.example is not an allowed host for this agent (allowed: {allowed}); add it to the agent's "
    "browser.allow in the roster, or go to a page on an allowed host"
)


def test_validate_refuses_a_goto_whose_host_is_not_the_one_it_seems(tmp_path, capsys):
    assert [urlsplit(trick).hostname for trick in TRICKS] == ["127.0.0.1", "127.0.0.1"]
    roster = tmp_path / "agents.yaml"
    roster.write_text(
        "agents:\n"
        "  - name: clerk\n"
        "    browser: {allow: ['127.0.0.1', '169.254.169.254']}\n"
        "    skill: market_prices\n"
    )
    folder = tmp_path / "workflows"
    folder.mkdir()
    gotos = [*TRICKS, "http://user@127.0.0.1:pass@evil.example/crm", "http://169.254.169.254/latest/"]
    (folder / "signup.yaml").write_text(
        "workflow: signup\nversion: 1\ndescription: A test.\nowner: tests\nsteps:\n"
        "  - id: signup\n    agent: clerk\n    browser:\n"
        + "".join(f"      - goto: '{goto}'\n" for goto in gotos)
        + "      - goto: 'http://127.0.0.1:8765/crm'\n"
    )
    assert baton(["validate", str(folder), "--agents", str(roster)]) == 1
    fix = "(fix: add the host to clerk's browser.allow in dags/agents.yaml, or go elsewhere)"
    name = folder / "signup.yaml"
    assert capsys.readouterr().out.splitlines() == [
        *(
            f"{name}:{9 + n}: steps[0].browser[{n}].goto: 'evil.example' is not among the hosts agent 'clerk' "
            f"may reach (127.0.0.1, 169.254.169.254) {fix}"
            for n in range(3)
        ),
        f"{name}:12: steps[0].browser[3].goto: 169.254.169.254 is a link-local address (where cloud metadata "
        "services answer): never allowed, even when listed (fix: go elsewhere: no entry of browser.allow can "
        "open it)",
        f"{roster}:3: agents[0].browser.allow[1]: warning: '169.254.169.254' is a link-local or cloud metadata "
        "address: it is never reached, even when listed (fix: remove it: a cloud metadata service is never "
        "reached on a template's behalf)",
        "1 template(s) checked, 1 with errors, 4 error(s) in all, 1 warning(s)",
    ]


@pytest.mark.integration
@pytest.mark.parametrize("trick", TRICKS)
def test_a_rendered_goto_with_the_trick_is_refused_before_the_browser_starts(web, trick):
    events = Events()
    target = trick.replace("127.0.0.1", web.host)
    with pytest.raises(NavigationBlocked) as raised:
        run_actions(
            [{"goto": "{{ inputs.target }}"}],
            {"allow": [web.host]},
            scope={"inputs": {"target": target}},
            record=events,
            artifacts=None,
            step="signup",
        )
    shown = f"http://evil.example/@{web.host}/crm"
    assert str(raised.value) == (
        f"Step 'signup', browser[0] (goto '{shown}'): blocked: " + NOT_ALLOWED.format(allowed=web.host)
    )
    assert events.of("browser.blocked") == [
        {"host": "evil.example", "url": shown, "kind": "navigation", "allowed": [web.host]}
    ]
    assert web.submissions("crm") == []


def _trick_page(port: int) -> type[BaseHTTPRequestHandler]:
    link = html.escape(f"http://evil.example\\@127.0.0.1:{port}/landing")

    class Page(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # quiet
            pass

        def do_GET(self):
            body = f'<html><body><a id="trick" href="{link}">Our landing page</a></body></html>'.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Page


@pytest.mark.integration
def test_chromium_follows_the_trick_to_the_other_host_and_the_routing_refuses_it():
    """A page's link, parsed by Chromium itself: the navigation it starts goes to evil.example, and the
    routing (reading URLs as Chromium does) refuses and records it."""
    events = Events()
    server = ThreadedServer(BaseHTTPRequestHandler)  # for a free port; the page links back to it
    port = server.port
    server.stop()
    with ThreadedServer(_trick_page(port), port=port):
        allowed = f"127.0.0.1:{port}"
        with pytest.raises(NavigationBlocked) as raised:
            run_actions(
                [{"goto": f"http://{allowed}/"}, {"click": "#trick"}],
                {"allow": [allowed]},
                scope={},
                record=events,
                artifacts=None,
            )
    landing = f"http://evil.example/@127.0.0.1:{port}/landing"
    assert str(raised.value) == (
        f"browser[1] (click '#trick'): blocked: it led to {landing}: " + NOT_ALLOWED.format(allowed=allowed)
    )
    assert events.of("browser.blocked") == [
        {"host": "evil.example", "url": landing, "kind": "navigation", "allowed": [allowed]}
    ]


# --- host names pinned to their checked address ---------------------------------------------------------


def test_only_names_outside_every_wildcard_are_pinned():
    allowlist = Allowlist(["crm.example.com", "*.example.com", "localhost:8765", "127.0.0.1", "api.other.io"])
    assert allowlist.pinnable() == ["localhost", "api.other.io"]


def test_a_name_is_pinned_to_an_address_the_rules_allow_and_chromium_is_told_so():
    allowlist = Allowlist(["localhost", "127.0.0.1", "*.shop.io"])
    pins = asyncio.run(allowlist.pin())
    assert pins == {"localhost": "127.0.0.1"}
    assert allowlist.resolver_rules(pins) == (
        "MAP localhost 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE *.shop.io"
    )
    refused = Allowlist(["localhost", "no-such-host.invalid"])
    pins = asyncio.run(refused.pin(timeout=5))
    assert pins == {"localhost": None, "no-such-host.invalid": None}
    assert refused.resolver_rules(pins) == (
        "MAP localhost ~NOTFOUND, MAP no-such-host.invalid ~NOTFOUND, MAP * ~NOTFOUND"
    )
    assert refused.refused == {
        "localhost": "localhost resolves to 127.0.0.1, a loopback address, which this agent's allowlist does "
        "not name (a host name never grants one); add '127.0.0.1' to the agent's browser.allow in the roster",
        "no-such-host.invalid": "no-such-host.invalid did not resolve when the browser started (within 5 s), so "
        "it is not reached; check the name in the agent's browser.allow in the roster",
    }


@pytest.mark.integration
def test_chromium_reaches_a_pinned_name_and_not_one_whose_address_is_not_named(web):
    page = f"http://localhost:{web.port}/market/"
    events = Events()
    output = run_actions(
        [{"goto": page}, {"extract": {"name": "heading", "selector": "h1"}}],
        {"allow": ["localhost", "127.0.0.1"]},
        scope={},
        record=events,
        artifacts=None,
    )
    assert (output["heading"], output["url"]) == ("Market watch", page)
    events = Events()
    with pytest.raises(NavigationBlocked) as raised:
        run_actions([{"goto": page}], {"allow": ["localhost"]}, scope={}, record=events, artifacts=None)
    assert str(raised.value) == (
        f"browser[0] (goto '{page}'): blocked: localhost resolves to 127.0.0.1, a loopback address, which this "
        "agent's allowlist does not name (a host name never grants one); add '127.0.0.1' to the agent's "
        "browser.allow in the roster"
    )
    assert events.of("browser.blocked") == [
        {"host": f"localhost:{web.port}", "url": page, "kind": "navigation", "allowed": ["localhost"]}
    ]


def test_a_metadata_address_is_never_reached_even_when_listed():
    events = Events()
    with pytest.raises(NavigationBlocked) as raised:
        run_actions(
            [{"goto": "http://169.254.169.254/latest/meta-data/"}],
            {"allow": ["169.254.169.254"]},
            scope={},
            record=events,
            artifacts=None,
        )
    assert str(raised.value) == (
        "browser[0] (goto 'http://169.254.169.254/latest/meta-data/'): blocked: 169.254.169.254 is a link-local "
        "address (where cloud metadata services answer): never allowed, even when listed"
    )
    assert [kind for kind, _ in events.items] == ["browser.blocked", "browser.action"]  # no browser started


@pytest.mark.parametrize("host", ["127.1", "0x7f.0.0.1", "*.0177.1"])
def test_a_browser_allowlist_entry_that_reads_as_an_address_must_be_written_dotted(host):
    from pydantic import ValidationError

    from baton.spec.browser import BrowserAccess

    with pytest.raises(ValidationError) as wrong:
        BrowserAccess(allow=["example.com", host])
    assert wrong.value.errors()[0]["msg"] == (
        f"allow[1]: '{host}' reads as an IP address in a short or hex form; write it dotted: '127.0.0.1'"
    )
