"""The browser runtime's parts that need no browser: allowlist, recorded URLs, artifact paths, tables,
action checks, and a cheap import."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from baton.browser.artifacts import Artifacts, artifacts_root, safe_part, task_folder
from baton.browser.extraction import table_records
from baton.browser.runner import action_problems, render_action
from baton.egress.browser import Allowlist, display_host, safe_url
from baton.spec.browser import Fill, Goto


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://crm.example.com/signup", True),
        ("https://crm.example.com:8443/x", True),  # a pattern without a port allows any port
        ("https://CRM.Example.com/x", True),
        ("https://evil-crm.example.com/", False),
        ("https://crm.example.com.evil.io/", False),
        ("https://a.shop.io/", True),
        ("https://a.b.shop.io/", True),
        ("https://shop.io/", False),  # *.shop.io is the subdomains, not the domain itself
        ("http://127.0.0.1:8000/", True),
        ("http://127.0.0.1:8001/", False),
        ("http://127.0.0.1/", False),  # port 80, not 8000
        ("http://localhost:8000/", False),
        ("https://api.internal:443/v1", True),  # the scheme's default port
        ("http://api.internal/v1", False),
        ("file:///etc/passwd", False),
        ("ftp://crm.example.com/", False),
        ("javascript:alert(1)", False),
    ],
)
def test_allowlist_matches_host_wildcard_and_port(url, allowed):
    allowlist = Allowlist(["crm.example.com", "*.shop.io", "127.0.0.1:8000", "api.internal:443"])
    assert allowlist.allows(url) is allowed


def test_allowlist_by_host_and_resolver_rules():
    allowlist = Allowlist(["crm.example.com", "*.shop.io", "127.0.0.1:8000", "127.0.0.1:9000"])
    assert allowlist.allows_host("http://127.0.0.1:1234/") and not allowlist.allows_host("http://10.0.0.1/")
    assert allowlist.resolver_rules() == (
        "MAP * ~NOTFOUND, EXCLUDE crm.example.com, EXCLUDE *.shop.io, EXCLUDE 127.0.0.1"
    )
    assert str(allowlist) == "crm.example.com, *.shop.io, 127.0.0.1:8000, 127.0.0.1:9000"


def test_recorded_url_has_no_query_fragment_or_credentials():
    url = "https://user:pw@Tracker.example.com:8443/p/x.gif?visitor=42&token=abc#frag"
    assert safe_url(url) == "https://tracker.example.com:8443/p/x.gif"
    assert display_host(url) == "tracker.example.com:8443"
    assert safe_url("https://example.com/a?b=c") == "https://example.com/a"
    assert display_host("https://example.com/a") == "example.com"
    assert display_host("file:///etc/passwd") == "(file URL)"


def test_artifact_folder_layout_and_root(monkeypatch, tmp_path):
    folder = task_folder("onboarding", "manual__2026-11-21T07:15:07.195898+00:00", "signup", 2, 3)
    assert folder == PurePosixPath("onboarding/manual__2026-11-21T07_15_07.195898_00_00/signup.2/try-3")
    assert task_folder("wf", "scheduled__x", "step", -1, 1) == PurePosixPath("wf/scheduled__x/step/try-1")
    assert task_folder("wf", "r", "step", None, 1) == PurePosixPath("wf/r/step/try-1")
    assert safe_part("..") == "_." and safe_part("../etc") == "_._etc" and safe_part("") == "_"
    monkeypatch.setenv("BATON_ARTIFACTS", str(tmp_path / "art"))
    assert artifacts_root() == tmp_path / "art"
    monkeypatch.delenv("BATON_ARTIFACTS")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    assert artifacts_root() == tmp_path / "home" / "baton_artifacts"


def test_artifact_saved_payload(tmp_path):
    artifacts = Artifacts(tmp_path, task_folder("wf", "run:1", "step", -1, 1))
    path = artifacts.path("report", "csv")
    path.write_text("a,b\n1,2\n")
    assert path == tmp_path / "wf" / "run_1" / "step" / "try-1" / "report.csv"
    assert artifacts.saved("report", "file", path) == {
        "name": "report",
        "kind": "file",
        "path": "wf/run_1/step/try-1/report.csv",
        "sha256": hashlib.sha256(b"a,b\n1,2\n").hexdigest(),
        "bytes": 8,
        "content_type": "text/csv",
    }


def test_table_records_keys_rows_by_header():
    assert table_records(["plan", "price_usd"], [["Starter", "19"], ["Team", "89"]]) == [
        {"plan": "Starter", "price_usd": "19"},
        {"plan": "Team", "price_usd": "89"},
    ]
    # an empty or repeated header cell gets a name; a long row adds columns, every record has them all
    assert table_records(["", "x", "x"], [["a"], ["a", "b", "c", "d"]]) == [
        {"column_1": "a", "x": "", "x_3": "", "column_4": ""},
        {"column_1": "a", "x": "b", "x_3": "c", "column_4": "d"},
    ]
    assert table_records(["plan"], []) == []


def test_action_problems_name_the_index_and_the_fix():
    actions = [
        {"extract": {"name": "url", "selector": "h1"}},
        {"extract": {"name": "title", "selector": "h1"}},
        {"extract": {"name": "title", "selector": "h2"}},
        {"screenshot": "page"},
        {"screenshot": "page"},
        {"download": {"name": "page", "selector": "a"}},
    ]
    assert action_problems(actions) == [
        "browser[0] (extract): the name 'url' is a key of the step's output (url, screenshots, downloads); "
        "choose another name",
        "browser[2] (extract): the name 'title' is already used by browser[1]; give each extract its own name",
        "browser[4] (screenshot): the name 'page' is already used by browser[3]; give each screenshot its "
        "own name",
    ]


def test_render_action_renders_its_strings_only():
    scope = {"inputs": {"base": "http://127.0.0.1:1", "email": "ada@example.org"}}
    assert render_action(Goto(url="{{ inputs.base }}/crm"), scope) == Goto(url="http://127.0.0.1:1/crm")
    fill = render_action(Fill(selector="#email", value="{{ inputs.email }}"), scope)
    assert fill == Fill(selector="#email", value="ada@example.org")


def test_importing_the_package_and_the_operator_loads_no_browser_or_model_runtime():
    code = (
        "import sys, baton.browser, baton.egress.browser, baton.browser.artifacts, baton.operators.browser\n"
        "print(sorted(m for m in ('playwright', 'pydantic_ai') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_chromium_is_where_the_runtime_looks():
    assert Path("/usr/bin/chromium").exists()


def test_error_texts_lose_typed_values_and_url_queries():
    from baton.browser.session import BrowserSession

    session = BrowserSession({"allow": ["x.io"]}, record=lambda kind, payload: None)
    session.journal.typed("hunter22-passphrase")
    session.journal.typed("ab")  # too short to scrub without mangling the message
    text = "Page.goto: net::ERR_FAILED at https://x.io/a/b?token=abc#top while typing 'hunter22-passphrase'"
    assert session.journal.scrub(text) == "Page.goto: net::ERR_FAILED at https://x.io/a/b while typing '***'"
    assert (
        session.journal.scrub("see http://x.io/p?q=1, and ws://x.io/s#f")
        == "see http://x.io/p and ws://x.io/s"
    )
