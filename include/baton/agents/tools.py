"""The tools an LLM agent's model may call: pydantic-ai toolsets built from the agent's roster entry.

``toolsets(agent, record)`` builds them with each builder of ``TOOLSET_BUILDERS`` (one MCP toolset
per ``mcp`` entry of the agent, and the browser tools of an agent with ``browser`` access) and
wraps each one so that every tool call the model makes records a ``tool.called`` event through
``record(type, payload, discriminator)``: the tool's name as the model called it, the sha256 of its
arguments (never the arguments or the result), whether it succeeded and how long it took.

Adding a kind of tools (e.g. a browser) is adding one ``"module:function"`` to ``TOOLSET_BUILDERS``:
a function ``(agent: dict, record) -> list[AbstractToolset]`` that returns ``[]`` for an agent that
does not use it. Builders are imported when a step runs, never when a DAG is parsed.

It is imported when a step runs (by :mod:`baton.agents.llm`); common-ai's MCP toolset and Airflow's task
context are imported by the functions that use them.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from baton.browser.artifacts import Artifacts
from baton.browser.tools import browser_toolset
from baton.errors import AgentError
from baton.spec.roster import McpServer

# record(type, payload, discriminator): an event of this step's try (see run_llm_step).
Record = Callable[[str, dict[str, Any], str], None]

TOOLSET_BUILDERS: list[str] = ["baton.agents.tools:mcp_toolsets", "baton.agents.tools:browser_toolsets"]

MCP_FIX = (
    "Create an Airflow connection of type mcp with host = the server's URL, e.g. "
    'AIRFLOW_CONN_{ID}=\'{{"conn_type": "mcp", "host": "http://127.0.0.1:3001/mcp"}}\''
)


class McpServerError(AgentError):
    """An agent's MCP server could not be used: its connection is missing or wrong, or it is unreachable."""


def arguments_sha256(arguments: dict[str, Any]) -> str:
    """The sha256 of a tool call's arguments as canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def toolsets(agent: dict[str, Any], record: Record) -> list[Any]:
    """The toolsets of ``agent`` (a roster entry as a dict), each recording its calls through ``record``.

    An empty list for an agent without tools.
    """
    built = [toolset for builder in _builders() for toolset in builder(agent, record)]
    calls = itertools.count(1)  # one sequence for the step: each call's event has its own key
    recorded = _recorded_toolset_class()
    return [recorded(wrapped=toolset, record=record, calls=calls) for toolset in built]


def _builders() -> list[Callable[[dict[str, Any], Record], list[Any]]]:
    builders = []
    for path in TOOLSET_BUILDERS:
        module, _, name = path.partition(":")
        builders.append(getattr(importlib.import_module(module), name))
    return builders


def browser_toolsets(agent: dict[str, Any], record: Record) -> list[Any]:
    """The browser tools (goto, click, fill, select, check, read_page, extract_table, screenshot) of an
    agent with ``browser`` access: the model drives Chromium within the agent's allowed hosts, each
    action recorded, its screenshots kept under the task's artifact folder."""
    access = agent.get("browser")
    if not access:
        return []
    from airflow.sdk import get_current_context

    context = get_current_context()
    numbers = itertools.count(1)

    def record_browser(kind: str, payload: dict[str, Any]) -> None:
        record(kind, payload, f"browser:{next(numbers)}")

    return [
        browser_toolset(
            access, record=record_browser, artifacts=Artifacts.for_task(context), step=context["ti"].task_id
        )
    ]


def mcp_toolsets(agent: dict[str, Any], record: Record) -> list[Any]:
    """One common-ai ``MCPToolset`` per ``mcp`` entry of ``agent``, its tools prefixed as the entry says;
    a server that cannot be used fails the step with an error naming the agent, the connection and
    the fix."""
    servers = [McpServer.model_validate(entry) for entry in agent.get("mcp") or []]
    if not servers:
        return []
    from airflow.providers.common.ai.toolsets.mcp import MCPToolset

    guarded = _guarded_mcp_class()
    built = []
    for server in servers:
        scratch = ScratchDir()
        built.append(
            guarded(
                wrapped=MCPToolset(server.conn_id, tool_prefix=server.prefix, env_provider=scratch.env),
                agent=agent["name"],
                conn_id=server.conn_id,
                scratch=scratch,
            )
        )
    return built


