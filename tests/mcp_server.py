"""A real MCP server (the ``mcp`` package's ``MCPServer``) over streamable HTTP on 127.0.0.1, for tests.

``PricingServer`` serves three tools: ``list_products()``, ``get_price(product)`` and
``convert(amount, to)``, from a fixed price list. It runs uvicorn in a thread on a free port,
records every tool call it answers (name and arguments), and stops at the end of its ``with``::

    with PricingServer() as pricing:
        pricing.url  # http://127.0.0.1:<port>/mcp: the host of an Airflow connection of type mcp

Run as a script, the same server talks MCP over stdio (a connection with ``"transport": "stdio"``).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

PRICES = {"widget": 19.5, "gadget": 42.0, "gizmo": 7.25}
RATES = {"USD": 1.0, "EUR": 0.5, "GBP": 0.25}  # round numbers, so tests can state exact results


def pricing_mcp(calls: list[tuple[str, dict[str, Any]]]) -> Any:
    """The pricing MCP server (``mcp``'s ``MCPServer``); each tool call it answers is appended to ``calls``."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    mcp = MCPServer("pricing", instructions="Prices of the demo products, in USD.")

    @mcp.tool()
    def list_products() -> list[str]:
        """The products that have a price."""
        calls.append(("list_products", {}))
        return sorted(PRICES)

    @mcp.tool()
    def get_price(product: str) -> dict[str, Any]:
        """The price of one product, in USD."""
        calls.append(("get_price", {"product": product}))
        if product not in PRICES:
            raise ToolError(f"unknown product {product!r}; known: {', '.join(sorted(PRICES))}")
        return {"product": product, "price_usd": PRICES[product], "currency": "USD"}

    @mcp.tool()
    def convert(amount: float, to: str) -> dict[str, Any]:
        """An amount of USD in another currency (USD, EUR or GBP)."""
        calls.append(("convert", {"amount": amount, "to": to}))
        return {"amount": round(amount * RATES[to], 2), "currency": to}

    return mcp


class PricingServer:
    def __init__(self) -> None:
        import uvicorn

        self.calls: list[tuple[str, dict[str, Any]]] = []
        mcp = pricing_mcp(self.calls)

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(mcp.streamable_http_app(), log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/mcp"

    def connection(self) -> dict[str, Any]:
        """An Airflow connection of type mcp to this server (JSON for ``AIRFLOW_CONN_<ID>``)."""
        return {"conn_type": "mcp", "host": self.url}

    def __enter__(self) -> PricingServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the MCP test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


if __name__ == "__main__":  # the same server over stdio: python tests/mcp_server.py [MARKER]
    import sys
    import tempfile

    if sys.argv[1:]:  # a folder it leaves in its TMPDIR, as Chromium does when its server ends it
        tempfile.mkdtemp(prefix=f"{sys.argv[1]}-")
    pricing_mcp([]).run("stdio")
