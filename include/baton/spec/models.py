"""Pydantic models of a workflow template (dags/workflows/<name>.yaml): the template language."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from baton.context.strategies import STRATEGIES
from baton.spec.browser import BrowserAction, action_strings
from baton.spec.common import IDENTIFIER, Duration
from baton.spec.triggers import Emit, Trigger

PRESETS = ("@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")
JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object")
TRIGGER_RULES = (
    "all_success",
    "all_done",
    "none_failed",
    "none_failed_min_one_success",
    "one_success",
    "one_failed",
    "all_failed",
)
PREFERENCES = ("balanced", "reliable", "fast", "cheap")
PARTIAL_FAILURE = ("fail", "continue", "escalate")


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
    agent_timeout: Duration | None = Field(
        default=None,
        description="how long one agent call may take before it counts as a failed attempt "
        "(distinct from execution_timeout, which bounds the whole task)",
    )


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


class Route(_Strict):
    """Pick the agent at run time: among roster agents having every capability, ranked by load
    (calls running against ``max_concurrency``) and track record (success rate, latency, cost)."""

    capabilities: list[str] = Field(
        default_factory=list, description="a for_each step adds each item's own 'capabilities'"
    )
    prefer: Literal[PREFERENCES] = "balanced"  # type: ignore[valid-type]


class Escalation(_Strict):
    """When a person takes over a step, on the Required Actions page (Airflow human-in-the-loop).

    ``when: failure`` (``escalate: on_failure``): once every candidate agent has failed, a person
    supplies the output, approves a retry with another agent, or fails the step.
    ``when: always`` (``escalate: human``): a person approves or edits every output (a step with no
    agent, skill or route is then a purely human stage).
    """

    when: Literal["failure", "always"] = "failure"
    timeout: Duration | None = Field(default=None, description="how long to wait for the person")
    default: Literal["fail", "accept"] = Field(
        default="fail",
        description="what happens at the timeout: fail the step, or accept the agent's draft output",
    )
    subject: str = ""

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return ESCALATE_SHORTHANDS.get(value, value) if isinstance(value, str) else value


ESCALATE_SHORTHANDS = {"human": {"when": "always"}, "on_failure": {"when": "failure"}}


class Compensation(_Strict):
    """How a completed step is undone when its run fails later (the saga pattern).

    The call receives the step's output (``output`` in the instruction and in ``with``; a for_each
    step is compensated once per completed item, with ``item`` and that item's output).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    skill: str | None = None
    agent: str | None = None
    instruction: str = ""
    with_: dict[str, Any] = Field(
        default_factory=dict, alias="with", description="arguments of the skill (Jinja over output, inputs)"
    )
    retries: int = Field(
        default=2, ge=0, le=10, description="tries after the first, before a person is asked"
    )
    retry_delay: Duration = timedelta(seconds=1)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"skill": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_worker(self) -> Compensation:
        if (self.skill is None) == (self.agent is None):
            raise ValueError("a compensation names exactly one of 'skill' or 'agent'")
        return self


