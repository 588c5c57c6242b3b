"""Pydantic models of a workflow template (dags/workflows/<name>.yaml): the template language.

The step (who does it, what it declares) is in :mod:`baton.spec.step`; this module is the workflow
around it: inputs, schedule, defaults, shared context, trigger.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from baton.spec.common import IDENTIFIER, Duration, Strict
from baton.spec.priority import PARAM as PRIORITY_PARAM
from baton.spec.priority import Priority
from baton.spec.rollout import Rollout
from baton.spec.step import (
    AgentStep,
    AnyStep,
    PersonStep,
    RetryPolicy,
    RoutedStep,
    SkillStep,
    Step,
    strings_of,
)
from baton.spec.triggers import Trigger

__all__ = ["AgentStep", "AnyStep", "PersonStep", "RoutedStep", "SkillStep", "Step", "Workflow", "strings_of"]

PRESETS = ("@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")
JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object")
# How a conflicting write to a shared-context key is resolved: the names a template may use. Each is
# implemented in baton.context.strategies, whose registry must cover exactly these (a test checks).
STRATEGIES = ("reject", "last_writer_wins", "merge", "three_way_merge", "escalate")


class InputField(Strict):
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


class Defaults(RetryPolicy):
    """Workflow-wide task defaults (Airflow ``default_args``)."""

    retries: int = Field(default=2, ge=0, le=20)
    retry_delay: Duration = timedelta(seconds=30)
    retry_exponential_backoff: bool = True
    max_retry_delay: Duration = timedelta(minutes=10)
    execution_timeout: Duration = timedelta(minutes=30)


class Schedule(Strict):
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


class ContextKey(Strict):
    """A key of the run's shared context, and how a conflicting write to it is resolved."""

    strategy: Literal[STRATEGIES] = "reject"  # type: ignore[valid-type]
    description: str = ""


class Workflow(Strict):
    """A workflow template: compiled into one Airflow DAG whose id is ``workflow``."""

    workflow: str = Field(pattern=IDENTIFIER, max_length=200)
    version: int = Field(ge=1)
    description: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)
    category: str = "general"
    # str: a cron expression, a preset or "none" (for the JSON Schema; the validator makes a Schedule).
    schedule: Schedule | str = Field(default_factory=Schedule)
    inputs: dict[Annotated[str, Field(pattern=IDENTIFIER)], InputField] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    max_active_runs: int = Field(default=16, ge=1)
    deadline: Duration | None = Field(
        default=None,
        description="a run must finish this long after it was queued; otherwise an Airflow Deadline Alert "
        "posts to Slack (connection baton_slack)",
    )
    priority: Priority | None = Field(
        default=None,
        description="what a run is worth: its level (low, normal, high, urgent or 0-100), how long it may wait "
        "behind more urgent work (max_wait), and the levels a triggered run may set (allow); without it, normal",
    )
    trigger: Trigger | None = Field(
        default=None,
        description="what starts runs besides the schedule, the UI and REST: a sensor on business tables, "
        "an asset another workflow emits, or a queue",
    )
    context: dict[Annotated[str, Field(pattern=IDENTIFIER)], ContextKey] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)
    rollout: Rollout | None = Field(
        default=None,
        description="roll out the next version (a template in dags/versions/) to a growing share of the "
        "runs while its guardrails hold; back to this version by itself when they do not",
    )

    @model_validator(mode="after")
    def _priority_param_free(self) -> Workflow:
        if PRIORITY_PARAM in self.inputs:
            raise ValueError(
                f"inputs.{PRIORITY_PARAM}: the name is Baton's (a run's priority, see 'priority'): rename the input"
            )
        return self

    @model_validator(mode="after")
    def _trigger_or_schedule(self) -> Workflow:
        trigger = self.trigger
        if trigger is not None and (trigger.asset or trigger.queue) and self.schedule.cron is not None:
            raise ValueError(
                "a workflow triggered by an asset or a queue has no schedule: remove 'schedule' (a sensor "
                "may have one: each scheduled run then waits for its condition)"
            )
        return self

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule_from_string(cls, value: Any) -> Any:
        return Schedule.model_validate(value) if value is None or isinstance(value, str) else value
