"""Deterministic Python skills: registered by name, named by templates and agents (see registry)."""

from baton.skills import bench, engineering, finance, http, leads, operations  # noqa: F401  (importing registers the skills)
from baton.skills.registry import (
    Skill,
    SkillRequest,
    get_output_model,
    get_skill,
    output_model_names,
    skill_names,
)

__all__ = [
    "Skill",
    "SkillRequest",
    "get_output_model",
    "get_skill",
    "output_model_names",
    "skill_names",
]
