"""What a step may declare besides who does it: its output fields, retries and timeouts, usage limits, a
route, an escalation to a person, a compensation and a fan-out (:mod:`baton.spec.step` composes them)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    model_validator,
)

from baton.spec.common import Duration, Strict
from baton.spec.learning import Learn, _learn

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
WORKERS = ("agent", "skill", "route")  # the keys that say who does a step (none: a person)
ONE_WORKER = (
    "a step names exactly one of 'agent' (a roster name), 'skill' (a registered skill) or 'route' "
    "(capabilities to pick an agent by), or none with 'escalate: human' (a person does it)"
)
# Keys a step may not have in its place, and where they belong (for the message of an unknown key).
MOVED_KEYS = {
    "concurrency": "it belongs to the fan-out: for_each: {over: <step>.<list>, concurrency: N}",
    "batch_size": "it belongs to the fan-out: for_each: {over: <step>.<list>, batch_size: N}",
    "partial_failure": "it belongs to the fan-out: for_each: {over: <step>.<list>, partial_failure: continue}",
    "with": "'with' passes arguments to a skill: name one with 'skill:', or put the values in the instruction",
    "browser": "browser actions are performed by one named agent: name an agent with browser access "
    "under 'agent:' (not a skill, a route or a person)",
}


def _shorthand_fields(value: Any) -> Any:
    """``score: integer`` is short for ``score: {type: integer}``."""
    if isinstance(value, dict):
        return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
    return value


def _by_shape(value: Any) -> str:
    """Which member of a name-or-fields union a value is: a mapping is fields (so that an error inside it
    is reported there, not as "should be a string" of the other member)."""
    return "by-fields" if isinstance(value, dict) else "by-name"


SHAPE_TAGS = ("by-name", "by-fields")  # the union members' names in pydantic's error locations


FORMATS = ("date", "date-time", "time", "email", "uri", "uuid")
ITEM_TYPES = ("string", "integer", "number", "boolean", "object")


class OutputField(Strict):
    """One field of a step's structured output: a JSON type with the constraints a model's answer must
    meet (a re-ask names the one it broke). ``items`` is the type of an array's items, or the fields of
    each item (an array of objects); ``fields`` are the fields of a nested object."""

    type: Literal["string", "integer", "number", "boolean", "array", "object"] = "string"
    description: str = ""
    enum: list[Any] | None = None
    items: (
        Annotated[
            Annotated[Literal[ITEM_TYPES], Tag("by-name")]
            | Annotated[dict[str, OutputField], Tag("by-fields")],  # type: ignore[valid-type]
            Discriminator(_by_shape),
        ]
        | None
    ) = Field(default=None, description="the items' type, or each item's fields (an array of objects)")
    fields: dict[str, OutputField] | None = Field(default=None, description="the fields of a nested object")
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = Field(
        default=None, max_length=1000, description="a regular expression a string matches"
    )
    format: Literal[FORMATS] | None = None  # type: ignore[valid-type]
    min_length: int | None = Field(default=None, ge=0, le=1_000_000)
    max_length: int | None = Field(default=None, ge=0, le=1_000_000)
    min_items: int | None = Field(default=None, ge=0, le=10_000)
    max_items: int | None = Field(default=None, ge=0, le=10_000)
    required: bool = True

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            value = dict(value)
            for key in ("items", "fields"):
                if isinstance(value.get(key), dict):
                    value[key] = _shorthand_fields(value[key])
        return value

    @model_validator(mode="after")
    def _consistent(self) -> OutputField:
        for low, high in (("minimum", "maximum"), ("min_length", "max_length"), ("min_items", "max_items")):
            least, most = getattr(self, low), getattr(self, high)
            if least is not None and most is not None and least > most:
                raise ValueError(f"{low} ({least}) is above {high} ({most}): swap them")
        kinds = {
            "string": ("pattern", "format", "min_length", "max_length"),
            "array": ("items", "min_items", "max_items"),
            "object": ("fields",),
        }
        for kind, keys in kinds.items():
            given = [key for key in keys if getattr(self, key) is not None]
            if given and self.type != kind:
                raise ValueError(
                    f"{', '.join(given)} apply to a field of type {kind}; this one is a {self.type}"
                )
        if self.pattern is not None:
            _check_pattern(self.pattern)
        return self


def _check_pattern(pattern: str) -> None:
    """A pattern pydantic can check (its regex engine has no look-around and no backreference)."""
    from pydantic import create_model

    try:
        create_model("Probe", value=(str, Field(pattern=pattern)))
    except Exception as error:  # re.error, or the Rust engine's refusal
        reason = str(error).strip().splitlines()[-1][:200]
        raise ValueError(
            f"the pattern {pattern[:80]!r} cannot be checked: {reason} (write it without look-around or "
            "backreferences)"
        ) from None


OutputFields = Annotated[dict[str, OutputField], BeforeValidator(_shorthand_fields)]


class RetryPolicy(Strict):
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


class UsageLimits(Strict):
    """Caps on one LLM step's model use, enforced by common-ai across all its tries."""

    request_limit: int | None = Field(default=None, ge=1)
    input_tokens_limit: int | None = Field(default=None, ge=1)
    output_tokens_limit: int | None = Field(default=None, ge=1)
    total_tokens_limit: int | None = Field(default=None, ge=1)
    tool_calls_limit: int | None = Field(default=None, ge=0)


