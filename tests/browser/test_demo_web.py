"""The demo web site over plain HTTP: its forms' server-side validation, its pages and its data."""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest
from demo.web import MARKET, DemoWeb, market


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def fetch(url: str, form: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    data = urlencode(form).encode() if form is not None else None
    try:
        with OPENER.open(urllib.request.Request(url, data=data), timeout=5) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


CRM = {
    "name": "Ada Lovelace",
    "email": "ada@engines.example",
    "company": "Engines",
    "plan": "pro",
    "terms": "yes",
}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"name": ""}, "Full name is required"),
        ({"email": "ada-at-engines"}, "Work email: &#x27;ada-at-engines&#x27; is not an email address"),
        ({"plan": "gold"}, "Plan: choose one of starter, pro, enterprise"),
        ({"terms": ""}, "I accept the terms of service: this box must be ticked"),
    ],
)
def test_an_invalid_form_is_shown_again_with_its_error_and_records_nothing(change, error):
    with DemoWeb() as web:
        status, _, body = fetch(web.url + "/crm/signup", {**CRM, **change})
        assert status == 400
        assert f'<p class="error" id="error" role="alert">{error}</p>' in body
        assert 'value="Engines"' in body  # what was typed is kept
        assert web.submissions("crm") == []


def test_a_valid_post_is_recorded_and_redirected_to_its_confirmation():
    with DemoWeb() as web:
        status, headers, _ = fetch(web.url + "/crm/signup", CRM)
        assert (status, headers["Location"]) == (303, "/crm/welcome/CRM-0001")
        _, _, page = fetch(web.url + "/crm/welcome/CRM-0001")
        assert '<strong id="confirmation">CRM-0001</strong>' in page
        assert web.submissions("crm") == [
            {"id": "CRM-0001", "name": "Ada Lovelace", "email": "ada@engines.example", "company": "Engines",
             "plan": "pro", "terms": True}
        ]  # fmt: skip
        status, headers, _ = fetch(web.url + "/crm/signup", {**CRM, "name": "Grace Hopper"})
        assert headers["Location"] == "/crm/welcome/CRM-0002"
        web.reset()
        assert web.submissions("crm") == []
        assert fetch(web.url + "/crm/welcome/CRM-0001")[0] == 404


def test_billing_welcome_pack_is_an_attachment():
    with DemoWeb() as web:
        form = {"company": "Engines", "billing_email": "ap@engines.example", "currency": "EUR"}
        assert fetch(web.url + "/billing/account", form)[1]["Location"] == "/billing/accounts/BIL-0001"
        assert web.submissions("billing")[0]["auto_pay"] is False
        status, headers, body = fetch(web.url + "/billing/accounts/BIL-0001/welcome.csv")
        assert status == 200
        assert headers["Content-Disposition"] == 'attachment; filename="BIL-0001-welcome.csv"'
        assert (
            body
            == "account_id,company,billing_email,currency,auto_pay\nBIL-0001,Engines,ap@engines.example,EUR,no\n"
        )
        assert fetch(web.url + "/billing/accounts/BIL-0002/welcome.csv")[0] == 404


def test_market_pages_show_market_json(web):
    _, _, index = fetch(web.url + "/market/")
    for competitor in MARKET["competitors"]:
        assert f'href="/market/competitors/{competitor["slug"]}">{competitor["name"]}</a>' in index
        _, _, page = fetch(web.url + f"/market/competitors/{competitor['slug']}")
        assert "<th>plan</th><th>price_usd</th><th>seats</th><th>storage_gb</th><th>support</th>" in page
    assert f'<a id="report" href="{MARKET["report"]["url"]}">' in index
    _, _, news = fetch(web.url + "/market/news")
    assert f'<img id="pixel" src="{MARKET["tracker"]}"' in news
    status, headers, _ = fetch(web.url + "/market/out?to=https://example.com/x")
    assert (status, headers["Location"]) == (302, "https://example.com/x")
    assert fetch(web.url + "/market/competitors/nobody")[0] == 404


def test_market_data_has_one_clearly_cheapest_competitor():
    data = market()
    cheapest = {
        plan: min(
            data["competitors"], key=lambda c: next(p["price_usd"] for p in c["plans"] if p["plan"] == plan)
        )
        for plan in ("Starter", "Team", "Enterprise")
    }
    assert {plan: c["slug"] for plan, c in cheapest.items()} == {
        "Starter": "cobalt", "Team": "cobalt", "Enterprise": "cobalt"
    }  # fmt: skip
    per_seat = {c["slug"]: [p["price_usd"] / p["seats"] for p in c["plans"]] for c in data["competitors"]}
    assert all(
        per_seat["cobalt"][i] < min(per_seat["acme"][i], per_seat["brightlytics"][i]) for i in range(3)
    )
    data["competitors"].clear()
    assert len(MARKET["competitors"]) == 3  # market() is a copy


def test_run_from_the_command_line():
    import subprocess
    import sys
    import time

    with DemoWeb() as probe:  # a port that is free now
        port = probe.port
    server = subprocess.Popen(
        [sys.executable, "-m", "demo.web", "--port", str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout.readline().strip() == f"Demo web on http://127.0.0.1:{port} (Ctrl-C stops it)"
        deadline = time.monotonic() + 5
        while True:
            try:
                assert fetch(f"http://127.0.0.1:{port}/")[0] == 200
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        server.terminate()
        server.wait(timeout=5)
