"""The offline model: a pydantic-ai FunctionModel giving deterministic, schema-valid answers.

The same prompt always gives the same answer and different prompts give different answers, so
every bundled workflow runs end to end with no API key and its outputs can be asserted on.

Extensions may add hooks around its requests (``REQUEST_HOOKS``): the development tools' fault injection
(devtools/faults.py, for tests and benchmarks only) makes it fail, hang or answer outside the schema.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import hashlib
import inspect
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from baton.extensions import load
from baton.spec.expect import VERDICT_TITLE, judged_parts

OFFLINE_MODEL_NAME = "baton:offline"

log = logging.getLogger(__name__)


def prompt_of(messages: list[ModelMessage]) -> str:
    parts = [
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, UserPromptPart) and isinstance(part.content, str)
    ]
    return "\n".join(parts)


class OfflineError(ValueError):
    """The offline model cannot produce a value for a schema (an impossible pattern, min above max)."""


FORMATS = {  # a fixed, valid instance of each string format a template may declare
    "date": "2026-01-{day:02d}",
    "date-time": "2026-01-{day:02d}T09:{minute:02d}:00Z",
    "time": "09:{minute:02d}:00",
    "email": "user{n}@example.com",
    "uri": "https://example.com/item/{n}",
    "url": "https://example.com/item/{n}",
    "uuid": "00000000-0000-4000-8000-{n:012d}",
    "ipv4": "192.0.2.{octet}",
    "hostname": "host{n}.example.com",
}
MAX_SIZE = 1_000_000  # the longest string and the most items the offline model makes for one value
MAX_DEPTH = 32  # a recursive schema (a tree of itself) stops here: optional parts left out, arrays empty


class Faker:
    """Values for a JSON Schema, each drawn from a hash of the prompt and the value's path: the same prompt
    gives the same answer. Strings read as the field's name and the prompt's gist where the schema lets
    them; a ``pattern`` is honoured with rstr's ``xeger`` (a random string matching the regex, seeded from
    the hash) when no readable candidate matches; ``format``, lengths, bounds, ``multipleOf``, item counts,
    uniqueness and ``allOf`` are honoured too. Only the ``required`` properties are given: an optional one
    takes its default (an empty ``depends_on``, not made-up ids of subtasks that do not exist)."""

    def __init__(self, prompt: str, schema: dict[str, Any]):
        self.prompt = prompt
        self.defs = schema.get("$defs", {})
        words = prompt.split()
        self.gist = " ".join(words[:12]) + (" ..." if len(words) > 12 else "")

    def number(self, path: str) -> int:
        return int.from_bytes(hashlib.sha256(f"{self.prompt}\x00{path}".encode()).digest()[:8], "big")

    def value(self, schema: dict[str, Any], path: str, depth: int = 0) -> Any:
        if depth > MAX_DEPTH * 4:
            raise OfflineError(f"{path}: the schema nests deeper than the offline model follows")
        if "$ref" in schema:
            return self.value(self.defs[schema["$ref"].rsplit("/", 1)[-1]], path, depth + 1)
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                merged.update(self.defs[part["$ref"].rsplit("/", 1)[-1]] if "$ref" in part else part)
            return self.value(merged, path, depth + 1)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
                return self.value(
                    options[self.number(path) % len(options)] if key == "anyOf" else options[0],
                    path,
                    depth + 1,
                )
        if "enum" in schema:
            return schema["enum"][self.number(path) % len(schema["enum"])]
        if "const" in schema:
            return schema["const"]
        kind = schema.get("type", "object" if "properties" in schema else "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        return getattr(self, f"_{kind}")(schema, path, depth)

    def _string(self, schema: dict[str, Any], path: str, depth: int) -> str:
        n = self.number(path)
        low = int(schema.get("minLength", 0))
        high = int(schema.get("maxLength", max(low, 10_000)))
        if low > high:
            raise OfflineError(f"{path}: minLength {low} is above maxLength {high}")
        if low > MAX_SIZE:
            raise OfflineError(
                f"{path}: minLength {low:,} is more than the offline model writes ({MAX_SIZE:,})"
            )
        if (fmt := schema.get("format")) in FORMATS:
            text = FORMATS[fmt].format(n=n % 10**12, day=1 + n % 28, minute=n % 60, octet=1 + n % 254)
        elif "pattern" in schema:
            text = self._matching(schema["pattern"], path, n, low, high)
        else:
            name = path.rsplit(".", 1)[-1].replace("_", " ")
            text = f"{name} (offline #{n % 10000:04d}): {self.gist}"
        if len(text) < low:
            text += "." * (low - len(text))
        return text[:high] if "pattern" not in schema else text

    def _matching(self, pattern: str, path: str, n: int, low: int, high: int) -> str:
        import random

        import rstr

        try:
            compiled = re.compile(pattern)
        except re.error as error:
            raise OfflineError(
                f"{path}: the pattern {pattern!r} is not a regular expression: {error}"
            ) from None
        name = re.sub(r"[^a-zA-Z0-9]+", "_", path.rsplit(".", 1)[-1].split("[")[0]).strip("_") or "value"
        readable = [f"{name}_{n % 10000:04d}", name, f"{name.upper()}-{n % 10000:04d}", f"{n % 10**6}"]
        readable = [c.lower() if i == 0 else c for i, c in enumerate(readable)]
        for candidate in readable:
            if compiled.search(candidate) and low <= len(candidate) <= high:
                return candidate
        generator = rstr.Rstr(random.Random(n))
        for _ in range(50):
            candidate = generator.xeger(compiled)
            if compiled.search(candidate) and low <= len(candidate) <= high:
                return candidate
        raise OfflineError(
            f"{path}: the offline model found no string of {low} to {high} characters matching {pattern!r}; "
            "check that the pattern can match and fits the length limits"
        )

    def _integer(self, schema: dict[str, Any], path: str, depth: int) -> int:
        low = schema.get("minimum", schema["exclusiveMinimum"] + 1 if "exclusiveMinimum" in schema else None)
        high = schema.get("maximum", schema["exclusiveMaximum"] - 1 if "exclusiveMaximum" in schema else None)
        low = (
            int(math.ceil(low)) if low is not None else (0 if high is None or high >= 0 else int(high) - 100)
        )
        high = int(math.floor(high)) if high is not None else low + 100
        step = int(schema.get("multipleOf", 1)) or 1
        first = -(-low // step) * step
        if first > high:
            raise OfflineError(f"{path}: no integer from {low} to {high} is a multiple of {step}")
        return first + (self.number(path) % ((high - first) // step + 1)) * step

    def _number(self, schema: dict[str, Any], path: str, depth: int) -> float:
        if "multipleOf" in schema:
            return self._multiple(schema, path)
        exclusive = "exclusiveMinimum" in schema or "exclusiveMaximum" in schema
        low = float(schema.get("minimum", schema.get("exclusiveMinimum", 0.0)))
        high = float(schema.get("maximum", schema.get("exclusiveMaximum", max(low, 0.0) + 100.0)))
        if low > high or (low == high and exclusive):
            raise OfflineError(f"{path}: no number lies between {low} and {high}")
        share = (self.number(path) % 10001) / 10000
        if not exclusive:
            return round(low + share * (high - low), 2)
        value = low + (0.05 + 0.9 * share) * (high - low)  # inside the open interval
        return rounded if low < (rounded := round(value, 2)) < high else value

    def _multiple(self, schema: dict[str, Any], path: str) -> float:
        step = float(schema["multipleOf"])
        low = float(schema.get("minimum", schema.get("exclusiveMinimum", 0.0)))
        high = float(schema.get("maximum", schema.get("exclusiveMaximum", low + 100 * step)))
        first, last = math.ceil(low / step), math.floor(high / step)
        if "exclusiveMinimum" in schema and first * step <= low:
            first += 1
        if "exclusiveMaximum" in schema and last * step >= high:
            last -= 1
        if first > last:
            raise OfflineError(f"{path}: no multiple of {step} lies between {low} and {high}")
        return (first + self.number(path) % (last - first + 1)) * step

    def _boolean(self, schema: dict[str, Any], path: str, depth: int) -> bool:
        return self.number(path) % 2 == 0

    def _null(self, schema: dict[str, Any], path: str, depth: int) -> None:
        return None

    def _array(self, schema: dict[str, Any], path: str, depth: int) -> list[Any]:
        low, high = int(schema.get("minItems", 0)), int(schema.get("maxItems", 10**9))
        if low > high:
            raise OfflineError(f"{path}: minItems {low} is above maxItems {high}")
        if low > MAX_SIZE:
            raise OfflineError(
                f"{path}: minItems {low:,} is more than the offline model makes ({MAX_SIZE:,})"
            )
        wanted = low if depth > MAX_DEPTH else max(low, 1 + self.number(path) % 3)
        count = min(wanted, high, max(low, 50))  # a huge minItems is honoured; no more than needed
        items = [self.value(schema.get("items", {}), f"{path}[{i}]", depth + 1) for i in range(count)]
        if schema.get("uniqueItems"):
            seen: list[Any] = []
            for item in items:
                if item in seen:
                    raise OfflineError(f"{path}: the offline model gave the same item twice (uniqueItems)")
                seen.append(item)
        return items

    def _object(self, schema: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        properties = schema.get("properties", {})
        required = schema.get("required", list(properties))
        return {key: self.value(properties.get(key, {}), f"{path}.{key}", depth + 1) for key in required}


EMPTY = ("", "null", '""', "[]", "{}")


def offline_verdict(prompt: str) -> dict[str, Any] | None:
    """The offline judge's verdict on a rubric (:func:`baton.spec.expect.judge_prompt`), deterministic: the
    field meets the rubric when it is not empty and holds every phrase the rubric quotes in double quotes,
    ignoring case. None when ``prompt`` is not a judge's."""
    parts = judged_parts(prompt)
    if parts is None:
        return None
    rubric, value = parts
    try:
        decoded = json.loads(value)
    except ValueError:  # a value cut at the judge's bound: its JSON as it stands
        decoded = value
    text = decoded if isinstance(decoded, str) else value
    if text.strip() in EMPTY:
        return {"passed": False, "reason": "offline judge: the field is empty"}
    missing = [phrase for phrase in re.findall(r'"([^"]+)"', rubric) if phrase.lower() not in text.lower()]
    if missing:
        return {"passed": False, "reason": f"offline judge: the field does not say {missing[0]!r}"}
    return {"passed": True, "reason": "offline judge: the field says every phrase the rubric quotes"}


