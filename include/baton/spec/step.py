"""A workflow's step, as the template writes it: who does it (one type each), and what it may declare.

Who does a step is a type, not a rule checked afterwards: an :class:`AgentStep` names a roster agent,
a :class:`SkillStep` a registered skill (and only it takes ``with``), a :class:`RoutedStep` capabilities
to pick an agent by, and a :class:`PersonStep` nobody (``escalate: human``: a person does it). The step
union is told apart by which of ``agent``, ``skill`` and ``route`` the mapping has, so the JSON Schema
shows editors exactly the same rule. A fan-out is one :class:`ForEach` (``for_each: step.field``, or the
mapping with its ``concurrency``, ``batch_size`` and ``partial_failure``): options that only apply to a
fan-out cannot be written on a step that has none.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from baton.spec.browser import BrowserAction, action_strings
from baton.spec.common import IDENTIFIER, Duration
from baton.spec.expect import LiveEvaluation
from baton.spec.learning import Variants
from baton.spec.options import (
    MOVED_KEYS,
    ONE_WORKER,
    PARTIAL_FAILURE,
    PREFERENCES,
    TRIGGER_RULES,
    WORKERS,
    Compensation,
    Escalation,
    EscalationField,
    ForEach,
    ForEachField,
    Output,
    OutputField,
    Requirement,
    RetryPolicy,
    Route,
    UsageLimits,
    strings_of,
)
from baton.spec.triggers import Emit

__all__ = [
    "MOVED_KEYS",
    "ONE_WORKER",
    "PARTIAL_FAILURE",
    "PREFERENCES",
    "STEP_TAGS",
    "TRIGGER_RULES",
    "AgentStep",
    "AnyStep",
    "Compensation",
    "Escalation",
    "ForEach",
    "OutputField",
    "PersonStep",
    "RetryPolicy",
    "Route",
    "RoutedStep",
    "SkillStep",
    "Step",
    "StepBase",
    "UsageLimits",
    "named_workers",
    "strings_of",
]

JinjaSource = tuple[tuple[str | int, ...], str | None, bool, frozenset[str]]


class StepBase(RetryPolicy):
    """What every step may declare, whoever does it."""

    id: str = Field(pattern=IDENTIFIER, max_length=200)
    description: str = ""
    instruction: str = ""
    needs: list[str] = Field(default_factory=list)
    output: Output | None = None
    when: str | None = None
    trigger_rule: Literal[TRIGGER_RULES] = "all_success"  # type: ignore[valid-type]
    output_retries: int = Field(default=2, ge=0, le=10)
    usage_limits: UsageLimits | None = None
    writes: dict[str, str] = Field(
        default_factory=dict,
        description="context key -> an expression over output, inputs, steps, context (e.g. output.files)",
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
    for_each: ForEachField = Field(
        default=None,
        description="run once per item of a list: '<step>.<field>', or {over, concurrency, batch_size, "
        "partial_failure}",
    )
    escalate: EscalationField = None
    require: list[Requirement] = Field(
        default_factory=list,
        max_length=50,
        description="conditions the step must meet, or it fails for good with their message (a guard)",
    )
    variants: Variants | None = Field(
        default=None,
        description="an experiment: arms that change the instruction or the agent, each run sticky to one",
    )
    evaluate: LiveEvaluation | None = Field(
        default=None,
        description="checks of a sampled share of its live outputs, scored after the step: learned routing and "
        "the variants learn the share that held",
    )

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

    # --- what the code asks of any step ----------------------------------------------------------

    @property
    def agent_name(self) -> str | None:
        """The roster agent the template names (an :class:`AgentStep`'s), or None."""
        return None

    @property
    def skill_name(self) -> str | None:
        """The registered skill the template names (a :class:`SkillStep`'s), or None."""
        return None

    @property
    def arguments(self) -> dict[str, Any]:
        """The skill's ``with`` (a :class:`SkillStep`'s), else empty."""
        return {}

    @property
    def actions(self) -> list[BrowserAction]:
        """The browser actions (an :class:`AgentStep`'s), else none."""
        return []

    @property
    def reviewed(self) -> bool:
        """Whether a person approves or edits every output (``escalate: human``)."""
        return self.escalate is not None and self.escalate.when == "always"

    @property
    def upstream(self) -> list[str]:
        """``needs``, and the step ``for_each`` iterates over."""
        source = self.source
        return [*self.needs, source[0]] if source and source[0] not in self.needs else list(self.needs)

    @property
    def source(self) -> tuple[str, str | None] | None:
        """(step, field) that ``for_each`` iterates over."""
        return self.for_each.source if self.for_each else None

    def jinja_sources(self) -> list[JinjaSource]:
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
            *((("with", *path), text, False, item) for path, text in strings_of(self.arguments)),
            *(
                (("emits", index, "extra", *path), text, False, frozenset({"output"}) | item)
                for index, emit in enumerate(self.emits)
                for path, text in strings_of(emit.extra)
            ),
            *(
                (("browser", index, action.action, name), text, False, item)
                for index, action in enumerate(self.actions)
                for name, text in action_strings(action)
            ),
            *(
                (("variants", "arms", arm, "instruction"), variant.instruction, False, item)
                for arm, variant in (self.variants.arms.items() if self.variants else ())
                if variant.instruction is not None
            ),
            *([(("variants", "key"), self.variants.key, False, item)] if self.variants else []),
            *(
                source
                for index, need in enumerate(self.require)
                for source in (
                    (("require", index, "check"), need.check, True, frozenset({"output"}) | item),
                    (("require", index, "message"), need.message, False, frozenset({"output"}) | item),
                )
            ),
        ]

    def compensation_sources(self) -> list[JinjaSource]:
        """The Jinja of ``compensate``: rendered over inputs, run and the step's ``output`` (a for_each
        item's, with ``item`` and ``index``), not over other steps or the context."""
        if self.compensate is None:
            return []
        names = frozenset({"output", "item", "index"})
        return [
            (("compensate", "instruction"), self.compensate.instruction, False, names),
            *(
                (("compensate", "with", *path), text, False, names)
                for path, text in strings_of(self.compensate.with_)
            ),
        ]


