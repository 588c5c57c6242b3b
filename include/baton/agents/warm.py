"""One structured-output model call made in process, before the forkserver forks the task processes (see
baton.preload): what pydantic-ai and the OpenAI client build on their first call (the output tool's schema
and validator, the request's serializers, their regular expressions) is then built once per Airflow, not
once per task. Measured in a fresh process that had imported the agent runtime (2026-11-29): the first
call through an OpenAI-compatible connection took 39-46 ms against 14-17 ms for the next; after this
warm-up, 17-22 ms.

The call is answered by httpx2's ``MockTransport`` inside this process: no network, no server, no model.
It runs in an event loop of its own that is closed after it, and leaves no thread, file or connection open,
so forking after it is safe. A failure is logged and changes nothing else: tasks then build those parts on
their first call, as before."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx2
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

log = logging.getLogger(__name__)

_ANSWER = {
    "id": "chatcmpl-warm",
    "object": "chat.completion",
    "created": 0,
    "model": "warm",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_warm",
                        "type": "function",
                        "function": {"name": "final_result", "arguments": json.dumps({"answer": "warm"})},
                    }
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


class _Warm(BaseModel):
    answer: str


def _answer(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, json=_ANSWER)


async def _call() -> _Warm:
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(_answer)) as client:
        provider = OpenAIProvider(api_key="warm", base_url="http://warm.invalid/v1", http_client=client)
        agent = Agent(OpenAIChatModel("warm", provider=provider), output_type=_Warm, instructions="Warm up.")
        return (await agent.run("Warm up.")).output


def warm_model_path() -> bool:
    """Make one structured-output call through pydantic-ai's OpenAI chat model, answered in process. True
    when it answered as expected; False, with a warning logged, when anything failed."""
    quiet = logging.getLogger("httpx2")  # its line for each request would name the warm-up's made-up host
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        answered = asyncio.run(_call())
    except Exception as error:  # the warm-up is an optimisation: a failure leaves tasks as they were
        log.warning(
            "The model path's warm-up failed (%s: %s); tasks build it on first use",
            type(error).__name__,
            error,
        )
        return False
    finally:
        quiet.setLevel(level)
    return answered == _Warm(answer="warm")
