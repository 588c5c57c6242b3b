"""A small OpenAI-compatible Chat Completions server on 127.0.0.1, for tests of the real-model path.

Each path prefix is a scripted behaviour: ``/valid/v1`` answers every call to an output tool with
``answer`` (or text), ``/invalid…/v1`` always answers with arguments that fail validation, and
``/slow/v1`` holds its first request until ``release()`` (a model call a test can kill a task in).
``/delayed/v1`` answers as ``/valid/v1`` after ``delay`` seconds (a model's latency, for the benchmarks).
``/tools/v1`` uses a tool first: while the last message is not a tool's result it calls ``tool_call``
(a tool name and its arguments); once it is, it answers with the output tool (``final_result…``,
or text when there is none) and the arguments ``finish(the tool result's text)`` — so what the tool
returned must reach the model for the output to hold it.
Every request body is recorded, so a test can check what the model was sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    request_queue_size = 64  # a fan-out's 16 calls at once connect together (the default backlog is 5)
    daemon_threads = True


class OpenAICompatibleServer:
    def __init__(
        self,
        answer: dict[str, Any],
        tool_call: tuple[str, dict[str, Any]] | None = None,
        finish: Callable[[str], dict[str, Any]] = json.loads,
        delay: float = 0.0,
    ):
        self.answer = answer
        self.delay = delay
        self.tool_call = tool_call
        self.finish = finish
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.down: set[str] = set()  # path prefixes refused with a 400 (a model that is unavailable)
        self.released = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append((self.path, body))
                if not self.path.endswith("/chat/completions"):
                    self.send_error(404, "only /v1/chat/completions here")
                    return
                if any(self.path.startswith(prefix) for prefix in server.down):
                    self.send_error(400, "the model is unavailable")
                    return
                if (
                    self.path.startswith("/slow/")
                    and sum(p.startswith("/slow/") for p, _ in server.requests) == 1
                ):
                    server.released.wait(timeout=120)
                if self.path.startswith("/delayed/"):
                    time.sleep(server.delay)
                try:
                    payload = json.dumps(server.reply(self.path, body)).encode()
                except LookupError as error:
                    self.send_error(400, str(error))
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def reply(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        tools = [tool["function"]["name"] for tool in body.get("tools") or []]
        if path.startswith("/tools/"):
            return self._tool_reply(body, tools)
        if path.startswith("/invalid"):
            arguments: Any = {"unexpected": True}
        else:
            arguments = self.answer
        return self._completion(body, tools[0] if tools else None, arguments)

    def _tool_reply(self, body: dict[str, Any], tools: list[str]) -> dict[str, Any]:
        """``/tools/``: call ``tool_call``'s tool, then answer with ``finish`` of its result."""
        last = body["messages"][-1]
        if last["role"] == "tool":
            output_tool = next((name for name in tools if name.startswith("final_result")), None)
            return self._completion(body, output_tool, self.finish(last["content"]))
        if self.tool_call is None:
            raise LookupError("this server was started without a tool_call for /tools/")
        name, arguments = self.tool_call
        if name not in tools:
            raise LookupError(f"the request offers no tool {name!r}; it offers {tools}")
        return self._completion(body, name, arguments)

    def _completion(self, body: dict[str, Any], tool: str | None, arguments: Any) -> dict[str, Any]:
        """A chat completion calling ``tool`` with ``arguments``, or answering them as text (no tool)."""
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if tool:
            message["tool_calls"] = [
                {
                    "id": f"call_{len(self.requests)}",
                    "type": "function",
                    "function": {"name": tool, "arguments": json.dumps(arguments)},
                }
            ]
        else:
            message["content"] = json.dumps(arguments)
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "local"),
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool else "stop"}],
            "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
        }

    def release(self) -> None:
        """Let a held ``/slow/`` request answer."""
        self.released.set()

    def __enter__(self) -> OpenAICompatibleServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
