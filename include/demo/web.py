"""A demo web site on 127.0.0.1 for browser agents: three platforms to onboard a customer on, and
market pages to research.

Onboarding (each form posts back to itself; a valid post is recorded and redirected to a page whose
``#confirmation`` holds the new id; a missing or wrong field re-renders the form with ``#error`` and
records nothing):

- ``/crm/signup``: name, email, company, plan (starter | pro | enterprise), terms -> ``CRM-0001``
- ``/billing/account``: company, billing_email, currency (USD | EUR | GBP), auto_pay -> ``BIL-0001``;
  its page links ``a#welcome-pack`` to a CSV sent as an attachment (for the ``download`` action)
- ``/support/users/new``: name, email, role (agent | supervisor | admin), notify -> ``SUP-0001``

Market research (the data is ``market.json`` next to this file, for tests and workflows to assert
against): ``/market/`` links to each competitor's page (``/market/competitors/<slug>``, with a
``table.prices``), to ``/market/news`` and to a report on ``example.com``; the news page loads a
tracking pixel from ``tracker.localhost.invalid``, a host no allowlist names, so a browser agent
shows its request blocked without any network, and links to an analysis on ``example.com`` through
``/market/out?to=<url>``, a link tracker that redirects anywhere (an open redirect).

In a test::

    with DemoWeb() as web:                 # a free port
        ...drive web.url + "/crm/signup"...
        assert web.submissions("crm") == [{"id": "CRM-0001", "name": ..., ...}]

From a shell: ``python -m demo.web --port 8765``.
"""

# long: the demo site's pages (CRM, billing, support desk, market) in one file, as a demo should be read

from __future__ import annotations

import argparse
import html
import json
import re
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from demo.serving import ThreadedServer

MARKET = json.loads((Path(__file__).with_name("market.json")).read_text())
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def market() -> dict[str, Any]:
    """The market data the pages show (a fresh copy)."""
    return json.loads(json.dumps(MARKET))


# --- the three onboarding forms -------------------------------------------------------------------

# A field: (name, label, kind, options) with kind text | email | select | checkbox; the checkbox of
# a form is required when its name is in REQUIRED_CHECKS.
FORMS: dict[str, dict[str, Any]] = {
    "crm": {
        "path": "/crm/signup",
        "prefix": "CRM",
        "title": "Northwind CRM: create your account",
        "done": "Welcome to Northwind CRM",
        "submit": "Create account",
        "fields": [
            ("name", "Full name", "text", None),
            ("email", "Work email", "email", None),
            ("company", "Company", "text", None),
            (
                "plan",
                "Plan",
                "select",
                [("starter", "Starter"), ("pro", "Pro"), ("enterprise", "Enterprise")],
            ),
            ("terms", "I accept the terms of service", "checkbox", None),
        ],
    },
    "billing": {
        "path": "/billing/account",
        "prefix": "BIL",
        "title": "Ledgerly billing: open a billing account",
        "done": "Your billing account is open",
        "submit": "Open billing account",
        "fields": [
            ("company", "Company", "text", None),
            ("billing_email", "Billing email", "email", None),
            (
                "currency",
                "Currency",
                "select",
                [("USD", "US dollar"), ("EUR", "Euro"), ("GBP", "Pound sterling")],
            ),
            ("auto_pay", "Pay invoices automatically", "checkbox", None),
        ],
    },
    "support": {
        "path": "/support/users/new",
        "prefix": "SUP",
        "title": "HelpHub support desk: add a user",
        "done": "Support desk user added",
        "submit": "Add user",
        "fields": [
            ("name", "Full name", "text", None),
            ("email", "Email", "email", None),
            (
                "role",
                "Role",
                "select",
                [("agent", "Agent"), ("supervisor", "Supervisor"), ("admin", "Admin")],
            ),
            ("notify", "Email the user their invitation", "checkbox", None),
        ],
    },
}
REQUIRED_CHECKS = {"terms"}


