"""Microsoft's Playwright MCP server (``@playwright/mcp``) as an agent's MCP server: an Airflow connection of
type mcp (stdio transport) running it on Debian's Chromium, headless and without a sandbox, and a model
that navigates to a page served on 127.0.0.1 and reads it back through its snapshot tool.

The server is installed at test time from tests/agents/playwright_mcp/package.json into
``.cache/playwright-mcp`` (ignored by git, reused while the pinned version is unchanged).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from baton.agents.tools import toolsets
from tests.conftest import ROOT, processes_naming

pytestmark = pytest.mark.integration  # it starts a browser (Chromium, through the Playwright MCP server)

PACKAGE = Path(__file__).resolve().parent / "playwright_mcp" / "package.json"
CACHE = ROOT / ".cache" / "playwright-mcp"
PAGE = (
    b'<!doctype html><html><head><title>Price list</title><link rel="icon" href="data:,"></head>'
    b"<body><h1>Widget</h1><p>19.50 USD</p><button>Buy</button></body></html>"
)
SNAPSHOT = """```yaml
- generic [active] [ref=e1]:
  - heading "Widget" [level=1] [ref=e2]
  - paragraph [ref=e3]: 19.50 USD
  - button "Buy" [ref=e4]
```"""


def _installed_version() -> str | None:
    installed = CACHE / "node_modules" / "@playwright" / "mcp" / "package.json"
    return json.loads(installed.read_text())["version"] if installed.exists() else None


@pytest.fixture(scope="module")
def playwright_mcp() -> Path:
    """The Playwright MCP server's executable, installed with npm from the pinned package.json."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.skip(f"'{tool}' is not on PATH: the Playwright MCP server needs Node.js 18+ and npm")
    wanted = json.loads(PACKAGE.read_text())["dependencies"]["@playwright/mcp"]
    if _installed_version() != wanted:
        CACHE.mkdir(parents=True, exist_ok=True)
        shutil.copy(PACKAGE, CACHE / "package.json")
        done = subprocess.run(
            ["npm", "install", "--no-package-lock", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CACHE,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, f"npm install of @playwright/mcp {wanted} failed:\n{done.stderr[-3000:]}"
    assert _installed_version() == wanted
    return CACHE / "node_modules" / ".bin" / "playwright-mcp"


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("no 'chromium' on PATH (scripts/install.sh installs Debian's chromium)")
    return path


@pytest.fixture
def page():
    """A page on 127.0.0.1; the paths the browser fetched."""
    fetched: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            fetched.append(self.path)
            status, body = (200, PAGE) if self.path == "/prices" else (404, b"")
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/prices", fetched
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_a_model_browses_a_local_page_through_the_playwright_mcp_server(
    playwright_mcp, chromium, page, tmp_path, monkeypatch
):
    url, fetched = page
    profile = tmp_path / "chromium-profile"  # on Chromium's command line: finds its processes
    connection = {
        "conn_type": "mcp",
        "extra": {
            "transport": "stdio",
            "command": str(playwright_mcp),
            "args": [
                *("--executable-path", chromium, "--headless", "--no-sandbox"),
                *("--user-data-dir", str(profile), "--output-dir", str(tmp_path / "out")),
            ],
            "timeout": 60,
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_BATON_TEST_PLAYWRIGHT", json.dumps(connection))
    script = [("browser_navigate", {"url": url}), ("browser_snapshot", {})]
    results: list[tuple[str, Any]] = []
    offered: list[list[str]] = []

    def browse(messages: list, info: AgentInfo) -> ModelResponse:
        offered.append(sorted(tool.name for tool in info.function_tools))
        last = messages[-1].parts[-1]
        if isinstance(last, ToolReturnPart):
            results.append((last.tool_name, last.content))
        if script:
            name, args = script.pop(0)
            return ModelResponse(parts=[ToolCallPart(name, args)])
        return ModelResponse(parts=[TextPart("read the page")])

    record: list[tuple[str, dict[str, Any], str]] = []
    agent_toolsets = toolsets(
        {"name": "web_reader", "mcp": ["baton_test_playwright"]}, lambda *event: record.append(event)
    )
    result = Agent(FunctionModel(browse), toolsets=agent_toolsets).run_sync("What does a widget cost?")

    assert result.output == "read the page"
    assert {"browser_navigate", "browser_snapshot", "browser_click", "browser_type"} <= set(offered[0])
    assert [name for name, _ in results] == ["browser_navigate", "browser_snapshot"]
    navigated, snapshot = (content for _, content in results)
    assert f"- Page URL: {url}\n- Page Title: Price list" in navigated
    assert snapshot == f"### Page\n- Page URL: {url}\n- Page Title: Price list\n### Snapshot\n{SNAPSHOT}"
    assert fetched == ["/prices"]  # the real browser loaded the page (and nothing else)

    def digest(arguments: dict[str, Any]) -> str:
        return hashlib.sha256(
            json.dumps(arguments, separators=(",", ":"), sort_keys=True).encode()
        ).hexdigest()

    assert [(kind, d, p["tool"], p["arguments_sha256"], p["ok"]) for kind, p, d in record] == [
        ("tool.called", "1:browser_navigate", "browser_navigate", digest({"url": url}), True),
        ("tool.called", "2:browser_snapshot", "browser_snapshot", digest({}), True),
    ]

    deadline = time.monotonic() + 15  # the server closes Chromium when its stdin closes
    while processes_naming(str(profile)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_naming(str(profile)) == [], "Chromium outlived the Playwright MCP server"
