"""The explicit registry of Python skills and named output models that templates may name: below every
skill (a skill module registers itself here with ``@skill``), so the template language can check names
without importing a skill.

The registry imports no skill. What it holds is what was registered: Baton's own skills when a module above
it imported :mod:`baton.skills` (the compiler, the skill runner, the CLI and the preload do, so every
process that reads templates or runs a skill has them), and the extensions' (:mod:`baton.extensions`),
which the first lookup loads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from baton import extensions
from baton.errors import SkillError


@dataclass(frozen=True)
class SkillRequest:
    """What a skill receives: the rendered instruction, the run's inputs, its upstream outputs and the
    step's ``with`` arguments (rendered)."""

    workflow: str
    step: str
    instruction: str
    inputs: dict[str, Any]
    steps: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)
    trigger: dict[str, Any] = field(default_factory=dict)  # the sensor's finding or the asset payload


@dataclass(frozen=True)
class Skill:
    """A deterministic Python function a step or an agent can run instead of a model."""

    name: str
    func: Callable[[SkillRequest], dict[str, Any]]
    description: str
    output: type[BaseModel] | None
    pure: bool = False  # computes from what it is given and reaches no system: an evaluation may run it


@dataclass(frozen=True)
class EvaluatorRequest:
    """What an evaluator receives: the field it checks, its value, the step's whole output (a dict, or an
    item's of a fan-out) and the check's ``args`` as the dataset or template wrote them."""

    field: str
    value: Any
    output: Any
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """An evaluator's answer when it has a reason to give: whether the field passed, and why not."""

    passed: bool
    reason: str = ""


@dataclass(frozen=True)
class Evaluator:
    """A Python check a dataset's case or a step's live checks may name (``evaluator: <name>``): it answers
    ``True``, ``False`` or a :class:`Verdict`."""

    name: str
    func: Callable[[EvaluatorRequest], bool | Verdict]
    description: str


_SKILLS: dict[str, Skill] = {}
_EVALUATORS: dict[str, Evaluator] = {}
_OUTPUT_MODELS: dict[str, type[BaseModel]] = {}


def output_model(cls: type[BaseModel]) -> type[BaseModel]:
    """Register a pydantic model under its class name, so a step can say ``output: ClassName``; a second
    model of the same name (another module's) is refused: a template's name must mean one model."""
    known = _OUTPUT_MODELS.get(cls.__name__)
    if known is not None and known is not cls:
        raise SkillError(
            f"output model '{cls.__name__}' is registered twice ({known.__module__} and {cls.__module__}); "
            "rename one of them"
        )
    _OUTPUT_MODELS[cls.__name__] = cls
    return cls


def _described(func: Callable[..., Any]) -> str:
    """The first line of ``func``'s docstring ('' without one, or with only blanks)."""
    return next(iter((func.__doc__ or "").strip().splitlines()), "")


def skill(name: str, *, output: type[BaseModel] | None = None, pure: bool = False):
    """Register ``func`` as the skill ``name``; its docstring's first line describes it. ``pure``: the skill
    only computes from what it is given (no database, file, network or person), so an evaluation's case may
    run it rather than record its output."""

    def register(func: Callable[[SkillRequest], dict[str, Any]]):
        if name in _SKILLS:
            raise SkillError(f"skill '{name}' is registered twice ({_SKILLS[name].func.__module__})")
        _SKILLS[name] = Skill(name=name, func=func, description=_described(func), output=output, pure=pure)
        if output is not None:
            output_model(output)
        return func

    return register


def evaluator(name: str):
    """Register ``func`` as the evaluator ``name`` (a check's ``evaluator: <name>``); its docstring's first line
    describes it. Registered the way skills are: a module of Baton's or an extension's, imported."""

    def register(func: Callable[[EvaluatorRequest], bool | Verdict]):
        if name in _EVALUATORS:
            raise SkillError(f"evaluator '{name}' is registered twice ({_EVALUATORS[name].func.__module__})")
        _EVALUATORS[name] = Evaluator(name=name, func=func, description=_described(func))
        return func

    return register


def _with_extensions() -> None:
    """Register the extensions' skills and output models before a lookup (the first lookup imports them)."""
    extensions.load()


def get_skill(name: str) -> Skill:
    _with_extensions()
    try:
        return _SKILLS[name]
    except KeyError:
        raise SkillError(f"unknown skill '{name}'; registered: {', '.join(sorted(_SKILLS))}") from None


def skills() -> list[Skill]:
    """Every registered skill, by name."""
    _with_extensions()
    return [_SKILLS[name] for name in sorted(_SKILLS)]


def output_models() -> list[type[BaseModel]]:
    """Every registered output model, by name."""
    _with_extensions()
    return [_OUTPUT_MODELS[name] for name in sorted(_OUTPUT_MODELS)]


def skill_names() -> list[str]:
    _with_extensions()
    return sorted(_SKILLS)


def get_evaluator(name: str) -> Evaluator:
    _with_extensions()
    try:
        return _EVALUATORS[name]
    except KeyError:
        known = ", ".join(sorted(_EVALUATORS)) or "none"
        raise SkillError(f"unknown evaluator '{name}'; registered: {known}") from None


def evaluators() -> list[Evaluator]:
    """Every registered evaluator, by name."""
    _with_extensions()
    return [_EVALUATORS[name] for name in sorted(_EVALUATORS)]


def evaluator_names() -> list[str]:
    _with_extensions()
    return sorted(_EVALUATORS)


def is_pure(name: str) -> bool:
    """Whether the registered skill ``name`` only computes (``@skill(..., pure=True)``); False when unknown."""
    _with_extensions()
    found = _SKILLS.get(name)
    return found is not None and found.pure


def get_output_model(name: str) -> type[BaseModel] | None:
    _with_extensions()
    return _OUTPUT_MODELS.get(name)


def output_model_names() -> list[str]:
    _with_extensions()
    return sorted(_OUTPUT_MODELS)
