"""Reading a stored state back: JSON within limits, each field checked, errors naming the field.

A state is a projection of the event store: when one is malformed (edited by hand, truncated, from a
newer Baton) the fix is always to rebuild it from the events, and every message says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from baton.errors import OptimizeError

FIX = "(fix: rebuild the state from the outcomes in the event store)"
AGENT_FIX = "(fix: pass the agent's name as the roster spells it)"
MAX_STATE_BYTES = 10_000_000
MAX_NAME = 200
MAX_ARMS = 1_000


def _constant(token: str) -> Any:
    raise ValueError(f"{token} is not a number JSON allows")


def parse(data: str | bytes | Mapping[str, Any], what: str) -> Mapping[str, Any]:
    """``data`` as a mapping: a JSON text (at most 10 MB, no NaN or Infinity) or a mapping already."""
    if isinstance(data, Mapping):
        return data
    if not isinstance(data, str | bytes | bytearray):
        raise OptimizeError(f"{what}: must be a JSON object, got {type(data).__name__} {FIX}")
    if len(data) > MAX_STATE_BYTES:
        raise OptimizeError(f"{what}: {len(data):,} bytes, over the limit of {MAX_STATE_BYTES:,} {FIX}")
    try:
        value = json.loads(data, parse_constant=_constant)
    except RecursionError:
        raise OptimizeError(f"{what}: nested too deeply to be a state {FIX}") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise OptimizeError(f"{what}: not valid JSON: {str(error)[:200]} {FIX}") from None
    if not isinstance(value, dict):
        raise OptimizeError(f"{what}: must be a JSON object, got {type(value).__name__} {FIX}")
    return value


def only(data: Any, allowed: set[str], where: str, required: set[str] | None = None) -> Mapping[str, Any]:
    """``data`` as an object with no field but ``allowed`` and every field of ``required``."""
    if not isinstance(data, Mapping):
        raise OptimizeError(f"{where}: must be an object, got {type(data).__name__} {FIX}")
    unknown = sorted(str(k)[:40] for k in data if k not in allowed)
    if unknown:
        raise OptimizeError(
            f"{where}: unknown field(s) {', '.join(unknown[:5])} (expected {', '.join(sorted(allowed))}) {FIX}"
        )
    missing = sorted((required if required is not None else allowed) - set(data))
    if missing:
        raise OptimizeError(f"{where}: missing field(s) {', '.join(missing)} {FIX}")
    return data


def number(
    value: Any, where: str, low: float = 0.0, high: float = math.inf, whole: bool = False, fix: str = FIX
) -> float:
    """A finite number in [low, high] (a whole one when ``whole``); ``fix`` ends the message otherwise."""
    kinds = int if whole else int | float
    if (
        isinstance(value, bool)
        or not isinstance(value, kinds)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        span = f"[{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g}"
        kind = "whole number" if whole else "finite number"
        raise OptimizeError(f"{where}: must be a {kind} {span}, got {_shown(value)} {fix}")
    return value if whole else float(value)


def optional_number(value: Any, where: str, low: float = 0.0, high: float = math.inf) -> float | None:
    return None if value is None else number(value, where, low, high)


def name(value: Any, where: str, what: str = "an agent's name", fix: str = FIX) -> str:
    """A non-empty text of at most 200 characters; ``fix`` ends the message otherwise."""
    if not isinstance(value, str) or not value or len(value) > MAX_NAME:
        raise OptimizeError(
            f"{where}: {what} must be a text of 1 to {MAX_NAME} characters, got {_shown(value)} {fix}"
        )
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
