"""Deterministic Python skills: registered by name, named by templates and agents (see registry)."""

import importlib
import pkgutil

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

# Importing a module of this package registers its skills: every module here, in name order (one
# module per business area; adding a module is adding a file).
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "registry"):
    importlib.import_module(f"{__name__}.{_module}")
