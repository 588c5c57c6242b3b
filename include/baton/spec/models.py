"""Pydantic models of a workflow template (dags/workflows/<name>.yaml): the template language."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from baton.context.strategies import STRATEGIES

IDENTIFIER = r"^[a-z][a-z0-9_]*$"
_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
PRESETS = ("@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")
JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object")
TRIGGER_RULES = (
    "all_success",
    "all_done",
    "none_failed",
    "none_failed_min_one_success",
    "one_success",
    "all_failed",
)


def _parse_duration(value: Any) -> Any:
    """Accept seconds as a number, '90s' / '5m' / '1h30m', or anything pydantic reads as a timedelta."""
    if isinstance(value, str) and value and (match := _DURATION.match(value.strip())):
        parts = {k: int(v) for k, v in match.groupdict().items() if v}
        return timedelta(hours=parts.get("h", 0), minutes=parts.get("m", 0), seconds=parts.get("s", 0))
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_parse_duration),
    Field(json_schema_extra={"examples": ["30s", "5m", "1h30m", 300]}),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputField(_Strict):
    """A run input: becomes an Airflow ``Param``, so the UI form and REST ``conf`` share one schema."""

    type: Literal["string", "integer", "number", "boolean", "array", "object"] = "string"
    default: Any = None
    description: str = ""
    title: str | None = None
    enum: list[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=0)
    required: bool = False

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema keywords of this input, as Airflow's Param takes them."""
        schema: dict[str, Any] = {"type": self.type}
        for key, keyword in (
            ("enum", "enum"),
            ("minimum", "minimum"),
            ("maximum", "maximum"),
            ("min_length", "minLength"),
            ("max_length", "maxLength"),
        ):
            if (value := getattr(self, key)) is not None:
                schema[keyword] = value
        return schema


class OutputField(_Strict):
    """One field of a step's structured output."""

    type: Literal["string", "integer", "number", "boolean", "array", "object"] = "string"
    description: str = ""
    enum: list[Any] | None = None
    items: Literal["string", "integer", "number", "boolean", "object"] | None = None
    minimum: float | None = None
    maximum: float | None = None
    required: bool = True


def _shorthand_fields(value: Any) -> Any:
    """``score: integer`` is short for ``score: {type: integer}``."""
    if isinstance(value, dict):
        return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
    return value


OutputFields = Annotated[dict[str, OutputField], BeforeValidator(_shorthand_fields)]


class RetryPolicy(_Strict):
    """Retry and timeout settings; the workflow's ``defaults`` and any step may set them."""

    retries: int | None = Field(default=None, ge=0, le=20)
    retry_delay: Duration | None = None
    retry_exponential_backoff: bool | None = None
    max_retry_delay: Duration | None = None
    execution_timeout: Duration | None = None


class Defaults(RetryPolicy):
    """Workflow-wide task defaults (Airflow ``default_args``)."""

    retries: int = Field(default=2, ge=0, le=20)
    retry_delay: Duration = timedelta(seconds=30)
    retry_exponential_backoff: bool = True
    max_retry_delay: Duration = timedelta(minutes=10)
    execution_timeout: Duration = timedelta(minutes=30)


class Schedule(_Strict):
    """When runs start: a cron expression or preset; ``none`` (or no schedule) means manual / API only."""

    cron: str | None = None
    timezone: str = "UTC"
    catchup: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return {"cron": None if value in (None, "none", "None", "") else value}
        return value


class UsageLimits(_Strict):
    """Caps on one LLM step's model use, enforced by common-ai across all its tries."""

    request_limit: int | None = Field(default=None, ge=1)
    input_tokens_limit: int | None = Field(default=None, ge=1)
    output_tokens_limit: int | None = Field(default=None, ge=1)
    total_tokens_limit: int | None = Field(default=None, ge=1)
    tool_calls_limit: int | None = Field(default=None, ge=0)


class ContextKey(_Strict):
    """A key of the run's shared context, and how a conflicting write to it is resolved."""

    strategy: Literal[STRATEGIES] = "reject"  # type: ignore[valid-type]
    description: str = ""


class Step(RetryPolicy):
    """One unit of work: an agent (from the roster) or a registered skill, run as one Airflow task."""

    id: str = Field(pattern=IDENTIFIER, max_length=200)
    description: str = ""
    agent: str | None = None
    skill: str | None = None
    instruction: str = ""
    needs: list[str] = Field(default_factory=list)
    output: str | OutputFields | None = None
    when: str | None = None
    trigger_rule: Literal[TRIGGER_RULES] = "all_success"  # type: ignore[valid-type]
    output_retries: int = Field(default=2, ge=0, le=10)
    usage_limits: UsageLimits | None = None
    writes: dict[str, str] = Field(
        default_factory=dict,
        description="context key -> an expression over output, inputs, steps, context (e.g. output.files)",
    )

    @field_validator("needs", mode="before")
    @classmethod
    def _needs_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_worker(self) -> Step:
        if (self.agent is None) == (self.skill is None):
            raise ValueError(
                "a step names exactly one of 'agent' (a roster name) or 'skill' (a registered skill)"
            )
        return self


class Workflow(_Strict):
    """A workflow template: compiled into one Airflow DAG whose id is ``workflow``."""

    workflow: str = Field(pattern=IDENTIFIER, max_length=200)
    version: int = Field(ge=1)
    description: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)
    category: str = "general"
    schedule: Schedule = Field(default_factory=Schedule)
    inputs: dict[Annotated[str, Field(pattern=IDENTIFIER)], InputField] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    max_active_runs: int = Field(default=16, ge=1)
    context: dict[Annotated[str, Field(pattern=IDENTIFIER)], ContextKey] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule_from_string(cls, value: Any) -> Any:
        return Schedule.model_validate(value) if value is None or isinstance(value, str) else value
