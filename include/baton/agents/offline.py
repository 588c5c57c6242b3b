"""The offline model: a pydantic-ai FunctionModel giving deterministic, schema-valid answers.

The same prompt always gives the same answer and different prompts give different answers, so
every bundled workflow runs end to end with no API key and its outputs can be asserted on.

Only when ``BATON_FAULTS`` is set (tests and benchmarks, never a template: :mod:`baton.agents.faults`)
it misbehaves on purpose, per request: it fails, hangs, or answers outside the output schema.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
from typing import Any

from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

OFFLINE_MODEL_NAME = "baton:offline"
INVALID_FIELD = "injected_invalid_field"

log = logging.getLogger(__name__)
_unscoped_calls = itertools.count()  # tells apart requests made outside any step (unit tests)


class InjectedModelError(ModelHTTPError):
    """A model request failed on purpose (``BATON_FAULTS``): a 503 as a provider would answer it."""

    def __init__(self, where: str):
        super().__init__(
            503, OFFLINE_MODEL_NAME, body={"error": f"injected model error ({where}; BATON_FAULTS)"}
        )


def _prompt_of(messages: list[ModelMessage]) -> str:
    parts = [
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, UserPromptPart) and isinstance(part.content, str)
    ]
    return "\n".join(parts)


class _Faker:
    """Values for a JSON Schema, each drawn from a hash of the prompt and the value's path."""

    def __init__(self, prompt: str, schema: dict[str, Any]):
        self.prompt = prompt
        self.defs = schema.get("$defs", {})
        words = prompt.split()
        self.gist = " ".join(words[:12]) + (" ..." if len(words) > 12 else "")

    def number(self, path: str) -> int:
        return int.from_bytes(hashlib.sha256(f"{self.prompt}\x00{path}".encode()).digest()[:8], "big")

    def value(self, schema: dict[str, Any], path: str) -> Any:
        if "$ref" in schema:
            return self.value(self.defs[schema["$ref"].rsplit("/", 1)[-1]], path)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
                return self.value(options[0], path)
        if "enum" in schema:
            return schema["enum"][self.number(path) % len(schema["enum"])]
        if "const" in schema:
            return schema["const"]
        kind = schema.get("type", "object" if "properties" in schema else "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        return getattr(self, f"_{kind}")(schema, path)

    def _string(self, schema: dict[str, Any], path: str) -> str:
        name = path.rsplit(".", 1)[-1].replace("_", " ")
        return f"{name} (offline #{self.number(path) % 10000:04d}): {self.gist}"

    def _integer(self, schema: dict[str, Any], path: str) -> int:
        low = int(schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1))
        high = int(schema.get("maximum", schema.get("exclusiveMaximum", low + 101) - 1))
        return low + self.number(path) % (high - low + 1)

    def _number(self, schema: dict[str, Any], path: str) -> float:
        low = float(schema.get("minimum", 0.0))
        high = float(schema.get("maximum", low + 100.0))
        return round(low + (self.number(path) % 10001) / 10000 * (high - low), 2)

    def _boolean(self, schema: dict[str, Any], path: str) -> bool:
        return self.number(path) % 2 == 0

    def _null(self, schema: dict[str, Any], path: str) -> None:
        return None

    def _array(self, schema: dict[str, Any], path: str) -> list[Any]:
        count = max(int(schema.get("minItems", 1)), 1 + self.number(path) % 3)
        return [self.value(schema.get("items", {}), f"{path}[{i}]") for i in range(count)]

    def _object(self, schema: dict[str, Any], path: str) -> dict[str, Any]:
        properties = schema.get("properties", {})
        return {key: self.value(sub, f"{path}.{key}") for key, sub in properties.items()}


def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Answer a request: call the output tool with fitting arguments, or write a text."""
    prompt = _prompt_of(messages)
    if info.output_tools:
        tool = info.output_tools[0]
        schema = tool.parameters_json_schema
        return ModelResponse(parts=[ToolCallPart(tool.name, _Faker(prompt, schema).value(schema, "output"))])
    faker = _Faker(prompt, {})
    return ModelResponse(
        parts=[TextPart(f"Offline answer #{faker.number('text') % 10000:04d}: {faker.gist}")]
    )


def invalid_response(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """An answer that breaks the output schema: the valid one without its first required field and
    with a field the schema does not have (an array where none is required); with no output tool,
    a call of a tool that does not exist. pydantic-ai answers each with a retry prompt (a re-ask)."""
    if not info.output_tools:
        return ModelResponse(parts=[ToolCallPart(INVALID_FIELD, {})])
    tool = info.output_tools[0]
    schema = tool.parameters_json_schema
    value = _Faker(_prompt_of(messages), schema).value(schema, "output")
    required = schema.get("required") or []
    if isinstance(value, dict) and required:
        value.pop(required[0], None)
        value[INVALID_FIELD] = "not in the schema (BATON_FAULTS)"
        return ModelResponse(parts=[ToolCallPart(tool.name, value)])
    return ModelResponse(parts=[ToolCallPart(tool.name, json.dumps([value]))])


def request_identity(messages: list[ModelMessage]) -> tuple[object, ...]:
    """What this request's fault draws are keyed by: its step's run, step, map index, subtask and try
    (from the effect scope the operator runs the call in) and how many answers the conversation has
    had (a re-ask is the next request). Outside a step: the prompt and a process-wide counter."""
    from baton import effects
    from baton.agents.faults import request_parts

    request = sum(isinstance(m, ModelResponse) for m in messages)
    scope = effects.current()
    if scope is not None:
        return request_parts(
            scope.run_id, scope.step, scope.map_index, scope.subtask, scope.try_number, request
        )
    prompt = hashlib.sha256(_prompt_of(messages).encode()).hexdigest()[:16]
    return ("unscoped", prompt, next(_unscoped_calls), request)


def offline_model(delay_s: float = 0.0) -> FunctionModel:
    """A fresh offline model (a real pydantic-ai ``Model``).

    :param delay_s: seconds each answer takes (``asyncio.sleep``): a stand-in for a remote model's
        latency, for benchmarks and timeouts.

    With ``BATON_FAULTS`` set, each request may fail, hang or answer invalidly (see
    :mod:`baton.agents.faults`); without it the model never misbehaves.
    """
    from baton.agents.faults import active

    faults = active()
    if not delay_s and faults is None:
        return FunctionModel(respond, model_name=OFFLINE_MODEL_NAME)

    async def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if delay_s:
            await asyncio.sleep(delay_s)
        if faults is not None:
            parts = request_identity(messages)
            kind = faults.model_fault(*parts)
            if kind is not None:
                log.warning("BATON_FAULTS: injected model %s on request %s", kind, parts)
            if kind == "error":
                raise InjectedModelError("request " + "/".join(map(str, parts)))
            if kind == "timeout":
                await asyncio.sleep(faults.hang_s)
            elif kind == "invalid":
                return invalid_response(messages, info)
        return respond(messages, info)

    return FunctionModel(answer, model_name=OFFLINE_MODEL_NAME)
