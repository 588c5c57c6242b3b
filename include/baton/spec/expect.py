"""What a field of a step's output must be (:class:`Check`), and whether a value is so (:func:`why_not`): the
checks of the evaluation datasets' cases (``evals/``, :mod:`baton.spec.evals`) and of a step's live outputs
(``evaluate:``), one meaning for both. Pure: no Airflow, no I/O; a pattern is searched with a time limit
(the ``regex`` module's), so a backtracking pattern fails its check rather than holding a run."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import regex
from pydantic import Field, field_validator, model_serializer, model_validator

from baton.registry import evaluator_names, get_output_model
from baton.spec.common import IDENTIFIER, Strict

#: The checks a value answers by itself (:func:`why_not`), then those that run code or ask a model
#: (:mod:`baton.coordination.judging`): a registered evaluator, and a rubric a judge reads.
PURE = ("equals", "one_of", "contains", "matches", "range", "min_length", "max_length")
CHECKS = (*PURE, "evaluator", "rubric")
MAX_PATTERN = 1_000
MAX_CHOICES = 1_000
MAX_RUBRIC = 2_000
MAX_ARGS = 50


class Check(Strict):
    """What one field of a step's output must be: every key given must hold."""

    equals: Any = Field(default=None, description="the field's value, exactly")
    one_of: list[Any] | None = Field(
        default=None, min_length=1, max_length=MAX_CHOICES, description="the values the field may have"
    )
    contains: Any = Field(
        default=None, description="a text the field's text holds (case-sensitive), or an item its list holds"
    )
    matches: str | None = Field(
        default=None, max_length=MAX_PATTERN, description="a regular expression found in the field's text"
    )
    range: tuple[float, float] | None = Field(
        default=None, description="[lowest, highest]: the field's number within them, both included"
    )
    min_length: int | None = Field(default=None, ge=0, le=10**9, description="the fewest characters or items")
    max_length: int | None = Field(default=None, ge=0, le=10**9, description="the most characters or items")
    evaluator: str | None = Field(
        default=None,
        pattern=IDENTIFIER,
        max_length=100,
        description="a Python evaluator registered with @evaluator (an extension's): it says whether the field passes",
    )
    args: dict[str, Any] | None = Field(
        default=None, max_length=MAX_ARGS, description="what the evaluator is given besides the field (data)"
    )
    rubric: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_RUBRIC,
        description="what a judge (the dataset's or the step's 'judge' agent, a model) must find true of the field",
    )

    @field_validator("matches")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                regex.compile(value)
            except regex.error as error:
                raise ValueError(f"'{value[:100]}' is not a regular expression: {error}") from None
        return value

    @field_validator("range")
    @classmethod
    def _ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None:
            low, high = value
            if not (math.isfinite(low) and math.isfinite(high)) or low > high:
                raise ValueError(f"range [{low}, {high}] is not [lowest, highest] with finite numbers")
        return value

    @model_validator(mode="after")
    def _something(self) -> Check:
        if not self.given():
            raise ValueError(f"a check needs at least one of: {', '.join(CHECKS)}")
        if self.args is not None and self.evaluator is None:
            raise ValueError("'args' are an evaluator's: name it with 'evaluator: <name>', or remove 'args'")
        if self.min_length is not None and self.max_length is not None and self.min_length > self.max_length:
            raise ValueError(f"min_length {self.min_length} is over max_length {self.max_length}")
        return self

    @model_serializer(mode="wrap")
    def _as_given(self, handler: Any) -> dict[str, Any]:
        """Only the checks given (``equals: null`` among them): read back, a dumped check is the same check (a
        step's ``evaluate`` travels inside its DAG's serialised operators)."""
        return {key: value for key, value in handler(self).items() if key in self.model_fields_set}

    def given(self) -> list[str]:
        """The checks this field declares, in ``CHECKS`` order (``equals: null`` counts)."""
        return [name for name in CHECKS if name in self.model_fields_set]


class LiveEvaluation(Strict):
    """Checks of a step's live outputs (``evaluate:``): a sampled share of its outputs is scored against them
    after the step, and the share of checks that held is recorded as the try's ``feedback.recorded``
    (``source: evaluation``), which learned routing and the variants' statistics learn beside success and a
    person's verdict."""

    sample: float = Field(
        default=0.1, gt=0, le=1, description="the share of the step's outputs scored, 0 to 1"
    )
    checks: dict[str, Check] = Field(
        min_length=1, max_length=100, description="output field -> what it must be (the datasets' checks)"
    )
    judge: str | None = Field(
        default=None,
        pattern=IDENTIFIER,
        max_length=200,
        description="the roster's LLM agent that judges the checks' rubrics (its calls spend within the budgets)",
    )

    @model_validator(mode="after")
    def _judged(self) -> LiveEvaluation:
        if self.judge is None and (field := rubric_without(self.checks)) is not None:
            raise ValueError(
                f"the check of '{field}' has a rubric and nothing judges it: add 'judge: <an LLM agent>'"
            )
        return self


