"""What a run is worth: a template's ``priority`` (the template language's part; pure, no Airflow).

A level is a number from 0 to 100, or one of four names (``low`` 25, ``normal`` 50, ``high`` 75, ``urgent`` 100).
It sets how long a run's tasks may wait in Airflow's queue before they go ahead of newer work: its age bound
``max_wait``, by default 8 hours at level 0 down to 1 minute at level 100, geometrically in between (normal: 22 min,
high: 4.6 min). A template may give its own ``max_wait``, and a range ``allow`` within which a run triggered over
REST (or from the UI's form) may set its own level with the param ``baton_priority``; Airflow refuses a trigger
outside it. How the level, the deadline and the predicted duration become Airflow's weight:
:mod:`baton.queue`.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from baton.spec.common import Span, Strict, show

#: The named levels; a template may also give a number from 0 to 100.
LEVELS = {"low": 25, "normal": 50, "high": 75, "urgent": 100}
#: The param a triggered run sets its level with (within the template's ``allow``).
PARAM = "baton_priority"
#: The age bound at level 0 and at level 100; in between, geometric.
SLOWEST, FASTEST = timedelta(hours=8), timedelta(minutes=1)
MAX_WAIT_RANGE = (timedelta(seconds=10), timedelta(days=7))
#: The key of the param's JSON Schema that carries the template's level and age bound to the scheduler.
SCHEMA_KEY = "x-baton-priority"


def level_of(value: Any) -> int:
    """A level as a template or a run's conf gives it (a name or a whole number) -> 0..100, or a clear error."""
    if isinstance(value, str) and value.strip().lower() in LEVELS:
        return LEVELS[value.strip().lower()]
    number = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None:
        raise PydanticCustomError(
            "priority_level",
            "{got} is not a priority: use low, normal, high, urgent or a whole number from 0 to 100",
            {"got": _short(value)},
        )
    if not (math.isfinite(number) and number == int(number)):
        raise PydanticCustomError(
            "priority_whole",
            "priority {got} is not a whole number: use one from 0 to 100",
            {"got": _short(value)},
        )
    if not 0 <= number <= 100:
        raise PydanticCustomError(
            "priority_range",
            "priority {got} is out of range: use a whole number from 0 to 100 (or low, normal, high, urgent)",
            {"got": _short(value)},
        )
    return int(number)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


Level = Annotated[int, BeforeValidator(level_of), Field(json_schema_extra={"examples": ["high", 80]})]


def default_max_wait(level: int) -> timedelta:
    """The age bound of a level: 8 h at 0, 1 min at 100, geometric in between (each 10 points: x0.54)."""
    ratio = FASTEST / SLOWEST
    return timedelta(seconds=round(SLOWEST.total_seconds() * ratio ** (level / 100)))


class Priority(Strict):
    """``priority:`` of a template: a level (``priority: high`` is short for ``priority: {level: high}``)."""

    level: Level = 50
    max_wait: Span(*MAX_WAIT_RANGE) | None = Field(  # type: ignore[valid-type]
        default=None,
        description="the longest a run's task waits behind more urgent work before it goes ahead of newer "
        "work (the age bound); by default from the level: 8h at 0 to 1m at 100",
    )
    allow: tuple[Level, Level] | None = Field(
        default=None,
        description="[lowest, highest]: the levels a run triggered over REST or from the form may set with the "
        "param baton_priority; without it, a run keeps the template's level",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_level(cls, value: Any) -> Any:
        return (
            {"level": value} if isinstance(value, str | int | float) else value
        )  # bool too: refused as a level

    @model_validator(mode="after")
    def _allowed(self) -> Priority:
        if self.allow is not None:
            low, high = self.allow
            if low > high:
                raise ValueError(
                    f"allow: [{low}, {high}] has its lowest above its highest: write [{high}, {low}]"
                )
            if not low <= self.level <= high:
                raise ValueError(
                    f"level {self.level} is outside allow [{low}, {high}]: widen allow or move the level"
                )
        return self

    @property
    def wait(self) -> timedelta:
        """The age bound in force at the template's level: ``max_wait``, or the level's."""
        return self.max_wait if self.max_wait is not None else default_max_wait(self.level)

    def param_schema(self) -> dict[str, Any]:
        """The JSON Schema of the param ``baton_priority`` (Airflow validates a triggered run's conf with it)."""
        low, high = self.allow if self.allow is not None else (self.level, self.level)
        names = [name for name, number in LEVELS.items() if low <= number <= high]
        return {
            "anyOf": [
                {"type": "integer", "minimum": low, "maximum": high},
                *([{"enum": names}] if names else []),
            ],
            "title": "Priority",
            "description": f"this run's priority: {low} to {high}"
            + (f" ({', '.join(names)})" if names else "")
            + f"; waits at most {show(self.wait)} at the template's level",
            # What the scheduler's weight reads of the template (the DAG's params are serialized with it).
            SCHEMA_KEY: {"level": self.level, "max_wait_s": self.wait.total_seconds()},
        }


def wait_at(level: int, template_level: int, template_wait_s: float | None = None) -> float:
    """The age bound (seconds) of a run at ``level`` of a template whose own is ``template_wait_s`` at
    ``template_level``: the level's default, scaled as the template scaled its own."""
    if template_wait_s is None:
        return default_max_wait(level).total_seconds()
    scale = template_wait_s / default_max_wait(template_level).total_seconds()
    low, high = (span.total_seconds() for span in MAX_WAIT_RANGE)
    return min(high, max(low, default_max_wait(level).total_seconds() * scale))