class ScratchDir:
    """The ``TMPDIR`` of a stdio MCP server while a step uses it: a folder of its own under the worker's temp
    folder, made when the step enters the toolset and removed, with whatever the server left in it, when it
    leaves. A server ended by a signal cleans up nothing (Playwright's Chromium left its singleton folder and
    an empty ``pw-*`` in /tmp at every step); a TMPDIR in the connection's ``env`` is replaced by this one.
    An HTTP server never asks for it, so nothing is made for one."""

    def __init__(self) -> None:
        # short: Chromium's singleton socket is made in it, and a Unix socket's path must fit in 107 bytes
        self.path = Path(tempfile.gettempdir()) / f"baton-mcp-{secrets.token_hex(6)}"
        self.given = False  # whether a server was started with it (common-ai asks once, at the first entry)

    def env(self) -> dict[str, str]:
        self.given = True
        self.make()
        return {"TMPDIR": str(self.path)}

    def make(self) -> None:
        self.path.mkdir(mode=0o700, exist_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _describe_server(conn_id: str) -> str:
    """Where connection ``conn_id`` says its MCP server is: the URL, or the stdio command."""
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        extra = conn.extra_dejson
    except Exception:  # the description is best effort: the error it decorates is the point
        return "its server"
    if extra.get("transport") == "stdio":
        args = extra.get("args") or []
        return "stdio: " + " ".join([str(extra.get("command"))] + ([args] if isinstance(args, str) else args))
    return str(conn.host)


def mcp_error(agent: str, conn_id: str, error: BaseException, where: str) -> McpServerError:
    """The step's error for an MCP server that could not be used (``where``: its URL or command)."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    fix = MCP_FIX.format(ID=conn_id.upper())
    if isinstance(error, AirflowNotFoundException):
        return McpServerError(
            f"Agent '{agent}' uses the MCP connection '{conn_id}', which is not defined. {fix}."
        )
    if isinstance(error, ValueError):  # common-ai's MCPHook refusing the connection's settings
        return McpServerError(f"Agent '{agent}': the MCP connection '{conn_id}' is unusable: {error} {fix}.")
    return McpServerError(
        f"Agent '{agent}' could not reach the MCP server of connection '{conn_id}' ({where}): "
        f"{type(error).__name__}: {error}. Start the server, or correct the connection: {fix}."
    )


@cache
def _guarded_mcp_class() -> type:
    from dataclasses import dataclass, field

    from pydantic_ai.toolsets.wrapper import WrapperToolset

    @dataclass
    class GuardedMcpToolset(WrapperToolset[Any]):
        """An MCP toolset whose connection errors name the agent, the connection and the fix."""

        agent: str = ""
        conn_id: str = ""
        scratch: ScratchDir = field(default_factory=ScratchDir)

        @property
        def id(self) -> str | None:
            return self.wrapped.id

        async def __aenter__(self) -> Any:
            if self.scratch.given:
                self.scratch.make()  # again on a second entry: the server keeps the TMPDIR it was given
            try:
                await self.wrapped.__aenter__()
            except Exception as error:
                import asyncio

                self.scratch.remove()
                where = await asyncio.to_thread(_describe_server, self.conn_id)
                raise mcp_error(self.agent, self.conn_id, error, where) from error
            return self

        async def __aexit__(self, *args: Any) -> bool | None:
            try:
                return await self.wrapped.__aexit__(*args)
            finally:
                await _stop_stdio_servers(self.wrapped)
                self.scratch.remove()

    return GuardedMcpToolset


async def _stop_stdio_servers(toolset: Any) -> None:
    """Stop the subprocess of a stdio MCP server when the step's run is over.

    fastmcp keeps a stdio server alive after its session (``keep_alive``) for the next one; a step's
    run has no next one, and in a process that runs several steps (``dag.test()``) each would leave
    its server (and e.g. the browser of Playwright's) running until the process ends.
    """
    from fastmcp.client.transports import StdioTransport

    server = getattr(toolset, "_server", None)  # common-ai's MCPToolset: the pydantic-ai toolset it built
    if server is None:
        return
    transports: list[Any] = []
    server.apply(lambda leaf: transports.append(getattr(getattr(leaf, "client", None), "transport", None)))
    for transport in transports:
        if isinstance(transport, StdioTransport):
            await transport.disconnect()


@cache
def _recorded_toolset_class() -> type:
    from dataclasses import dataclass

    from pydantic_ai.toolsets.wrapper import WrapperToolset

    @dataclass
    class RecordedToolset(WrapperToolset[Any]):
        """A toolset that records a ``tool.called`` event for each call the model makes to its tools."""

        record: Any = None
        calls: Any = None

        @property
        def id(self) -> str | None:
            return self.wrapped.id

        async def call_tool(self, name: str, tool_args: dict[str, Any], ctx: Any, tool: Any) -> Any:
            number = next(self.calls)
            started = time.monotonic()
            ok = False
            try:
                result = await self.wrapped.call_tool(name, tool_args, ctx, tool)
                ok = True
                return result
            finally:
                payload = {
                    "tool": name,
                    "arguments_sha256": arguments_sha256(tool_args),
                    "ok": ok,
                    "latency_s": round(time.monotonic() - started, 3),
                }
                self.record("tool.called", payload, f"{number}:{name}")

    return RecordedToolset