class Step(RetryPolicy):
    """One unit of work: an agent (named or routed), a registered skill, or a person; one Airflow task
    (a mapped one with ``for_each``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=IDENTIFIER, max_length=200)
    description: str = ""
    agent: str | None = None
    skill: str | None = None
    route: Route | None = None
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
    with_: dict[str, Any] = Field(
        default_factory=dict,
        alias="with",
        description="arguments of the step's skill: Jinja over inputs, steps, context (a value that is "
        "one {{ expression }} keeps its type)",
    )
    compensate: Compensation | str | None = Field(
        default=None,
        description="undo this step when the run fails after it completed (a skill name or a call)",
    )
    deadline: Duration | None = Field(
        default=None,
        description="the step must be done this long after the run was queued; otherwise an alert",
    )
    emits: list[Emit] = Field(
        default_factory=list,
        description="asset events the step emits when it succeeds (messages to the workflows triggered "
        "by them): an asset name, or {asset, extra}",
    )
    browser: list[BrowserAction] | None = Field(
        default=None,
        min_length=1,
        description="browser actions the step's agent performs in Chromium (the agent needs browser access)",
    )

    for_each: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$",
        description="<step> or <step>.<field>: a list output; this step runs once per item (``item``)",
    )
    concurrency: int | None = Field(
        default=None, ge=1, le=256, description="agent calls running at once in one task of a for_each"
    )
    batch_size: int | None = Field(
        default=None, ge=1, le=100_000, description="items per Airflow task of a for_each (default all)"
    )
    partial_failure: Literal[PARTIAL_FAILURE] = "fail"  # type: ignore[valid-type]
    # The Literal is for the JSON Schema (editors); the validator turns it into an Escalation.
    escalate: Escalation | Literal["human", "on_failure"] | None = None

    @field_validator("emits", mode="before")
    @classmethod
    def _emits_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | dict) else value

    @field_validator("needs", mode="before")
    @classmethod
    def _needs_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("compensate", mode="before")
    @classmethod
    def _compensate_shorthand(cls, value: Any) -> Any:
        return Compensation.model_validate(value) if isinstance(value, str) else value

    @field_validator("escalate", mode="before")
    @classmethod
    def _escalate_shorthand(cls, value: Any) -> Any:
        return Escalation.model_validate(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_worker(self) -> Step:
        workers = [name for name in ("agent", "skill", "route") if getattr(self, name) is not None]
        human = self.escalate is not None and self.escalate.when == "always"
        if len(workers) > 1 or (not workers and not human):
            raise ValueError(
                "a step names exactly one of 'agent' (a roster name), 'skill' (a registered skill) or "
                "'route' (capabilities to pick an agent by)"
                + (f"; it names {' and '.join(workers)}" if workers else "")
                + ", or none with 'escalate: human' (a person does it)"
            )
        if self.route is not None and not self.route.capabilities and not self.for_each:
            raise ValueError(
                "route needs capabilities: only a for_each step may take them from each item's 'capabilities'"
            )
        return self

    def jinja_sources(self) -> list[tuple[tuple[str, ...], str | None, bool, frozenset[str]]]:
        """Every Jinja text of the step, rendered over its run's scope: (key path under the step, the
        text, whether it is an expression, the names it may use besides inputs/steps/context/run)."""
        item = frozenset({"item", "index"}) if self.for_each else frozenset()
        return [
            (("instruction",), self.instruction, False, item),
            (("when",), self.when, True, frozenset()),
            *(
                (("writes", key), expr, True, frozenset({"output"}) | item)
                for key, expr in self.writes.items()
            ),
            *((("with", *path), text, False, item) for path, text in _strings(self.with_)),
            *(
                (("emits", str(index), "extra", *path), text, False, frozenset({"output"}) | item)
                for index, emit in enumerate(self.emits)
                for path, text in _strings(emit.extra)
            ),
            *(
                (("browser", str(index), action.action, name), text, False, item)
                for index, action in enumerate(self.browser or ())
                for name, text in action_strings(action)
            ),
        ]

    def compensation_sources(self) -> list[tuple[tuple[str, ...], str, bool, frozenset[str]]]:
        """The Jinja of ``compensate``: rendered over inputs, run and the step's ``output`` (a for_each
        item's, with ``item`` and ``index``), not over other steps or the context."""
        if self.compensate is None:
            return []
        names = frozenset({"output", "item", "index"})
        return [
            (("compensate", "instruction"), self.compensate.instruction, False, names),
            *(
                (("compensate", "with", *path), text, False, names)
                for path, text in _strings(self.compensate.with_)
            ),
        ]

    @property
    def upstream(self) -> list[str]:
        """``needs``, and the step ``for_each`` iterates over."""
        source = self.source
        return [*self.needs, source[0]] if source and source[0] not in self.needs else list(self.needs)

    @property
    def source(self) -> tuple[str, str | None] | None:
        """(step, field) that ``for_each`` iterates over."""
        if not self.for_each:
            return None
        step, _, field = self.for_each.partition(".")
        return step, field or None


def _strings(value: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """(key path, text) of every string in a ``with`` mapping, nested mappings and lists included."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _strings(item, (*path, str(key)))]
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in _strings(item, (*path, str(i)))]
    return []


class Workflow(_Strict):
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
    trigger: Trigger | None = Field(
        default=None,
        description="what starts runs besides the schedule, the UI and REST: a sensor on business tables, "
        "an asset another workflow emits, or a queue",
    )
    context: dict[Annotated[str, Field(pattern=IDENTIFIER)], ContextKey] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)

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
