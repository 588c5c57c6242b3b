"""What every file a user writes shares (workflows, the roster, budgets.yaml, monitoring.yaml): the strict
base of their models, identifiers, and the one duration type with its bounded form and its spelling."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError, PydanticKnownError

IDENTIFIER = r"^[a-z][a-z0-9_]*$"


class Strict(BaseModel):
    """The base of every model of a user's file: an unknown key is an error (a typo must not be ignored),
    a model once read does not change, and a key with an alias (``with``) may also be given its name."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# at most 20 digits a unit: an int that size is cheap, and a duration past timedelta's is refused below
_DURATION = re.compile(
    r"^(?:(?P<d>\d{1,20})d)?(?:(?P<h>\d{1,20})h)?(?:(?P<m>\d{1,20})m)?(?:(?P<s>\d{1,20})s)?$"
)


def _parse_duration(value: Any) -> Any:
    """Seconds as a number, '90s' / '5m' / '1h30m' / '7d' / '1d12h', or anything pydantic reads as a
    timedelta (which gives its own error for anything else)."""
    match = _DURATION.match(value.strip()) if isinstance(value, str) else None
    if match is None or not any(match[unit] for unit in "dhms"):
        return value
    parts = {unit: int(text) for unit, text in match.groupdict().items() if text}
    try:
        return timedelta(
            days=parts.get("d", 0),
            hours=parts.get("h", 0),
            minutes=parts.get("m", 0),
            seconds=parts.get("s", 0),
        )
    except OverflowError:
        # pydantic's own words for a number of seconds that large
        raise PydanticKnownError(
            "time_delta_parsing", {"error": "durations may not exceed 999,999,999 days"}
        ) from None


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise PydanticCustomError(
            "negative_duration",
            "a duration cannot be negative (got {seconds} seconds)",
            {"seconds": f"{value.total_seconds():g}"},
        )
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_parse_duration),
    AfterValidator(_not_negative),
    Field(json_schema_extra={"examples": ["30s", "5m", "1h30m", "7d", 300]}),
]
"""A length of time, 0 or more: seconds (300), '30s', '5m', '1h30m', '7d', '1d12h', or ISO 8601."""


def show(span: timedelta) -> str:
    """``timedelta(hours=1, minutes=30)`` -> ``'1h30m'`` (how a duration is written in these files)."""
    seconds = int(span.total_seconds())
    if seconds < 0:
        return "-" + show(-span)
    if seconds == 0:
        return f"{span.total_seconds():g}s"
    text = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            text += f"{seconds // size}{unit}"
            seconds %= size
    return text


def Span(low: timedelta, high: timedelta) -> Any:
    """A :data:`Duration` bounded to [low, high], refused outside with both bounds spelled as durations."""

    def within(value: timedelta) -> timedelta:
        if not low <= value <= high:
            raise PydanticCustomError(
                "duration_out_of_range",
                "{got} is out of range: use a duration from {low} to {high}",
                {"got": show(value), "low": show(low), "high": show(high)},
            )
        return value

    return Annotated[Duration, AfterValidator(within)]


def duration_option(text: str, maximum: timedelta, examples: str) -> timedelta:
    """A command-line option's duration (``baton verify --since``, ``baton db clean --older-than``): written as
    in the templates, from 1 s to ``maximum``; refused as argparse refuses an option, naming the fix."""
    try:
        span = TypeAdapter(Duration).validate_python(text)
    except ValidationError:
        raise argparse.ArgumentTypeError(f"'{text[:40]}' is not a duration: write e.g. {examples}") from None
    if not timedelta(seconds=1) <= span <= maximum:
        raise argparse.ArgumentTypeError(f"'{text[:40]}' is out of range: from 1s to {show(maximum)}")
    return span


def first_repeat(names: Iterable[str]) -> str | None:
    """The first name of ``names`` that came before in them; None when each is there once."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None