class AgentStep(StepBase):
    """A step done by one named agent of the roster (an LLM, or a skill behind an agent); it may drive
    a browser when the agent has browser access."""

    agent: str = Field(description="a roster name (dags/agents.yaml)")
    browser: list[BrowserAction] | None = Field(
        default=None,
        min_length=1,
        description="browser actions the step's agent performs in Chromium (the agent needs browser access)",
    )

    @property
    def agent_name(self) -> str:
        return self.agent

    @property
    def actions(self) -> list[BrowserAction]:
        return list(self.browser or ())


class SkillStep(StepBase):
    """A step done by a registered Python skill, with its arguments."""

    skill: str = Field(description="a registered skill (baton validate lists them)")
    with_: dict[str, Any] = Field(
        default_factory=dict,
        alias="with",
        description="arguments of the step's skill: Jinja over inputs, steps, context (a value that is "
        "one {{ expression }} keeps its type)",
    )

    @model_validator(mode="after")
    def _no_model_calls_to_group(self) -> SkillStep:
        if self.for_each is not None and self.for_each.items_per_call:
            raise ValueError(
                "for_each.items_per_call groups model calls, and a skill step makes none: remove it, or give "
                "the step an agent"
            )
        return self

    @property
    def skill_name(self) -> str:
        return self.skill

    @property
    def arguments(self) -> dict[str, Any]:
        return self.with_


class RoutedStep(StepBase):
    """A step whose agent is picked at run time among the agents that have the capabilities."""

    route: Route

    @model_validator(mode="after")
    def _capabilities_or_items(self) -> RoutedStep:
        if not self.route.capabilities and not self.for_each:
            raise ValueError(
                "route needs capabilities: only a for_each step may take them from each item's 'capabilities'"
            )
        return self


def _escalate_required(schema: dict[str, Any]) -> None:
    """The JSON Schema of a person's step: ``escalate`` is required (and must say ``human``)."""
    schema["required"] = sorted({*schema.get("required", []), "escalate"})


class PersonStep(StepBase):
    """A stage a person does on the Required Actions page (``escalate: human`` and no worker)."""

    model_config = ConfigDict(json_schema_extra=_escalate_required)

    @model_validator(mode="after")
    def _a_person_does_it(self) -> PersonStep:
        if not self.reviewed:
            raise ValueError(ONE_WORKER)
        return self


def _worker(value: Any) -> str | None:
    """The tag of the step type ``value`` is, or None when it names several workers. A mapping that names
    none is a :class:`PersonStep`, which refuses it unless it says ``escalate: human`` (so that a typo,
    ``skil:``, is reported as the unknown key it is)."""
    if isinstance(value, StepBase):
        return type(value).__name__
    if not isinstance(value, dict):
        return None
    named = [key for key in WORKERS if value.get(key) is not None]
    if len(named) > 1:
        return None
    return (
        {"agent": "AgentStep", "skill": "SkillStep", "route": "RoutedStep"}[named[0]]
        if named
        else "PersonStep"
    )


STEP_TYPES = (AgentStep, SkillStep, RoutedStep, PersonStep)
STEP_TAGS = frozenset(cls.__name__ for cls in STEP_TYPES)
Step = Annotated[
    Annotated[AgentStep, Tag("AgentStep")]
    | Annotated[SkillStep, Tag("SkillStep")]
    | Annotated[RoutedStep, Tag("RoutedStep")]
    | Annotated[PersonStep, Tag("PersonStep")],
    Discriminator(_worker, custom_error_type="one_worker", custom_error_message=ONE_WORKER),
]
AnyStep = AgentStep | SkillStep | RoutedStep | PersonStep


def named_workers(value: Any) -> list[str]:
    """Which of ``agent``, ``skill`` and ``route`` a step's mapping names (for the one-worker message)."""
    return [key for key in WORKERS if isinstance(value, dict) and value.get(key) is not None]
