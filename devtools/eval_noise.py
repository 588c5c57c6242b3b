"""A flaky model, for bench/evals.py only: not part of the installed package.

An evaluation's workers with ``BATON_EXTENSIONS`` naming ``devtools.eval_noise`` import this module, which hooks
the offline model's requests (:data:`baton.hooks.offline.REQUEST_HOOKS`); ``BATON_EVAL_NOISE`` (JSON,
``{"seed": 7, "rate": 0.1}``) then makes that share of its answers vague: schema-valid, but written as if
the request said nothing (no ticket, no customer in a summary), the way a real model now and then answers
past what it was given. Unset, the hook does nothing. Each draw is a hash of the seed, the request's text
and how many requests this process made before it, so a worker's run of its cases is repeatable and two
runs of one case (or one case on two versions) draw apart.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os

from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, UserPromptPart
from pydantic_ai.models.function import AgentInfo

from baton.hooks import offline

VARIABLE = "BATON_EVAL_NOISE"
VAGUE = "(no detail)"
_count = itertools.count()


def _settings() -> tuple[int, float] | None:
    raw = os.environ.get(VARIABLE)
    if not raw:
        return None
    found = json.loads(raw)
    return int(found.get("seed", 0)), float(found.get("rate", 0.0))


def _draw(seed: int, prompt: str, index: int) -> float:
    digest = hashlib.sha256(f"{seed}:{index}:{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


async def vague(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse | None:
    """The offline model's request hook: a vague answer for ``rate`` of the requests, else None."""
    settings = _settings()
    if settings is None:
        return None
    seed, rate = settings
    if _draw(seed, offline.prompt_of(messages), next(_count)) >= rate:
        return None
    return offline.respond([ModelRequest(parts=[UserPromptPart(VAGUE)])], info)


offline.REQUEST_HOOKS.append(vague)
