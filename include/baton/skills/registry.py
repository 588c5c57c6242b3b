"""The explicit registry of Python skills and named output models that templates may name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

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


_SKILLS: dict[str, Skill] = {}
_OUTPUT_MODELS: dict[str, type[BaseModel]] = {}


def output_model(cls: type[BaseModel]) -> type[BaseModel]:
    """Register a pydantic model under its class name, so a step can say ``output: ClassName``."""
    _OUTPUT_MODELS[cls.__name__] = cls
    return cls


def skill(name: str, *, output: type[BaseModel] | None = None):
    """Register ``func`` as the skill ``name``; its docstring's first line describes it."""

    def register(func: Callable[[SkillRequest], dict[str, Any]]):
        if name in _SKILLS:
            raise SkillError(f"skill '{name}' is registered twice ({_SKILLS[name].func.__module__})")
        description = (func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else ""
        _SKILLS[name] = Skill(name=name, func=func, description=description, output=output)
        if output is not None:
            output_model(output)
        return func

    return register


def get_skill(name: str) -> Skill:
    try:
        return _SKILLS[name]
    except KeyError:
        raise SkillError(f"unknown skill '{name}'; registered: {', '.join(sorted(_SKILLS))}") from None


def skill_names() -> list[str]:
    return sorted(_SKILLS)


def get_output_model(name: str) -> type[BaseModel] | None:
    return _OUTPUT_MODELS.get(name)


def output_model_names() -> list[str]:
    return sorted(_OUTPUT_MODELS)