def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Answer a request: call the output tool with fitting arguments (a judge's verdict by the offline
    judge's rule, :func:`offline_verdict`), or write a text."""
    prompt = prompt_of(messages)
    if info.output_tools:
        tool = info.output_tools[0]
        schema = tool.parameters_json_schema
        if schema.get("title") == VERDICT_TITLE and (verdict := offline_verdict(prompt)) is not None:
            return ModelResponse(parts=[ToolCallPart(tool.name, verdict)])
        return ModelResponse(parts=[ToolCallPart(tool.name, Faker(prompt, schema).value(schema, "output"))])
    faker = Faker(prompt, {})
    return ModelResponse(
        parts=[TextPart(f"Offline answer #{faker.number('text') % 10000:04d}: {faker.gist}")]
    )


# Hooks an extension (BATON_EXTENSIONS) may add around each request of the offline model: a hook gets
# the request's messages and info, and returns a response to answer with instead, or None to let the
# model answer; it may also wait or raise. The development tools' fault injection is one (devtools/faults.py).
RequestHook = Callable[[list[ModelMessage], AgentInfo], Awaitable[ModelResponse | None]]
REQUEST_HOOKS: list[RequestHook] = []


@dataclass(frozen=True)
class Serving:
    """Which connection the offline model answers for, and the delay it was given (what a hook may key on)."""

    conn_id: str = ""
    delay_s: float = 0.0


SERVING: contextvars.ContextVar[Serving | None] = contextvars.ContextVar(
    "baton_offline_serving", default=None
)


def offline_model(
    delay_s: float = 0.0, conn_id: str = "", usage: tuple[int, int] | None = None
) -> FunctionModel:
    """A fresh offline model (a real pydantic-ai ``Model``).

    :param delay_s: seconds each answer takes (``asyncio.sleep``): a stand-in for a remote model's
        latency, for benchmarks and timeouts.
    :param conn_id: the LLM connection it stands for; the request hooks read it (with the delay) from
        :data:`SERVING` while they run.
    :param usage: (input, output) tokens each answer reports, instead of pydantic-ai's estimate from the
        messages' words: fixed counts for budget tests and benchmarks.
    """
    load()  # the hooks of extensions are registered when their module is imported
    hooks = list(REQUEST_HOOKS)
    if usage is not None:
        fixed = RequestUsage(input_tokens=usage[0], output_tokens=usage[1])
        inner = offline_model(delay_s, conn_id).function

        async def counted(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            response = inner(messages, info)
            if inspect.isawaitable(response):
                response = await response
            return dataclasses.replace(response, usage=fixed)

        return FunctionModel(counted, model_name=OFFLINE_MODEL_NAME)
    if not delay_s and not hooks:
        return FunctionModel(respond, model_name=OFFLINE_MODEL_NAME)
    serving = Serving(conn_id, delay_s)

    async def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if delay_s:
            await asyncio.sleep(delay_s)
        token = SERVING.set(serving)
        try:
            for hook in hooks:
                if (instead := await hook(messages, info)) is not None:
                    return instead
        finally:
            SERVING.reset(token)
        return respond(messages, info)

    return FunctionModel(answer, model_name=OFFLINE_MODEL_NAME)