def rubric_without(checks: dict[str, Check]) -> str | None:
    """The first field of ``checks`` whose check has a ``rubric`` (which needs a judge), or None."""
    return next((name for name, check in checks.items() if check.rubric is not None), None)


#: The most one ``matches`` may search a text for (regex's own timeout).
MATCH_TIMEOUT_S = 1.0
#: The most characters of a value a reason quotes.
QUOTED = 120


def _quoted(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= QUOTED else text[: QUOTED - 1] + "…"


def _same(value: Any, expected: Any) -> bool:
    """Equal as JSON values are: ``True`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(value, bool) or isinstance(expected, bool):
        return type(value) is type(expected) and value == expected
    return value == expected


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def why_not(name: str, check: Check, value: Any) -> str:
    """Why ``value`` fails the check ``name`` of ``check`` (one of ``PURE``); empty when it holds."""
    # long: one branch per kind of check, each with its own message
    expected = getattr(check, name)
    if name == "equals":
        return "" if _same(value, expected) else f"is {_quoted(value)}, expected {_quoted(expected)}"
    if name == "one_of":
        return (
            ""
            if any(_same(value, e) for e in expected)
            else f"is {_quoted(value)}, not one of the values given"
        )
    if name == "contains":
        if isinstance(value, str) and isinstance(expected, str):
            return "" if expected in value else f"does not contain {_quoted(expected)}"
        if isinstance(value, list):
            return "" if any(_same(item, expected) for item in value) else f"has no item {_quoted(expected)}"
        return f"is a {type(value).__name__}, not a text or a list"
    if name == "matches":
        if not isinstance(value, str):
            return f"is a {type(value).__name__}, not a text"
        try:
            found = regex.search(expected, value, timeout=MATCH_TIMEOUT_S)
        except TimeoutError:
            return f"was not searched to the end within {MATCH_TIMEOUT_S:g} s (fix: a pattern that does not backtrack)"
        return "" if found else f"does not match {_quoted(expected)}"
    if name == "range":
        low, high = expected
        if not _is_number(value):
            return f"is {_quoted(value)}, not a number"
        return "" if low <= value <= high else f"is {value}, outside [{low:g}, {high:g}]"
    if not isinstance(value, (str, list)):
        return f"is a {type(value).__name__}, which has no length"
    if name == "min_length":
        return (
            "" if len(value) >= expected else f"has {len(value)} characters or items, fewer than {expected}"
        )
    return "" if len(value) <= expected else f"has {len(value)} characters or items, more than {expected}"


#: The title of a judge's answer's schema, by which the offline model knows a judge's request.
VERDICT_TITLE = "RubricVerdict"
#: The most characters of a field's value (as JSON) a judge reads; the rest is cut, and the judge told so.
JUDGED_CHARS = 20_000
_RUBRIC = "\n\nRubric: "
_FIELD = "\n\nField '"


def judge_prompt(rubric: str, name: str, value: Any) -> str:
    """What a judge is asked of the field ``name``'s ``value`` and ``rubric``. The value is JSON on one line
    (its texts' newlines escaped), so the prompt's last ``Field '`` heading is the value's."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > JUDGED_CHARS:
        text = text[:JUDGED_CHARS] + f" [cut: {len(text) - JUDGED_CHARS:,} more characters]"
    return (
        "Judge one field of an AI agent's output against a rubric. Answer whether the field meets the rubric "
        f"(passed) and, in one sentence, why (reason).{_RUBRIC}{rubric}{_FIELD}{name}' (JSON):\n{text}"
    )


def judged_parts(prompt: str) -> tuple[str, str] | None:
    """(rubric, the field's value as JSON) of a :func:`judge_prompt`; None when ``prompt`` is not one."""
    start, end = prompt.find(_RUBRIC), prompt.rfind(_FIELD)
    if start < 0 or end < start:
        return None
    head, _, value = prompt[end + len(_FIELD) :].partition("\n")
    return prompt[start + len(_RUBRIC) : end], value


_JSON = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}
_FOR = {  # the output types each check can pass on (absent: any type)
    "contains": ("string", "array"),
    "matches": ("string",),
    "range": ("integer", "number"),
    "min_length": ("string", "array"),
    "max_length": ("string", "array"),
}


@dataclass(frozen=True)
class FieldType:
    """What the template says of one output field: its JSON type (None: not known), enum, requiredness."""

    type: str | None
    enum: tuple[Any, ...] | None = None
    required: bool = True

    def holds(self, value: Any) -> bool:
        """Whether a value of this field could be ``value``."""
        if value is None:
            return not self.required
        if self.enum is not None and value not in self.enum:
            return False
        if self.type is None:
            return True
        if isinstance(value, bool) and self.type != "boolean":
            return False
        return isinstance(value, _JSON[self.type])


Found = Iterator[tuple[tuple[Any, ...], str, str]]


def field_issues(at: tuple[Any, ...], fields: dict[str, Check], types: dict[str, FieldType] | None) -> Found:
    """Each check of ``fields`` (output field -> Check) that could never pass on the fields ``types`` says."""
    for name, check in fields.items():
        if check.evaluator is not None and check.evaluator not in (known := evaluator_names()):
            fix = (
                "register it with @evaluator in an extension module (BATON_EXTENSIONS); known: "
                f"{', '.join(known) or 'none'}"
            )
            yield (*at, name, "evaluator"), f"unknown evaluator '{check.evaluator}'", fix
        if types is None:
            continue  # the step declares no output: its fields are the skill's, known when it runs
        if name not in types:
            yield (*at, name), f"the step's output has no field '{name}'", f"use one of: {', '.join(types)}"
            continue
        yield from _check((*at, name), check, types[name])


def _check(at: tuple[Any, ...], check: Check, field: FieldType) -> Found:
    for name in check.given():
        kinds = _FOR.get(name)
        if kinds and field.type is not None and field.type not in kinds:
            fits = ["equals", "one_of", *(check for check, on in _FOR.items() if field.type in on)]
            fix = f"use a check {_a(field.type)} field can pass: {', '.join(fits)}"
            yield (*at, name), f"'{name}' never passes on {_a(field.type)} field", fix
    if "equals" in check.given() and not field.holds(check.equals):
        yield (*at, "equals"), f"the field can never be {check.equals!r:.100}", _what(field)
    if check.one_of is not None and not any(field.holds(value) for value in check.one_of):
        yield (*at, "one_of"), "the field can be none of these values", _what(field)
    if check.contains is not None and field.type == "string" and not isinstance(check.contains, str):
        yield (*at, "contains"), "a text field contains text only", "give 'contains' a text"


def _what(field: FieldType) -> str:
    if field.enum is not None:
        return f"use one of its values: {', '.join(map(repr, field.enum))[:300]}"
    return f"give {_a(field.type)}" + ("" if field.required else " or null")


def _a(kind: str | None) -> str:
    return f"an {kind}" if kind and kind[0] in "aeiou" else f"a {kind}"


def judge_problem(name: str, roster: Any) -> tuple[str, str] | None:
    """What is wrong with ``name`` as the judge of rubrics (an LLM agent of ``roster``) and its fix; None when
    nothing is (or no roster is known to check against)."""
    agent = roster.get(name) if roster is not None else None
    if roster is None or (agent is not None and not agent.skill):
        return None
    llms = ", ".join(sorted(a.name for a in roster.agents if not a.skill)) or "none"
    if agent is None:
        return f"the roster has no agent '{name}' to judge the rubrics", f"name one of its LLM agents: {llms}"
    return (
        f"agent '{name}' runs skill '{agent.skill}' and cannot read a rubric",
        f"name one of the roster's LLM agents: {llms}",
    )


def output_types(step: Any) -> dict[str, FieldType] | None:
    """The fields of ``step``'s output, by name; None when the template does not say (no output declared: a
    skill's own, or an agent's text, which a roster agent with a skill answers differently) or names a model
    that is not registered (the template's own check reports that)."""
    output = step.output
    if output is None:
        return None
    if isinstance(output, str):
        model = get_output_model(output)
        return None if model is None else _from_schema(model.model_json_schema())
    return {
        name: FieldType(spec.type, tuple(spec.enum) if spec.enum is not None else None, spec.required)
        for name, spec in output.items()
    }


def _from_schema(schema: dict[str, Any]) -> dict[str, FieldType]:
    required = set(schema.get("required", ()))
    found = {}
    for name, prop in schema.get("properties", {}).items():
        options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
        kind = options[0].get("type") if len(options) == 1 else None
        enum = options[0].get("enum") if len(options) == 1 else None
        found[name] = FieldType(
            kind if kind in _JSON else None, tuple(enum) if enum else None, name in required
        )
    return found


__all__ = [
    "CHECKS",
    "MATCH_TIMEOUT_S",
    "JUDGED_CHARS",
    "PURE",
    "VERDICT_TITLE",
    "Check",
    "FieldType",
    "LiveEvaluation",
    "field_issues",
    "judge_problem",
    "judge_prompt",
    "judged_parts",
    "output_types",
    "rubric_without",
    "why_not",
]
