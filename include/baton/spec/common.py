"""Types shared by the template's models (workflow, roster, browser): identifiers and durations."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

IDENTIFIER = r"^[a-z][a-z0-9_]*$"
_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")


def _parse_duration(value: Any) -> Any:
    """Accept seconds as a number, '90s' / '5m' / '1h30m', or anything pydantic reads as a timedelta."""
    if isinstance(value, str) and value and (match := _DURATION.match(value.strip())):
        parts = {k: int(v) for k, v in match.groupdict().items() if v}
        return timedelta(hours=parts.get("h", 0), minutes=parts.get("m", 0), seconds=parts.get("s", 0))
    return value


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
    Field(json_schema_extra={"examples": ["30s", "5m", "1h30m", 300]}),
]