def validate(platform: str, form: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    """The submission's fields (checkboxes as booleans) and the first problem, or None."""
    fields = FORMS[platform]["fields"]
    values: dict[str, Any] = {
        name: bool(form.get(name)) if kind == "checkbox" else form.get(name, "").strip()
        for name, _, kind, _ in fields
    }
    for name, label, kind, options in fields:
        value = values[name]
        if kind == "checkbox":
            if name in REQUIRED_CHECKS and not value:
                return values, f"{label}: this box must be ticked"
        elif not value:
            return values, f"{label} is required"
        elif kind == "email" and not EMAIL.match(value):
            return values, f"{label}: '{value}' is not an email address"
        elif kind == "select" and value not in {option for option, _ in options}:
            return values, f"{label}: choose one of {', '.join(option for option, _ in options)}"
    return values, None


# --- HTML -----------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #1d2430; }
header { background: #1d2430; padding: .6rem 1.2rem; }
header a { color: #fff; margin-right: 1.2rem; text-decoration: none; }
main { max-width: 46rem; margin: 1.5rem auto; padding: 0 1.2rem; }
form p { margin: .8rem 0; }
label { display: block; font-weight: 600; margin-bottom: .2rem; }
label.check { font-weight: 400; }
input[type=text], input[type=email], select { width: 100%; padding: .4rem; box-sizing: border-box; }
button { padding: .5rem 1.2rem; }
.error { background: #fde8e8; color: #8a1c1c; padding: .6rem; border-radius: 4px; }
table.prices { border-collapse: collapse; width: 100%; }
table.prices th, table.prices td { border: 1px solid #c9ced6; padding: .3rem .6rem; text-align: left; }
"""

NAV = " ".join(
    f'<a href="{href}">{text}</a>'
    for href, text in [
        ("/", "Demo web"),
        ("/crm/signup", "CRM"),
        ("/billing/account", "Billing"),
        ("/support/users/new", "Support desk"),
        ("/market/", "Market"),
    ]
)


def e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body><header><nav>{NAV}</nav></header>\n"
        f"<main>\n{body}\n</main></body></html>\n"
    )


def form_page(platform: str, values: dict[str, Any] | None = None, error: str | None = None) -> str:
    spec = FORMS[platform]
    values = values or {}
    parts = [f"<h1>{e(spec['title'])}</h1>"]
    if error:
        parts.append(f'<p class="error" id="error" role="alert">{e(error)}</p>')
    parts.append(f'<form id="{platform}-form" method="post" action="{spec["path"]}" novalidate>')
    for name, label, kind, options in spec["fields"]:
        if kind == "checkbox":
            checked = " checked" if values.get(name) else ""
            parts.append(
                f'<p><label class="check" for="{name}"><input type="checkbox" id="{name}" name="{name}" '
                f'value="yes"{checked}> {e(label)}</label></p>'
            )
        elif kind == "select":
            chosen = values.get(name, "")
            items = "".join(
                f'<option value="{e(value)}"{" selected" if value == chosen else ""}>{e(text)}</option>'
                for value, text in options
            )
            parts.append(
                f'<p><label for="{name}">{e(label)}</label><select id="{name}" name="{name}">{items}</select></p>'
            )
        else:
            parts.append(
                f'<p><label for="{name}">{e(label)}</label><input type="{kind}" id="{name}" name="{name}" '
                f'value="{e(values.get(name, ""))}" autocomplete="off"></p>'
            )
    parts.append(f'<p><button type="submit" id="submit">{e(spec["submit"])}</button></p></form>')
    return page(spec["title"], "\n".join(parts))


def done_page(platform: str, record: dict[str, Any]) -> str:
    """The confirmation: ``#confirmation`` at once; ``#loading`` goes and ``#ready`` comes after 300 ms
    (for ``wait_for``)."""
    spec = FORMS[platform]
    shown = {
        name: ("yes" if value else "no") if isinstance(value, bool) else value
        for name, value in record.items()
    }
    rows = "".join(
        f'<tr><th scope="row">{e(label)}</th><td id="field-{name}">{e(shown[name])}</td></tr>'
        for name, label, _, _ in spec["fields"]
    )
    extra = ""
    if platform == "billing":
        extra = (
            f'<p><a id="welcome-pack" href="/billing/accounts/{record["id"]}/welcome.csv">'
            "Download your welcome pack (CSV)</a></p>"
        )
    body = f"""<h1>{e(spec["done"])}</h1>
<p>Your id is <strong id="confirmation">{e(record["id"])}</strong>.</p>
<table class="summary"><thead><tr><th>field</th><th>value</th></tr></thead><tbody>{rows}</tbody></table>
{extra}
<p id="loading">Setting things up&hellip;</p>
<script>
setTimeout(() => {{
  document.getElementById("loading").remove();
  const ready = document.createElement("p");
  ready.id = "ready";
  ready.textContent = "All set: {e(record["id"])} is ready to use.";
  document.querySelector("main").append(ready);
}}, 300);
</script>"""
    return page(spec["done"], body)


def welcome_csv(record: dict[str, Any]) -> str:
    return (
        "account_id,company,billing_email,currency,auto_pay\n"
        f"{record['id']},{record['company']},{record['billing_email']},{record['currency']},"
        f"{'yes' if record['auto_pay'] else 'no'}\n"
    )


def index_page() -> str:
    items = "".join(f'<li><a href="{spec["path"]}">{e(spec["title"])}</a></li>' for spec in FORMS.values())
    body = (
        "<h1>Demo web</h1><p>Three platforms to onboard a customer on, and market pages to research.</p>"
        f'<ul id="platforms">{items}</ul><p><a id="market" href="/market/">Market watch</a></p>'
    )
    return page("Demo web", body)


def market_index() -> str:
    links = "".join(
        f'<li><a class="competitor" href="/market/competitors/{c["slug"]}">{e(c["name"])}</a> '
        f"&mdash; {e(c['tagline'])}</li>"
        for c in MARKET["competitors"]
    )
    report = MARKET["report"]
    body = f"""<h1>Market watch</h1>
<p>The competitors we follow, their prices, and the news about them.</p>
<ul id="competitors">{links}</ul>
<p><a id="news-link" href="/market/news">Latest news</a></p>
<p><a id="report" href="{e(report["url"])}">{e(report["title"])} (example.com)</a></p>"""
    return page("Market watch", body)


def competitor_page(competitor: dict[str, Any]) -> str:
    columns = list(competitor["plans"][0])
    head = "".join(f"<th>{e(column)}</th>" for column in columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{e(plan[column])}</td>" for column in columns) + "</tr>"
        for plan in competitor["plans"]
    )
    body = f"""<h1 id="name">{e(competitor["name"])}</h1>
<p id="tagline">{e(competitor["tagline"])}</p>
<dl><dt>Headquarters</dt><dd id="hq">{e(competitor["hq"])}</dd>
<dt>Founded</dt><dd id="founded">{e(competitor["founded"])}</dd></dl>
<h2>Prices (per month)</h2>
<table class="prices"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>
<p><a id="website" href="{e(competitor["website"])}">{e(competitor["name"])} website</a></p>
<p><a href="/market/">Back to market watch</a></p>"""
    return page(competitor["name"], body)


def news_page() -> str:
    names = {c["slug"]: c["name"] for c in MARKET["competitors"]}
    items = "".join(
        f'<li class="news-item"><time datetime="{item["date"]}">{item["date"]}</time> '
        f'<a href="/market/competitors/{item["competitor"]}">{e(item["title"])}</a> '
        f'<span class="about">({e(names[item["competitor"]])})</span></li>'
        for item in MARKET["news"]
    )
    body = f"""<h1>Market news</h1>
<ul id="news">{items}</ul>
<p><a id="analysis" href="/market/out?to={e(MARKET["analysis"])}">An analyst's take on the price war</a></p>
<img id="pixel" src="{e(MARKET["tracker"])}" width="1" height="1" alt="">
<p><a href="/market/">Back to market watch</a></p>"""
    return page("Market news", body)


# --- the server -----------------------------------------------------------------------------------


class DemoWeb(ThreadedServer):
    """The site: a ThreadingHTTPServer in a daemon thread; also a context manager."""

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1"):
        self._lock = threading.Lock()
        self._submissions: dict[str, list[dict[str, Any]]] = {name: [] for name in FORMS}
        super().__init__(_handler(self), port, host)

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash: ``http://127.0.0.1:<port>``."""
        return f"http://{self.server.server_address[0]}:{self.port}"

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``, as an allowlist names it."""
        return f"{self.server.server_address[0]}:{self.port}"

    def submissions(self, platform: str) -> list[dict[str, Any]]:
        """The valid submissions of ``crm``, ``billing`` or ``support``, oldest first: their id and fields."""
        with self._lock:
            return [dict(s) for s in self._submissions[platform]]

    def reset(self) -> None:
        """Forget every submission (ids start at 0001 again)."""
        with self._lock:
            for records in self._submissions.values():
                records.clear()

    def _submit(self, platform: str, values: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            records = self._submissions[platform]
            record = {"id": f"{FORMS[platform]['prefix']}-{len(records) + 1:04d}", **values}
            records.append(record)
            return dict(record)

    def _find(self, platform: str, record_id: str) -> dict[str, Any] | None:
        with self._lock:
            return next((dict(r) for r in self._submissions[platform] if r["id"] == record_id), None)


DONE_PATHS = {
    "crm": re.compile(r"^/crm/welcome/(CRM-\d{4})$"),
    "billing": re.compile(r"^/billing/accounts/(BIL-\d{4})$"),
    "support": re.compile(r"^/support/users/(SUP-\d{4})$"),
}
DONE_URL = {"crm": "/crm/welcome/{}", "billing": "/billing/accounts/{}", "support": "/support/users/{}"}
WELCOME_CSV = re.compile(r"^/billing/accounts/(BIL-\d{4})/welcome\.csv$")
COMPETITOR = re.compile(r"^/market/competitors/([a-z0-9-]+)$")


def _handler(web: DemoWeb) -> type[BaseHTTPRequestHandler]:
    # long: the demo site's request handler: one route per page, read top to bottom
    forms_by_path = {spec["path"]: name for name, spec in FORMS.items()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the records
            pass

        def _send(
            self, status: int, body: str, content_type: str = "text/html; charset=utf-8", **headers: str
        ) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(data)

        def _redirect(self, location: str) -> None:
            self.send_response(303)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _not_found(self) -> None:
            self._send(404, page("Not found", f"<h1>Not found</h1><p>No page at {e(self.path)}.</p>"))

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/":
                return self._send(200, index_page())
            if path in forms_by_path:
                return self._send(200, form_page(forms_by_path[path]))
            for platform, pattern in DONE_PATHS.items():
                if match := pattern.match(path):
                    record = web._find(platform, match.group(1))
                    return self._send(200, done_page(platform, record)) if record else self._not_found()
            if match := WELCOME_CSV.match(path):
                record = web._find("billing", match.group(1))
                if not record:
                    return self._not_found()
                return self._send(
                    200,
                    welcome_csv(record),
                    "text/csv; charset=utf-8",
                    Content_Disposition=f'attachment; filename="{record["id"]}-welcome.csv"',
                )
            if path in ("/market", "/market/"):
                return self._send(200, market_index())
            if path == "/market/news":
                return self._send(200, news_page())
            if path == "/market/out":  # a link tracker: an open redirect, as many sites have
                target = parse_qs(urlsplit(self.path).query).get("to", [""])[-1]
                if not target:
                    return self._not_found()
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if match := COMPETITOR.match(path):
                found = next((c for c in MARKET["competitors"] if c["slug"] == match.group(1)), None)
                return self._send(200, competitor_page(found)) if found else self._not_found()
            return self._not_found()

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            platform = forms_by_path.get(path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            if platform is None:
                return self._not_found()
            form = {key: values[-1] for key, values in parse_qs(raw, keep_blank_values=True).items()}
            values, error = validate(platform, form)
            if error:
                return self._send(400, form_page(platform, values, error))
            record = web._submit(platform, values)
            self._redirect(DONE_URL[platform].format(record["id"]))

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demo.web", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    web = DemoWeb(args.port, host=args.host)
    web.serve(f"Demo web on {web.url} (Ctrl-C stops it)")


if __name__ == "__main__":
    main()