class Route(Strict):
    """Pick the agent at run time: among roster agents having every capability, ranked by load
    (calls running against ``max_concurrency``) and track record (success rate, latency, cost), or,
    with ``learn``, by what the step's own past calls taught."""

    capabilities: list[str] = Field(
        default_factory=list, description="a for_each step adds each item's own 'capabilities'"
    )
    prefer: Literal[PREFERENCES] = "balanced"  # type: ignore[valid-type]
    learn: Annotated[Learn | StrictBool | None, BeforeValidator(_learn)] = Field(
        default=None,
        description="learn which agent does this step best from its past calls (true: the defaults); "
        "for a step without for_each",
    )


ESCALATE_SHORTHANDS = {"human": {"when": "always"}, "on_failure": {"when": "failure"}}


class Escalation(Strict):
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


# The Literal is for the JSON Schema (editors); the validator turns it into an Escalation.
EscalationField = Annotated[
    Escalation | Literal["human", "on_failure"] | None,
    BeforeValidator(lambda value: Escalation.model_validate(value) if isinstance(value, str) else value),
]


class Compensation(Strict):
    """How a completed step is undone when its run fails later (the saga pattern).

    The call receives the step's output (``output`` in the instruction and in ``with``; a for_each
    step is compensated once per completed item, with ``item`` and that item's output).
    """

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


class Requirement(Strict):
    """A condition the step must meet, or it fails for good with ``message`` (no retry: a guard such as
    "an order above 1,000 units is refused"). Checked before the step's work when ``check`` reads only the
    run's scope, after it (on ``output``) when it reads ``output``."""

    check: str = Field(
        min_length=1, description="a Jinja expression that must be true, e.g. inputs.quantity <= 1000"
    )
    message: str = Field(
        min_length=1,
        description="why the step is refused when it is false: Jinja over the same names, e.g. "
        "'{{ inputs.quantity }} units is over the 1,000 we may order'",
    )


class ForEach(Strict):
    """Run the step once per item of an upstream step's list (``item`` and ``index`` in its Jinja):
    the items of a batch as concurrent calls inside one Airflow task, each batch a mapped task."""

    over: str = Field(
        pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$",
        description="<step> or <step>.<field>: the list to run the step over",
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="agent calls running at once in one task (default: the agent's max_concurrency, or 4)",
    )
    batch_size: int | None = Field(
        default=None, ge=1, le=100_000, description="items per Airflow task (default all in one task)"
    )
    partial_failure: Literal[PARTIAL_FAILURE] = Field(  # type: ignore[valid-type]
        default="fail",
        description="when some items fail: fail (the next try reruns only those), continue without them, or "
        "escalate to a person",
    )
    items_per_call: int | None = Field(
        default=None,
        ge=2,
        le=50,
        description="small items answered N to one model call (one request, one load slot, one budget "
        "reservation; usage_limits count per item); items with their own capabilities or depends_on, and a "
        "call that fails, go one by one",
    )
    dedupe: bool = Field(
        default=False,
        description="items whose instruction renders the same text make one model call and share its "
        "answer (a list with repeats); off by default: the same instruction may be meant to give different "
        "answers",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"over": value} if isinstance(value, str) else value

    @property
    def source(self) -> tuple[str, str | None]:
        """(step, field) the fan-out iterates over."""
        step, _, field = self.over.partition(".")
        return step, field or None


# The str is the shorthand (for the JSON Schema); the validator makes it a ForEach.
ForEachField = Annotated[
    ForEach | str | None,
    BeforeValidator(lambda value: ForEach.model_validate(value) if isinstance(value, str) else value),
]


def strings_of(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], str]]:
    """(key path, text) of every string in a ``with`` mapping, nested mappings and lists included
    (recursive: the YAML reader bounds the nesting at ``max_yaml_depth``)."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in strings_of(item, (*path, str(key)))]
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in strings_of(item, (*path, i))]
    return []


#: A step's output: a registered model's name, or its fields.
Output = Annotated[
    Annotated[str, Tag("by-name")] | Annotated[OutputFields, Tag("by-fields")], Discriminator(_by_shape)
]
